"""Conversations with every event shape the reference allows, both wires.

ReceiveAnIM.md announces an incoming message by a ``completed`` event with its resource
embedded; message_ref.md by a link-only ``started``; a server may send both, or
``added``, embed nothing (the client must GET what was announced), write absolute hrefs,
or not repeat an accepted invitation's first message. The same conversation must come
out of each: the invitation's fields, the participants, every message exactly once and
in order, delivery of what is sent, the end.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

from .conftest import SessionFactory

LENE = "sip:lenea@contoso.com"
STEP = 10.0

SHAPES: dict[str, dict[str, Any]] = {
    "completed-embedded": {},
    "started-completed": {"incoming_message_events": ("started", "completed")},
    "added": {"incoming_message_events": ("added",)},
    "link-only-absolute": {"embed_resources": False, "event_href_style": "absolute"},
    "link-only-started-completed": {
        "embed_resources": False,
        "incoming_message_events": ("started", "completed"),
    },
    "absolute": {"event_href_style": "absolute", "location_style": "absolute"},
    "v1-hrefs": {"event_href_style": "v1"},
    "xml-status-attribute": {"xml_status_as_attribute": True, "typing_events": True},
    # Link-only, an event's status is all that tells a message's (or an invitation's)
    # outcome: in XML as an attribute too (no reference sample shows which form).
    "link-only-status-attribute": {
        "embed_resources": False,
        "event_href_style": "absolute",
        "xml_status_as_attribute": True,
    },
    "message-operation-id": {"message_operation_id": True},
    "no-repeat": {"repeat_first_message": False},
    "no-repeat-link-only": {"repeat_first_message": False, "embed_resources": False},
}


@pytest.mark.parametrize("shape", SHAPES)
async def test_incoming_conversation_in_every_shape(
    shape: str, make_session: SessionFactory
) -> None:
    config = SimulatorConfig(completion_delay=0.01, **SHAPES[shape])
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, available_for=("Messaging",)) as session,
    ):
        url = await sim.incoming_message(LENE, "status", subject="CI")
        async with session.incoming() as invitations, asyncio.timeout(STEP):
            invite = await anext(invitations)
        assert invite.href == url
        assert invite.href.startswith("http")
        assert invite.sender == ucwa_async.Participant(uri=LENE, name="Lene Aaling")
        assert (invite.kind, invite.subject, invite.message) == ("messaging", "CI", "status")
        conversation = await invite.accept(timeout=STEP)
        assert conversation.href.startswith("http")
        assert conversation.subject == "CI"
        async with conversation.messages() as messages:
            # The invitation's text again, later: a new message, not the repeated one
            # (which, ReceiveAnIM step 16, is the first message event after the accept).
            for text in ("again", "status", "again"):
                await sim.say(conversation.href, LENE, text)
            sent = await conversation.send("on it")
            await sent.result(STEP)
            received: list[ucwa_async.Message] = []
            async with asyncio.timeout(STEP):
                async for message in messages:
                    received.append(message)
                    if len(received) == 4:
                        break
            assert [m.text for m in received] == ["again", "status", "again", "echo: on it"]
            assert all(m.sender == ucwa_async.Participant(LENE, "Lene Aaling") for m in received)
            assert len({m.href for m in received}) == 4
            assert all(m.time is not None for m in received)
        await asyncio.sleep(0.2)  # nothing more arrives (no duplicate, late or not)
        async with conversation.messages() as messages:
            assert messages._log.read(messages._reader) == []
        assert [p.uri for p in conversation.participants] == [LENE]
        assert conversation.participants[0].name == "Lene Aaling"
        await sim.leave(conversation.href, LENE)
        reason = await conversation.wait_ended(STEP)
        assert reason is ucwa_async.ConversationEndReason.REMOTE_LEFT


@pytest.mark.parametrize(
    "shape", ["completed-embedded", "link-only-absolute", "link-only-status-attribute"]
)
async def test_outgoing_conversation_in_every_shape(
    shape: str, make_session: SessionFactory
) -> None:
    config = SimulatorConfig(completion_delay=0.01, **SHAPES[shape])
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        inv = await session.start_messaging(LENE, message="Build 42 failed", subject="CI")
        conversation = await inv.conversation(timeout=STEP)
        assert conversation.subject == "CI"
        async with conversation.messages() as messages:
            await (await conversation.send("rolling back")).result(STEP)
            async with asyncio.timeout(STEP):
                first = await anext(messages)
                second = await anext(messages)
        assert first.text == "echo: Build 42 failed"
        assert second.text == "echo: rolling back"
        assert [p.uri for p in conversation.participants] == [LENE]
        await conversation.leave()
        assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.LEFT


async def test_link_only_bursts_keep_order_and_deliveries(make_session: SessionFactory) -> None:
    """Messages announced by link only are read by several GETs at once: a burst still
    comes out once each and in order, and the many unknown message events do not
    crowd out the events of what the session sends."""
    people = (Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.silent()),)
    config = SimulatorConfig(
        completion_delay=0.01,
        embed_resources=False,
        incoming_message_events=("started", "completed"),
        people=people,
    )
    conversations, burst = 30, 10
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, invitation_timeout=60.0, request_timeout=30.0) as session,
    ):

        async def one(index: int) -> list[str]:
            conversation = await (await session.start_messaging(LENE)).conversation(60.0)
            async with conversation.messages() as messages:
                for n in range(burst):
                    await sim.say(conversation.href, LENE, f"c{index}-m{n}")
                sent = [await conversation.send(f"re {index}-{n}") for n in range(burst)]
                await asyncio.gather(*(message.result(60.0) for message in sent))
                received = [(await anext(messages)).text for _ in range(burst)]
            await conversation.leave()
            return received

        async with asyncio.timeout(120.0):
            results = await asyncio.gather(*(one(i) for i in range(conversations)))
        for index, received in enumerate(results):
            assert received == [f"c{index}-m{n}" for n in range(burst)]
        assert session.stats.messages_delivered == conversations * burst


async def test_participants_named_by_link_titles(make_session: SessionFactory) -> None:
    """ReceiveAnIM step 9: a participant added by link only, its display name as the
    link's title. The title reaches the session in both wires and names the participant."""
    config = SimulatorConfig(completion_delay=0.01, embed_resources=False, link_titles=True)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim) as session,
        session.events() as events,
    ):
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        titles: dict[str, str | None] = {}
        async with asyncio.timeout(STEP):
            async for event in events:
                if isinstance(event, ucwa_async.Event) and event.link.rel in (
                    "participant",
                    "localParticipant",
                ):
                    titles[event.link.rel] = event.link.title
                    if len(titles) == 2:
                        break
        me = sim.username.split("@", 1)[0].title()
        assert titles == {"participant": "Lene Aaling", "localParticipant": me}
        assert [(p.uri, p.name) for p in conversation.participants] == [(LENE, "Lene Aaling")]


