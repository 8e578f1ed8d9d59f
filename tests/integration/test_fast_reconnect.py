"""A POST's first CallbackChannelError retries once the fresh P-GET is on the wire
(issue 13), not after ``reconnect_settle``; a borrowed ``ClientSession`` without the
library's trace config, and a retry refused again, wait ``reconnect_settle``."""

from __future__ import annotations

import time

import aiohttp

import ucwa_async
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import SessionFactory

SETTLE = 3.0  # long enough that waiting for it cannot pass for the fast path


async def _continue_after_errors(session: ucwa_async.Session, sim: UcwaSimulator, n: int) -> float:
    logs = await session.conversation_logs(limit=1)
    await session.wait_connected(timeout=10)
    sim.faults.callback_channel_error(next_n=n)
    started = time.perf_counter()
    invitation = await session.continue_messaging(logs[0], message="fast")
    elapsed = time.perf_counter() - started
    assert (await invitation.wait(timeout=8)).state == "Connected"
    assert session.stats.callback_channel_retries == n
    return elapsed


async def test_first_retry_goes_once_the_fresh_pget_is_sent(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim, reconnect_settle=SETTLE) as session,
    ):
        elapsed = await _continue_after_errors(session, sim, 1)
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert elapsed < SETTLE / 2, f"the retry waited {elapsed:.2f} s"


async def test_a_second_refusal_waits_for_a_held_pget(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim, reconnect_settle=0.5, max_callback_retries=3) as session,
    ):
        elapsed = await _continue_after_errors(session, sim, 2)
    assert elapsed >= 0.5


async def test_a_borrowed_client_without_the_trace_waits_the_settle(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim, reconnect_settle=0.5, http_session=http) as session,
    ):
        elapsed = await _continue_after_errors(session, sim, 1)
    assert elapsed >= 0.5


async def test_a_borrowed_client_with_the_trace_is_fast(
    make_session: SessionFactory, wire_format: str
) -> None:
    from ucwa_async._http import sent_signal_trace

    async with (
        aiohttp.ClientSession(trace_configs=[sent_signal_trace()]) as http,
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim, reconnect_settle=SETTLE, http_session=http) as session,
    ):
        elapsed = await _continue_after_errors(session, sim, 1)
    assert elapsed < SETTLE / 2, f"the retry waited {elapsed:.2f} s"
