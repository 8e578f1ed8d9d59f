"""200 concurrent conversations, 10 messages each way, every message exactly once and in
order, in both wires."""

from __future__ import annotations

import asyncio

from ucwa_async import IncomingInvitation
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

from ._support import SessionFactory

LENE = "sip:lenea@contoso.com"
CONVERSATIONS = 200
MESSAGES = 10


async def test_200_conversations_exchange_10_messages_each_way(
    make_session: SessionFactory,
) -> None:
    config = SimulatorConfig(
        completion_delay=0.01, incoming_message_events=("started", "completed")
    )
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, invitation_timeout=120.0, request_timeout=60.0) as session,
    ):

        async def one(index: int) -> tuple[str, list[str], list[str]]:
            inv = await session.start_messaging(LENE, subject=f"load {index}")
            conversation = await inv.conversation(timeout=120.0)
            texts = [f"c{index}-m{n}" for n in range(MESSAGES)]
            async with conversation.messages() as messages:
                sent = [await conversation.send(text, timeout=120.0) for text in texts]
                await asyncio.gather(*sent)  # OutgoingMessage is a Future
                received: list[str] = []
                async for message in messages:
                    received.append(message.text)
                    if len(received) == MESSAGES:
                        break
            await conversation.leave()
            return conversation.href, texts, received

        async with asyncio.timeout(240.0):
            results = await asyncio.gather(*(one(i) for i in range(CONVERSATIONS)))
        for _, texts, received in results:
            assert received == [f"echo: {text}" for text in texts]  # once each, in order
        assert session.stats.messages_delivered == CONVERSATIONS * MESSAGES
        assert session.stats.messages_failed == 0
        assert sorted(sim.conversation_urls()) == sorted(href for href, _, _ in results)
        for href, texts, _ in results:
            assert sim.messages_from_client(href) == texts


async def test_200_incoming_conversations_answered_by_4_readers(
    make_session: SessionFactory,
) -> None:
    sim_people = (Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.silent()),)
    config = SimulatorConfig(completion_delay=0.01, people=sim_people)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, invitation_timeout=120.0, request_timeout=60.0) as session,
    ):
        received: dict[str, list[str]] = {}

        async def handle(invite: IncomingInvitation) -> None:
            conversation = await invite.accept(timeout=120.0)
            texts: list[str] = []
            async with conversation.messages() as messages:
                for n in range(MESSAGES):
                    await sim.say(conversation.href, LENE, f"{invite.message}-m{n}")
                    message = await anext(messages)
                    texts.append(message.text)
                    await (await conversation.send(f"re: {message.text}")).result(120.0)
            received[conversation.href] = texts
            await conversation.leave()

        handlers: list[asyncio.Task[None]] = []

        async def reader() -> None:
            async with session.incoming() as invitations:
                async for invite in invitations:  # a handler each: the inbox keeps moving
                    handlers.append(asyncio.create_task(handle(invite)))

        readers = [asyncio.create_task(reader()) for _ in range(4)]
        try:
            async with asyncio.timeout(120.0):
                for index in range(CONVERSATIONS):
                    await sim.incoming_message(LENE, f"c{index}")
                while len(handlers) < CONVERSATIONS:  # noqa: ASYNC110 - bounded by the timeout
                    await asyncio.sleep(0.05)
                await asyncio.gather(*handlers)
        finally:
            for task in readers + handlers:
                task.cancel()
            await asyncio.gather(*readers, *handlers, return_exceptions=True)
        assert len(received) == CONVERSATIONS
        assert session.stats.incoming_overflowed == 0
        for href, texts in received.items():
            prefix = texts[0].rsplit("-", 1)[0]
            assert texts == [f"{prefix}-m{n}" for n in range(MESSAGES)]
            assert sim.messages_from_client(href) == [f"re: {text}" for text in texts]