@pytest.mark.parametrize(
    "shape", ["link-only-absolute", "message-operation-id", "link-only-status-attribute"]
)
async def test_send_failed_retried_and_remote_leaving_in_other_shapes(
    shape: str, make_session: SessionFactory
) -> None:
    people = (Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.leave_after(2)),)
    config = SimulatorConfig(completion_delay=0.01, people=people, **SHAPES[shape])
    async with UcwaSimulator(config=config, seed=0) as sim, make_session(sim) as session:
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.message_delivery_failed(1, code="ServiceFailure", subcode="Unreachable")
        with pytest.raises(ucwa_async.MessageFailedError) as caught:
            await (await conversation.send("lost")).result(STEP)
        assert caught.value.reason is not None
        assert caught.value.reason.subcode == "Unreachable"
        sim.faults.callback_channel_error(1, target="sendMessage")
        async with conversation.messages() as messages:
            await (await conversation.send("one")).result(STEP)
            await (await conversation.send("two")).result(STEP)
            async with asyncio.timeout(STEP):
                texts = [m.text async for m in messages]  # ends when Lene leaves
        assert texts == ["echo: one", "echo: two"]
        assert session.stats.callback_channel_retries == 1
        assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.REMOTE_LEFT
        assert conversation.participants == []
        with pytest.raises(ucwa_async.ConversationEndedError):
            await conversation.send("gone?")
