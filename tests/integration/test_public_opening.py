"""The public API while ``open()`` is still signing in, called from another task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import UcwaSimulator

from ._support import SessionFactory

CALLS: dict[str, Callable[[ucwa_async.Session], Awaitable[Any]]] = {
    "conversation_logs": lambda s: s.conversation_logs(),
    "conversation_log": lambda s: s.conversation_log("conversationLogs/cl0001"),
    "continue_messaging": lambda s: s.continue_messaging("conversationLogs/cl0001"),
    "continue_phone_audio": lambda s: s.continue_phone_audio(
        "conversationLogs/cl0001", phone_number="tel:+14255551234"
    ),
    "start_messaging": lambda s: s.start_messaging("sip:lenea@contoso.com"),
    "start_phone_audio": lambda s: s.start_phone_audio(
        "sip:lenea@contoso.com", phone_number="tel:+14255551234"
    ),
    "invitation": lambda s: s.invitation("communication/messagingInvitations/1"),
    "request": lambda s: s.request("GET", "communication"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_requests_while_opening_raise_a_typed_error(
    simulator: UcwaSimulator, make_session: SessionFactory, name: str
) -> None:
    # They reached the application that open() had not created yet: a bare AssertionError.
    session = make_session(simulator)
    simulator.faults.latency(0.2, target="any")
    opener = asyncio.create_task(session.open())
    try:
        await asyncio.sleep(0)  # open() runs to its first request
        assert session.state is ucwa_async.SessionState.OPENING
        with pytest.raises(ucwa_async.SessionClosedError, match="still opening"):
            await CALLS[name](session)
        simulator.faults.latency(0, target="any")
        await opener
        assert session.state is ucwa_async.SessionState.OPEN
    finally:
        simulator.faults.latency(0, target="any")
        await session.aclose()


async def test_wait_connected_while_opening_waits_for_the_channel(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    # It raised SessionClosedError("not open yet") at once: the one call made to wait for
    # the channel refused to, for a session opened by another task.
    session = make_session(simulator)
    simulator.faults.latency(0.05, target="any")
    opener = asyncio.create_task(session.open())
    try:
        await asyncio.sleep(0)
        assert session.state is ucwa_async.SessionState.OPENING
        await session.wait_connected(timeout=10)
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        await opener
    finally:
        simulator.faults.latency(0, target="any")
        await session.aclose()


async def test_wait_connected_while_opening_a_session_closed_meanwhile(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    simulator.faults.latency(0.2, target="any")
    opener = asyncio.create_task(session.open())
    try:
        await asyncio.sleep(0)
        waiter = asyncio.create_task(session.wait_connected(timeout=10))
        await asyncio.sleep(0.05)
        await session.aclose()
        with pytest.raises(ucwa_async.SessionClosedError):
            await waiter
        with pytest.raises(ucwa_async.SessionClosedError):
            await opener
    finally:
        simulator.faults.latency(0, target="any")
        await session.aclose()
