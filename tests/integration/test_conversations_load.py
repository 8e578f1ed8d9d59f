"""200 concurrent conversations, 10 messages each way, every message exactly once and in
order, in both wires."""

from __future__ import annotations

import asyncio

from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from .conftest import SessionFactory

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
                await asyncio.gather(*(message.result() for message in sent))
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
