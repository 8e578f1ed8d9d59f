"""Session lifecycle: open, keep-alive, channel state, close, cancel, reuse after close."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import ucwa_async
from ucwa_async.testing import InvitationRequest, Outcome, SimulatorConfig, UcwaSimulator

from ._support import assert_no_leftover_tasks

SessionFactory = Callable[..., ucwa_async.Session]


def _never_complete(request: InvitationRequest, rng: random.Random) -> Outcome:
    return Outcome(complete=False)


async def test_exit_deletes_application_and_closes_owned_http(
    simulator: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    session = make_session(simulator)
    async with session:
        app_url = session.application_url
        assert app_url is not None
        assert len(simulator.application_ids) == 1
        client = session._client
        assert client is not None
        assert not client.closed
    assert session.closed
    assert client.closed
    assert simulator.application_ids == []
    deletes = [r for r in simulator.request_log if r.method == "DELETE"]
    assert [(r.kind, r.status, r.authorized) for r in deletes] == [("application", 204, True)]
    assert app_url.endswith(deletes[0].path)
    assert session.channel_state is ucwa_async.ChannelStatus.CLOSED
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_pending_invitations_end_with_session_closed(
    make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    config = SimulatorConfig(outcome_rule=_never_complete)
    async with UcwaSimulator(config=config) as sim:
        session = make_session(sim)
        async with session:
            logs = await session.conversation_logs()
            im = await session.continue_messaging(logs[0], message="pending")
            call = await session.continue_phone_audio(logs[1], phone_number="+14255551234")
            await asyncio.sleep(0.05)
            assert not im.done()
            assert not call.done()
            assert session.pending_invitations == 2
        for invitation in (im, call):
            assert invitation.done()
            with pytest.raises(ucwa_async.SessionClosedError):
                await invitation
        assert session.stats.invitations_closed == 2
        assert session.pending_invitations == 0
        assert sim.application_ids == []
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_exit_on_exception_still_cleans_up(
    simulator: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    session = make_session(simulator)
    with pytest.raises(RuntimeError, match="bot crashed"):
        async with session:
            raise RuntimeError("bot crashed")
    assert session.closed
    assert simulator.application_ids == []
    assert session._client is not None
    assert session._client.closed
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_borrowed_http_session_is_not_closed(
    simulator: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    async with aiohttp.ClientSession() as http:
        session = make_session(simulator, http_session=http)
        async with session:
            assert session._client is http
            assert len(await session.conversation_logs()) == 3
        assert session.closed
        assert not http.closed
        # Still usable by its owner.
        async with http.get(simulator.discovery_url) as response:
            assert response.status == 200
        assert simulator.application_ids == []
    assert http.closed
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_a_borrowed_http_session_that_raises_for_status_still_works(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    # An application's shared ClientSession(raise_for_status=True) made aiohttp raise on the
    # sign-in's 401 challenge: open() failed with a TransportError. The session reads every
    # status itself (401 challenge, CallbackChannelError, 404 ApplicationNotFound...).
    async with aiohttp.ClientSession(raise_for_status=True) as http:
        async with make_session(simulator, http_session=http) as session:
            logs = await session.conversation_logs()
            with pytest.raises(ucwa_async.NotFoundError):
                await session.conversation_log(logs[0].href + "-nope")
            invitation = await session.continue_messaging(logs[0], message="hi")
            assert (await invitation.wait(5)).state == "Connected"
        assert not http.closed


async def test_aclose_is_idempotent_and_safe_concurrently(
    simulator: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    session = make_session(simulator)
    await session.open()
    results = await asyncio.gather(
        asyncio.create_task(session.aclose()),
        asyncio.create_task(session.aclose()),
        return_exceptions=True,
    )
    assert results == [None, None]
    await session.aclose()
    await session.__aexit__(None, None, None)
    assert session.closed
    deletes = [r for r in simulator.request_log if r.method == "DELETE"]
    assert len(deletes) == 1
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_calls_after_close_raise_session_closed(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    async with session:
        logs = await session.conversation_logs(limit=1)
    assert session.closed
    calls: list[Callable[[], Any]] = [
        lambda: session.conversation_logs(),
        lambda: session.conversation_log(logs[0].href or ""),
        lambda: session.continue_messaging(logs[0], message="too late"),
        lambda: session.continue_phone_audio(logs[0], phone_number="tel:+14255551234"),
        lambda: session.wait_connected(timeout=1),
        lambda: session.open(),
    ]
    for call in calls:
        with pytest.raises(ucwa_async.SessionClosedError):
            await call()
    with pytest.raises(ucwa_async.SessionClosedError):
        session.events()
    with pytest.raises(ucwa_async.SessionClosedError):
        async with session:
            pass  # pragma: no cover
    # Nothing was sent after the DELETE.
    last = simulator.request_log[-1]
    assert (last.method, last.kind) == ("DELETE", "application")


async def test_calls_before_open_raise_session_closed(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    with pytest.raises(ucwa_async.SessionClosedError, match="not open"):
        await session.conversation_logs()
    assert simulator.request_log == []
    await session.aclose()  # closing a never-opened session is harmless
    assert session.closed


@pytest.mark.parametrize("stage", ["user", "applications", "makeMeAvailable"])
async def test_cancel_during_sign_in_leaves_nothing_behind(
    simulator: UcwaSimulator,
    make_session: SessionFactory,
    no_leftover_tasks: Callable[[], None],
    stage: str,
) -> None:
    # (Under close_timeout: a close waits that long for an application POST given up on
    # its way, which the server handles after this delay; it was 5 s, and the check
    # below passed only because it came before the server made the application.)
    simulator.faults.latency(1.0, target=stage)
    session = make_session(simulator)
    entering = asyncio.create_task(session.__aenter__())
    # Wait (bounded) until sign-in is stuck in the slow request: the simulator counts a
    # request when it arrives (before its latency), and the slow one is the Nth.
    arrived = {"user": 2, "applications": 5, "makeMeAvailable": 7}[stage]
    for _ in range(300):
        if simulator.counters.requests >= arrived:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert simulator.counters.requests == arrived
    assert not entering.done()
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert session.closed
    assert session._client is not None
    assert session._client.closed
    assert session.channel_state is ucwa_async.ChannelStatus.CLOSED
    simulator.faults.latency(0, target=stage)
    await assert_no_leftover_tasks(no_leftover_tasks)
    # An application created before the cancel was deleted on the way out.
    assert simulator.application_ids == []
    if stage == "makeMeAvailable":
        assert session.stats.applications_created == 1
    if stage != "user":  # the application POST given up on its way too (its answer waited)
        deletes = [r for r in simulator.request_log if r.method == "DELETE"]
        assert [r.status for r in deletes] == [204]


async def test_cancel_during_the_application_post_the_server_took(
    simulator: UcwaSimulator,
    make_session: SessionFactory,
    no_leftover_tasks: Callable[[], None],
) -> None:
    """open() given up (cancelled, an outer timeout, connect_timeout) while the POST that
    creates the application is on its way, the server having made it already: the
    close waits (bounded by close_timeout) for its answer and DELETEs it, instead of
    leaving an application the client never knew of on the server until it expires."""
    simulator.faults.late_answer(0.5, target="applications")  # made at once, answered later
    session = make_session(simulator)
    entering = asyncio.create_task(session.__aenter__())
    for _ in range(300):
        if simulator.application_ids:
            break
        await asyncio.sleep(0.01)
    assert simulator.application_ids
    assert not entering.done()
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert session.closed
    await assert_no_leftover_tasks(no_leftover_tasks)
    assert simulator.application_ids == []
    deletes = [r for r in simulator.request_log if r.method == "DELETE"]
    assert [r.status for r in deletes] == [204]
    # connect_timeout passing during that POST: the same
    session = make_session(simulator, connect_timeout=0.2)
    simulator.faults.late_answer(0.5, target="applications")
    with pytest.raises(ucwa_async.UcwaError):
        await session.open()
    assert simulator.application_ids == []


async def test_keepalive_reports_activity(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator, keepalive_interval=0.2):
        for _ in range(100):
            reports = [r for r in simulator.request_log if r.kind == "reportMyActivity"]
            if len(reports) >= 2:
                break
            await asyncio.sleep(0.05)
    reports = [r for r in simulator.request_log if r.kind == "reportMyActivity"]
    assert len(reports) >= 2
    assert all(r.method == "POST" and r.status == 204 and r.authorized for r in reports)


async def test_keepalive_failing_forever_does_not_flood_the_log(
    simulator: UcwaSimulator, make_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # One WARNING per period (3 minutes by default: 480 a day, forever) said nothing the
    # first did not: a run of failures warns at its 1st, 2nd, 4th, 8th... failure.
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    sim = simulator
    sim.faults.service_unavailable(10_000, retry_after=None, target="reportMyActivity")
    async with make_session(sim, keepalive_interval=0.02, retry_after_cap=0.01):
        await asyncio.sleep(2.0)
        # each failure is a POST and its 3 retries of the 503
        failures = sum(1 for r in sim.request_log if r.kind == "reportMyActivity") // 4
        assert failures >= 8, failures
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and "reportMyActivity" in r.getMessage()
        ]
        assert 1 <= len(warnings) <= failures.bit_length() + 1, warnings
        assert "in a row" in warnings[-1]
        sim.faults.clear()
        for _ in range(100):  # bounded: 2 s
            if any(r.kind == "reportMyActivity" and r.status == 204 for r in sim.request_log):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
    recovered = [r for r in caplog.records if "reportMyActivity works again" in r.getMessage()]
    assert len(recovered) == 1
    assert recovered[0].levelno == logging.INFO


async def test_keepalive_off_sends_nothing(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator, keepalive_interval=None):
        await asyncio.sleep(0.3)
    assert not [r for r in simulator.request_log if r.kind == "reportMyActivity"]


async def test_channel_state_and_wait_connected(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    assert session.channel_state is ucwa_async.ChannelStatus.CONNECTING
    seen: list[ucwa_async.ChannelStatus] = []

    async def watch() -> None:
        while not session.closed:
            state = session.channel_state
            if not seen or seen[-1] is not state:
                seen.append(state)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    async with session:
        await session.wait_connected()
        await session.wait_connected(timeout=1.0)
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        assert len(await session.conversation_logs()) == 3
    await asyncio.wait_for(watcher, 2)
    assert session.channel_state is ucwa_async.ChannelStatus.CLOSED
    assert seen[0] is ucwa_async.ChannelStatus.CONNECTING
    assert ucwa_async.ChannelStatus.CONNECTED in seen
    assert seen.index(ucwa_async.ChannelStatus.CONNECTING) < seen.index(
        ucwa_async.ChannelStatus.CONNECTED
    )
    assert "closed" in repr(session)


async def test_close_during_a_recreation_the_server_took(
    simulator: UcwaSimulator,
    make_session: SessionFactory,
    no_leftover_tasks: Callable[[], None],
) -> None:
    """The application was lost; the session closes while the POST re-creating it is on
    its way, the server having made the new one already: the close waits for the answer
    and DELETEs that one too."""
    async with make_session(simulator) as session:
        simulator.faults.late_answer(1.0, target="applications")
        assert simulator.faults.delete_application() == 1
        for _ in range(300):  # the channel re-creates it (the server makes it at once)
            if simulator.application_ids:
                break
            await asyncio.sleep(0.01)
        assert simulator.application_ids
        assert session.stats.applications_created == 1  # its answer not in yet
    await assert_no_leftover_tasks(no_leftover_tasks)
    assert simulator.application_ids == []
