"""Issue 11, lifecycle: one forward-only state machine, cancellation at every await point of
``open()`` and ``aclose()``, a fresh error per raise, SessionClosedError for calls in flight
at close, makeMeAvailable found on ``me``, conversation logs fetched by a bounded pool."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

import ucwa_async
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import SessionFactory, assert_no_leftover_tasks, until

State = ucwa_async.SessionState

# --- helpers ------------------------------------------------------------------------------


def _latency_fired(sim: UcwaSimulator) -> Callable[[], bool]:
    return lambda: sim.counters.faults_injected["latency"] >= 1


async def _consume(stream: ucwa_async.EventStream) -> list[Any]:
    return [item async for item in stream]


def _session_tasks() -> list[asyncio.Task[Any]]:
    """Live tasks running code of ``ucwa_async/_session.py`` (e.g. log fetchers)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and code is not None and code.co_filename.endswith("_session.py"):
            found.append(task)
    return found


def _client_tasks() -> list[asyncio.Task[Any]]:
    """Live tasks running the client's code (not the simulator's, not the test's)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        in_client = "/ucwa_async/" in filename and "/testing/" not in filename
        if not task.done() and in_client and "/tests/" not in filename:
            found.append(task)
    return found


class _Hold:
    """Replaces an async method so that its first call hangs (until cancelled)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self._first = True

    def wrap(self, original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def held(*args: Any) -> Any:
            if self._first:
                self._first = False
                self.entered.set()
                await asyncio.sleep(30)
            return await original(*args)

        return held


# --- 1. the state machine -----------------------------------------------------------------


async def test_state_walks_new_opening_open_closing_closed(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    assert session.state is State.NEW
    seen: list[State] = [session.state]

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10  # bounded: the session closes within a second or so
        while loop.time() < deadline:
            if seen[-1] is not session.state:
                seen.append(session.state)
            if session.state is State.CLOSED:
                return
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    async with session:
        assert session.state is State.OPEN
        assert not session.closed
        await asyncio.sleep(0.05)  # let the watcher see "open"
    await asyncio.wait_for(watcher, 5)
    assert seen == [State.NEW, State.OPENING, State.OPEN, State.CLOSING, State.CLOSED]
    assert session.closed
    assert "state=closed" in repr(session)
    with pytest.raises(AttributeError):
        session.state = State.OPEN  # type: ignore[misc]


async def test_aclose_on_a_new_session_closes_it_for_good(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    await session.aclose()
    assert session.state is State.CLOSED
    with pytest.raises(ucwa_async.SessionClosedError):
        await session.open()
    assert simulator.request_log == []


async def test_only_forward_transitions_exist(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    for backwards in (State.OPEN, State.CLOSING):
        with pytest.raises(AssertionError, match="not allowed"):
            session._move(backwards)  # new -> open / closing: not steps of the machine
    async with session:
        with pytest.raises(AssertionError, match="open -> opening is not allowed"):
            session._move(State.OPENING)
        with pytest.raises(ucwa_async.SessionClosedError, match="cannot be opened again"):
            await session.open()
        assert session.state is State.OPEN
    for state in State:
        if state is not State.CLOSED:
            with pytest.raises(AssertionError):
                session._move(state)
    assert session.state is State.CLOSED


# Where open() can be held on the server: the request's fault target, and options.
_OPEN_STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "discovery GET": ("discovery", {}),
    "user GET": ("user", {}),
    "token POST": ("token", {}),
    # The close waits up to close_timeout for the POST's answer (to DELETE what it made).
    "application POST": ("applications", {"close_timeout": 1.0}),
    # Latency holds the first P-GET; a long settle keeps the channel "connecting".
    "channel connect": ("pget", {"reconnect_settle": 30.0}),
    "makeMeAvailable": ("makeMeAvailable", {}),
}


@pytest.mark.parametrize("step", list(_OPEN_STEPS))
async def test_aclose_while_open_waits_closes_for_good(
    simulator: UcwaSimulator,
    make_session: SessionFactory,
    no_leftover_tasks: Callable[[], None],
    step: str,
) -> None:
    target, options = _OPEN_STEPS[step]
    simulator.faults.latency(30.0, target=target)
    session = make_session(simulator, keepalive_interval=0.05, **options)
    opening = asyncio.create_task(session.open())
    await until(_latency_fired(simulator))
    assert session.state is State.OPENING
    async with asyncio.timeout(5):
        await session.aclose()
    assert session.state is State.CLOSED
    # open() learns that it was closed under it; it never comes back to "open".
    with pytest.raises(ucwa_async.SessionClosedError, match="closed while it was opening"):
        await asyncio.wait_for(opening, 5)
    assert session.state is State.CLOSED
    simulator.faults.latency(0, target=target)
    requests_after_close = len(simulator.request_log)
    await asyncio.sleep(0.2)  # four keep-alive intervals: none may run
    assert not [r for r in simulator.request_log if r.kind == "reportMyActivity"]
    with pytest.raises(ucwa_async.SessionClosedError):
        await session.conversation_logs()
    assert session._client is not None
    assert session._client.closed
    await assert_no_leftover_tasks(no_leftover_tasks)
    assert len(simulator.request_log) <= requests_after_close + 1  # at most the held one
    assert simulator.application_ids == []


# --- cancellation at every await point of open() and aclose() ----------------------------

_CLOSE_STEPS = ("channel stop", "DELETE of the application", "aiohttp close")


@pytest.mark.parametrize("step", [*_OPEN_STEPS, *_CLOSE_STEPS])
async def test_cancel_at_every_await_point(
    simulator: UcwaSimulator,
    make_session: SessionFactory,
    no_leftover_tasks: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    options = _OPEN_STEPS[step][1] if step in _OPEN_STEPS else {}
    session = make_session(simulator, **options)
    hold = _Hold()
    if step in _OPEN_STEPS:
        simulator.faults.latency(30.0, target=_OPEN_STEPS[step][0])
        victim = asyncio.create_task(session.open())
        await until(_latency_fired(simulator))
        assert session.state is State.OPENING
        stream = session.events()  # a consumer subscribed while the session opens
    else:
        await session.open()
        stream = session.events()
        if step == "channel stop":
            assert session._channel is not None
            monkeypatch.setattr(session._channel, "stop", hold.wrap(session._channel.stop))
        elif step == "aiohttp close":
            client = session._client

            original_close = aiohttp.ClientSession.close

            async def close(self: aiohttp.ClientSession) -> None:
                if self is client:
                    await hold.wrap(original_close)(self)
                else:  # pragma: no cover - only the session's client is closed here
                    await original_close(self)

            monkeypatch.setattr(aiohttp.ClientSession, "close", close)
        else:
            simulator.faults.latency(30.0, target="delete")
        victim = asyncio.create_task(session.aclose())
        if step == "DELETE of the application":
            await until(_latency_fired(simulator))
        else:
            await asyncio.wait_for(hold.entered.wait(), 5)
    consumer = asyncio.create_task(_consume(stream))
    await asyncio.sleep(0.05)
    assert not victim.done()
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(victim, 5)
    assert session.state is State.CLOSED
    assert session.closed
    # events() consumers end (with ChannelClosed), whatever step was interrupted.
    items = await asyncio.wait_for(consumer, 2)
    assert items
    assert isinstance(items[-1], ucwa_async.ChannelClosed)
    assert session.channel_state is ucwa_async.ChannelStatus.CLOSED
    # A second aclose() returns promptly and finishes what was cut short.
    await asyncio.wait_for(session.aclose(), 2)
    assert session._client is not None
    assert session._client.closed
    with pytest.raises(ucwa_async.SessionClosedError):
        await session.conversation_logs()
    with pytest.raises(ucwa_async.SessionClosedError):
        await session.open()
    simulator.faults.latency(0, target="any")
    for target, _ in _OPEN_STEPS.values():
        simulator.faults.latency(0, target=target)
    simulator.faults.latency(0, target="delete")
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_aclose_cancelled_during_delete_ends_streams_and_invitations(
    make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    config = SimulatorConfig(completion_delay=30.0)
    async with UcwaSimulator(config) as sim:
        session = make_session(sim)
        await session.open()
        logs = await session.conversation_logs(limit=1)
        pending = await session.continue_messaging(logs[0], message="pending at close")
        first, second = session.events(), session.events()
        consumers = [asyncio.create_task(_consume(s)) for s in (first, second)]
        sim.faults.latency(30.0, target="delete")
        closing = asyncio.create_task(session.aclose())
        await until(_latency_fired(sim))
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        for consumer in consumers:
            items = await asyncio.wait_for(consumer, 2)
            assert isinstance(items[-1], ucwa_async.ChannelClosed)
        with pytest.raises(ucwa_async.SessionClosedError):
            await asyncio.wait_for(pending.wait(), 2)
        assert session._client is not None
        assert session._client.closed
        await asyncio.wait_for(session.aclose(), 2)
        sim.faults.latency(0, target="delete")
        await assert_no_leftover_tasks(no_leftover_tasks)


# --- 3. a fresh exception per raise -------------------------------------------------------


async def test_a_failed_channel_raises_a_fresh_error_each_time(
    make_session: SessionFactory,
) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim, app_create_retries=0) as session:
        stream = session.events()
        # The application is lost and can never be re-created: the channel fails.
        sim.faults.html_access_denied(next_n=1000)
        sim.faults.delete_application()
        async with asyncio.timeout(20):
            async for item in stream:
                if isinstance(item, ucwa_async.ChannelFailed):
                    break
        errors: list[ucwa_async.ChannelFailedError] = []
        for _ in range(200):
            try:
                await session.conversation_logs()
            except ucwa_async.ChannelFailedError as exc:
                errors.append(exc)
        assert len(errors) == 200
        assert len({id(e) for e in errors}) == 200  # distinct objects
        last = errors[-1]
        assert len(traceback.extract_tb(last.__traceback__)) < 20
        stored = session._channel.error if session._channel is not None else None
        assert stored is not None
        assert stored not in errors
        # chained to the stored cause, message kept
        assert last.cause is stored.cause
        assert last.__cause__ is stored.cause
        assert str(last) == str(stored)
        assert isinstance(last.cause, ucwa_async.UcwaError)
        with pytest.raises(ucwa_async.ChannelFailedError) as info:
            await session.wait_connected(timeout=1)
        assert info.value is not stored
        assert len(traceback.extract_tb(info.value.__traceback__)) < 20


# --- 4. calls in flight at close get SessionClosedError -----------------------------------


async def test_calls_in_flight_at_close_get_session_closed(
    simulator: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    session = make_session(simulator)
    await session.open()
    logs = await session.conversation_logs(limit=1)
    # The continue POST answers CallbackChannelError (twice: the first retry goes as soon
    # as the fresh P-GET is sent, issue 13); the re-established channel then meets 503 +
    # Retry-After 30: the second retry waits for a reconnect that does not come.
    simulator.faults.service_unavailable(next_n=1000, retry_after=30, target="pget")
    simulator.faults.callback_channel_error(next_n=2)
    posting = asyncio.create_task(session.continue_messaging(logs[0], message="in flight"))
    await until(lambda: simulator.counters.faults_injected["service_unavailable"] >= 1)
    await until(lambda: session.channel_state is ucwa_async.ChannelStatus.RECONNECTING)
    waiting = asyncio.create_task(session.wait_connected())
    await asyncio.sleep(0.05)
    assert not posting.done()
    assert not waiting.done()
    async with asyncio.timeout(5):
        await session.aclose()
    for task in (posting, waiting):
        with pytest.raises(ucwa_async.SessionClosedError):
            await asyncio.wait_for(task, 2)
    await assert_no_leftover_tasks(no_leftover_tasks)


# --- 6. makeMeAvailable is a link of me ---------------------------------------------------


@pytest.mark.parametrize(
    ("link", "path", "expected"),
    [
        ("me", "communication", "/communication/makeMeAvailable"),  # the reference samples
        ("me", "me", "/me/makeMeAvailable"),
        ("communication", "communication", "/communication/makeMeAvailable"),  # fallback
        ("none", "communication", None),
    ],
)
async def test_make_me_available_is_looked_up_on_me(
    make_session: SessionFactory,
    caplog: pytest.LogCaptureFixture,
    link: Any,
    path: Any,
    expected: str | None,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    config = SimulatorConfig(make_me_available_link=link, make_me_available_path=path)
    async with UcwaSimulator(config) as sim, make_session(sim):
        mma = [r for r in sim.request_log if r.kind == "makeMeAvailable"]
        if expected is None:
            assert mma == []
        else:
            assert [(r.method, r.status) for r in mma] == [("POST", 204)]
            assert mma[0].path.endswith(expected)
    messages = {(r.levelno, r.getMessage()) for r in caplog.records}
    fallback = (logging.DEBUG, "makeMeAvailable is not linked from me; using communication's link")
    skipped = (logging.INFO, "no makeMeAvailable link on me; skipping (already available?)")
    assert (fallback in messages) is (link == "communication")
    assert (skipped in messages) is (link == "none")


async def test_one_make_me_available_per_created_application(
    make_session: SessionFactory,
) -> None:
    async with UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim:
        async with make_session(sim) as session, session.events() as stream:
            for round_ in range(3):
                assert sim.faults.delete_application() == 1
                async with asyncio.timeout(10):
                    async for item in stream:
                        if isinstance(item, ucwa_async.ApplicationRecreated):
                            break
                # wait (bounded) for the new application's makeMeAvailable
                await until(
                    lambda r=round_: (
                        len([x for x in sim.request_log if x.kind == "makeMeAvailable"]) >= r + 2
                    )
                )
            await asyncio.sleep(0.2)  # room for a duplicate to show up
        assert session.stats.applications_created == 4
    mma = [r for r in sim.request_log if r.kind == "makeMeAvailable"]
    per_app: dict[str, int] = {}
    for record in mma:
        app_id = record.path.split("/applications/")[1].split("/")[0]
        per_app[app_id] = per_app.get(app_id, 0) + 1
    assert len(per_app) == 4
    assert set(per_app.values()) == {1}
    assert all(r.status == 204 for r in mma)


@pytest.mark.parametrize("when", ["open", "re-created"])
async def test_a_make_me_available_whose_answer_is_lost_is_posted_again(
    make_session: SessionFactory, when: str
) -> None:
    """The server took makeMeAvailable, its 204 was lost (the connection dropped): it is
    POSTed once more, and the server's 409 AlreadyExists (makeMeAvailable_ref.md:
    "Multiple invocations of this operation is not valid") says it was taken. open()
    raised the TransportError, for an application the server had made available."""
    async with UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim:
        if when == "open":
            sim.faults.late_answer(0.1, target="makeMeAvailable", drop=True)
        async with make_session(sim, available_for=("Messaging",)) as session:
            if when == "re-created":
                async with session.events() as stream:
                    sim.faults.late_answer(0.1, target="makeMeAvailable", drop=True)
                    assert sim.faults.delete_application() == 1
                    async with asyncio.timeout(10):
                        async for item in stream:
                            if isinstance(item, ucwa_async.ApplicationRecreated):
                                break
                    await until(
                        lambda: (
                            [r.status for r in sim.request_log if r.kind == "makeMeAvailable"][-1:]
                            == [409]
                        )
                    )
            assert sim.counters.faults_injected["late_answer"] == 1
            mma = [r.status for r in sim.request_log if r.kind == "makeMeAvailable"]
            assert mma[-1] == 409  # the second one: the first was taken
            async with session.incoming() as invitations:
                await sim.incoming_message("sip:lenea@contoso.com", "still reachable?")
                async with asyncio.timeout(10):
                    assert (await anext(invitations)).message == "still reachable?"


# --- 7. conversation_logs(): a bounded pool of fetchers -----------------------------------


async def test_conversation_logs_fetch_with_a_bounded_pool(
    make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    async with UcwaSimulator(SimulatorConfig(conversation_logs=200)) as sim:
        async with make_session(sim) as session:
            baseline = len(_client_tasks())
            peak = baseline
            done = False

            async def sample() -> None:
                nonlocal peak
                for _ in range(1_000_000):  # bounded; ends with the call below
                    peak = max(peak, len(_client_tasks()))
                    if done:
                        return
                    await asyncio.sleep(0)

            sampler = asyncio.create_task(sample())
            logs = await session.conversation_logs()
            done = True
            await sampler
            assert len(logs) == 200
            # every log fetched exactly once
            listed = [r.path for r in sim.request_log if r.kind == "conversationLog"]
            # (log hrefs are absolute; the request log has paths)
            assert sorted(log.href.removeprefix(sim.base_url) for log in logs) == sorted(listed)
            assert len(set(listed)) == 200
            # 8 fetchers (and the P-GET's task), not 200 tasks
            assert peak - baseline <= 8 + 1
            # limit applies before fetching
            before = len(listed)
            assert len(await session.conversation_logs(limit=5)) == 5
            fetched = [r for r in sim.request_log if r.kind == "conversationLog"]
            assert len(fetched) - before == 5
        await assert_no_leftover_tasks(no_leftover_tasks)


async def test_conversation_logs_error_is_one_typed_error_and_leaves_no_task(
    make_session: SessionFactory,
) -> None:
    config = SimulatorConfig(conversation_logs=40)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        sim.faults.malformed_body(next_n=1, target="conversationLog")
        with pytest.raises(ucwa_async.UcwaError) as info:
            await session.conversation_logs()
        assert isinstance(info.value, ucwa_async.DecodeError)
        assert not isinstance(info.value, BaseExceptionGroup)
        await asyncio.sleep(0)
        assert _session_tasks() == []
        # cancelled while its GETs are held: nothing left behind either
        sim.faults.latency(30.0, target="conversationLog")
        listing = asyncio.create_task(session.conversation_logs())
        await until(_latency_fired(sim))
        listing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(listing, 2)
        await asyncio.sleep(0)
        assert _session_tasks() == []
        sim.faults.latency(0, target="conversationLog")
        # and the session still works
        assert len(await session.conversation_logs(limit=3)) == 3


# --- a continue POST that finds its application deleted ----------------------------------


async def test_continue_post_answered_application_not_found_is_posted_again(
    make_session: SessionFactory,
) -> None:
    """The server deleted the application while the POST was on its way: the POST gets the
    reference's ``404 {"code": "NotFound", "subcode": "ApplicationNotFound"}``
    (ApplicationDashboard.md, ExtendAPresenceSubscription.md); the session re-creates the
    application (its channel saw the loss too) and posts again there."""
    config = SimulatorConfig(completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.3, target="continue")
        first_app = session.application_url
        posting = asyncio.create_task(session.continue_messaging(logs[0], "hello"))
        await until(_latency_fired(sim))
        assert sim.faults.delete_application() == 1
        invitation = await asyncio.wait_for(posting, 10)
        sim.faults.latency(0, target="continue")
        assert isinstance(await asyncio.wait_for(invitation, 10), ucwa_async.MessagingInvitation)
        assert session.application_url != first_app
        refused = [r for r in sim.request_log if r.kind == "continue" and r.status == 404]
        assert len(refused) == 1
