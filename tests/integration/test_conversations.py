"""Conversations end to end against the simulator, both wires: incoming invitations
(accept, decline, withdrawn, overflow), start_messaging, send, receive, leave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

import ucwa_async
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

from .conftest import SessionFactory, assert_no_leftover_tasks

LENE = "sip:lenea@contoso.com"
STEP = 10.0  # generous: the machine is shared


@pytest.fixture
async def sim() -> AsyncIterator[UcwaSimulator]:
    async with UcwaSimulator(config=SimulatorConfig(completion_delay=0.01), seed=0) as simulator:
        yield simulator


async def next_invitation(
    invitations: ucwa_async.InvitationStream,
) -> ucwa_async.IncomingInvitation:
    async with asyncio.timeout(STEP):
        return await anext(invitations)


async def next_message(messages: ucwa_async.MessageStream) -> ucwa_async.Message:
    async with asyncio.timeout(STEP):
        return await anext(messages)


async def test_incoming_accept_reply_receive_leave(
    sim: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    async with make_session(sim, available_for=("Messaging",)) as session:
        # sent before anyone listens: the inbox keeps it
        url = await sim.incoming_message(LENE, "deploy status", subject="CI")
        async with session.incoming() as invitations:
            invite = await next_invitation(invitations)
        assert invite.kind == "messaging"
        assert invite.href == url
        assert invite.sender.uri == LENE
        assert invite.sender.name == "Lene Aaling"
        assert invite.subject == "CI"
        assert invite.message == "deploy status"
        conversation = await invite.accept()
        assert conversation.state == "Connected"
        assert [p.uri for p in conversation.participants] == [LENE]
        async with conversation.messages() as messages:
            sent = await conversation.send("all green")
            async with asyncio.timeout(STEP):
                await sent
            assert sent.delivered
            assert sim.messages_from_client(conversation.href) == ["all green"]
            echo = await next_message(messages)  # Lene's default behaviour: echo
            assert echo.text == "echo: all green"
            await sim.say(conversation.href, LENE, "thanks!")
            message = await next_message(messages)
            assert message.text == "thanks!"
            assert message.html is None
            assert message.sender is not None
            assert message.sender.uri == LENE
            assert message.href is not None
            # the invitation's first message is invite.message, not repeated here
            await conversation.leave()
            await conversation.leave()  # idempotent
            async with asyncio.timeout(STEP):
                assert [m async for m in messages] == []
        assert await conversation.wait_ended(STEP) is ucwa_async.ConversationEndReason.LEFT
        with pytest.raises(ucwa_async.ConversationEndedError):
            await conversation.send("too late")
        assert session.stats.incoming_invitations == 1
        assert session.stats.incoming_accepted == 1
        assert session.stats.messages_delivered == 1
    await assert_no_leftover_tasks(no_leftover_tasks)
