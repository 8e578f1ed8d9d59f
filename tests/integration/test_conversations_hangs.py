"""Every conversation await is bounded, both wires: a server that never answers a
stopMessaging, a sendMessage or an accept, or never says how an accept ended."""

from __future__ import annotations

import asyncio
import time

import pytest

import ucwa_async
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from .conftest import SessionFactory

LENE = "sip:lenea@contoso.com"
STEP = 10.0
SILENCE = 60.0  # the server's answer comes after the test is over


async def test_leave_when_the_server_never_answers(make_session: SessionFactory) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=1.0) as session,
    ):
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(SILENCE, target="stopMessaging")
        started = time.monotonic()
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await conversation.leave()
        assert time.monotonic() - started < STEP
        # over here all the same: its streams end, a second leave returns at once
        assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
        async with asyncio.timeout(1.0):
            await conversation.leave()
            assert await conversation.wait_ended() is ucwa_async.ConversationEndReason.LEFT
        sim.faults.latency(0, target="stopMessaging")


async def test_send_when_the_server_never_answers(make_session: SessionFactory) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=1.0) as session,
    ):
        conversation = await (await session.start_messaging(LENE)).conversation(STEP)
        sim.faults.latency(SILENCE, target="sendMessage")
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await conversation.send("anyone?")
        assert len(session._conversation_table.sent) == 0  # nothing left pending
        sim.faults.latency(0, target="sendMessage")
        # a later message goes through
        async with asyncio.timeout(STEP):
            await (await conversation.send("still here")).wait()


async def test_accept_when_the_server_never_answers(make_session: SessionFactory) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config=config, seed=0) as sim,
        make_session(sim, request_timeout=1.0) as session,
        session.incoming() as invitations,
    ):
        await sim.incoming_message(LENE, "there?")
        async with asyncio.timeout(STEP):
            invite = await anext(invitations)
        sim.faults.latency(SILENCE, target="accept")
        with pytest.raises(ucwa_async.UcwaError):
            async with asyncio.timeout(STEP):
                await invite.accept(timeout=2.0)
        sim.faults.latency(0, target="accept")
