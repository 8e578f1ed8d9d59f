"""``ChannelRunner``: the one long-poll (P-GET) task of a session.

The decisions (what a response means, which URL comes next, how long to back
off) are made by the sans-IO ``ChannelState``; this module only performs them:
it issues the GETs, sleeps, and hands batches to the session in order.

Rules it keeps:
- exactly one P-GET in flight; the next one is issued *before* a batch is
  processed, and batches are processed strictly in order;
- a reconnect request (CallbackChannelError on a POST) abandons the current
  P-GET at once and starts a fresh one on the same URL (same ack: the server
  re-sends anything not acknowledged); one that comes while the loop sleeps
  (backoff, Retry-After, pacing) ends the sleep and polls at once;
- answers that were not held wait the pacing delay ``ChannelState`` computes, so a
  server answering at once cannot make it spin;
- a lost application is re-created within a ``RecreationBudget`` (a pause that
  grows while new applications keep getting lost, a count per window), then the
  channel fails with ``ChannelFailedError``;
- the loop is never held long: a large body is decoded a step at a time, and a
  batch's events are parsed and handed to the session a slice at a time, with a
  turn for the loop after every ``WORK_SLICE`` seconds of it (so invitations resolve
  as their events are processed, not after the whole batch);
- a fresh P-GET counts as connected once the server has held it for ``settle``
  seconds (UCWA gives no other sign that it has registered it) or, for a reconnect
  requested with ``fast=True`` (a POST's first CallbackChannelError), as soon as it
  is on the wire (its headers sent, when the HTTP client can tell): the POST's retry
  then costs milliseconds, not ``settle``; a retry refused again asks for a held one;
- bad input never kills the task: only a ``Fatal`` action or the owner's
  cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar

from ucwa_async._core.backoff import Backoff
from ucwa_async._core.budget import RecreationBudget
from ucwa_async._core.channel import (
    ChannelAction,
    ChannelState,
    Deliver,
    Empty,
    Fatal,
    Reauthenticate,
    RecreateApplication,
    Replaced,
    Resume,
    Resync,
    Retry,
)
from ucwa_async._core.errors import (
    AuthenticationError,
    ChannelFailedError,
    SessionClosedError,
    UcwaError,
    refuses_every_application,
)
from ucwa_async._core.models import EventBatch, EventReader
from ucwa_async._events import (
    ChannelConnected,
    ChannelReconnected,
    ChannelReconnecting,
    ChannelSignal,
    ChannelStatus,
)
from ucwa_async._http import HttpResponse

__all__ = ["ChannelHost", "ChannelRunner"]

log = logging.getLogger("ucwa_async.channel")

# After this many PGetReplaced answers in a row, back off instead of re-polling at once:
# someone else is polling our application and we must not fight it in a tight loop.
_MAX_IMMEDIATE_REPLACED = 3
# Events parsed and handed to the session per step; after WORK_SLICE seconds of steps
# the loop gets a turn, so a batch of 60 000 events does not freeze it and invitations
# resolve as their events come (their futures' callbacks run in that turn).
DELIVERY_SLICE = 8
WORK_SLICE = 0.0005
# The most of a P-GET's duration taken for the network's round trip (see _read_outcome):
# a misestimate must not make polls a server held for seconds count as not held.
MAX_ROUND_TRIP = 1.0

T = TypeVar("T")


async def run_steps(steps: Generator[None, None, T]) -> T:
    """Run a step generator to its end, giving the loop a turn every ``WORK_SLICE``."""
    clock = time.perf_counter
    until = clock() + WORK_SLICE
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if clock() >= until:
            await asyncio.sleep(0)
            until = clock() + WORK_SLICE


class ChannelHost(Protocol):
    """What the runner needs from its session."""

    async def poll(self, url: str, sent: asyncio.Future[None] | None = None) -> HttpResponse:
        """One P-GET; ``sent`` is resolved once it is on the wire (if the host can tell)."""

    def deliver(self, batch: EventBatch) -> None: ...

    def resynced(self) -> None: ...

    def emit(self, signal: ChannelSignal) -> None: ...

    async def reauthenticate(self, url: str, error: UcwaError) -> None: ...

    def application_lost(self, error: UcwaError) -> None: ...

    async def recreate_application(self, error: UcwaError) -> str: ...

    def channel_failed(self, error: ChannelFailedError) -> None: ...


class ChannelRunner:
    """Owns the P-GET loop task; the session owns the runner."""

    def __init__(
        self,
        host: ChannelHost,
        events_url: str,
        *,
        pget_timeout: float,
        settle: float,
        backoff: Backoff,
        retry_after_cap: float,
        max_recreate_attempts: int = 5,
        recreations: RecreationBudget | None = None,
        round_trip: Callable[[], float] = lambda: 0.0,
    ) -> None:
        """``round_trip()``: seconds a request to the server takes without being held
        (the pacing of answers that were not held counts beyond it)."""
        self._host = host
        self._round_trip = round_trip
        self._state = ChannelState(
            events_url, timeout=pget_timeout, backoff=backoff, retry_after_cap=retry_after_cap
        )
        self._recreations = recreations if recreations is not None else RecreationBudget()
        self._settle = settle
        self._backoff = backoff
        self._max_recreate_attempts = max_recreate_attempts
        self.status = ChannelStatus.CONNECTING
        self.generation = 0
        self.error: ChannelFailedError | None = None
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[HttpResponse] | None = None
        self._sent: asyncio.Future[None] | None = None  # the in-flight P-GET is on the wire
        self._wake: asyncio.Future[None] | None = None
        self._pending_reason: tuple[str, BaseException | None] | None = None
        self._pending_fast = False  # the pending reconnect trusts a P-GET on the wire
        self._fast_next = False  # the next P-GET counts as connected once on the wire
        self._generation_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._down_since = 0.0
        self._attempts = 0
        self._replaced_in_row = 0
        self._sleeping = False
        self._poll_started = 0.0

    # -- owner API -----------------------------------------------------------------

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("channel already started")
        self._wake = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="ucwa_async.event-channel")

    async def stop(self) -> None:
        """Cancel the loop and wait for it; idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._set_status(ChannelStatus.CLOSED)
        self._release_waiters()

    @property
    def current_url(self) -> str:
        return self._state.current_url

    def request_reconnect(
        self, reason: str, error: BaseException | None, seen: int, *, fast: bool = False
    ) -> None:
        """Abandon the current P-GET and start a fresh one.

        ``fast``: the fresh P-GET counts as connected as soon as it is on the wire,
        not after ``settle`` seconds held (a first CallbackChannelError: the POST that
        got it retries at once; a later one should not trust that again).

        ``seen`` is the generation the caller observed when its request failed:
        if the channel has reconnected since, nothing is forced again, so a
        burst of failing POSTs causes one reconnect, not hundreds. While the loop
        sleeps (backoff, Retry-After, pacing) the request ends the sleep, whatever
        the status; while a fresh P-GET is already on its way (not connected yet)
        there is nothing to force.
        """
        if self.error is not None or self._task is None:
            return
        if self.generation != seen:
            return
        if self.status is not ChannelStatus.CONNECTED and not self._sleeping:
            return
        if self._pending_reason is None:
            self._pending_fast = fast
        else:  # several requests before the loop woke: fast only if all of them are
            self._pending_fast = self._pending_fast and fast
        self._pending_reason = (reason, error)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait_generation_after(self, seen: int) -> None:
        """Wait until the channel is connected in a generation newer than ``seen``."""
        self._raise_if_failed()
        if self.generation > seen and self.status is ChannelStatus.CONNECTED:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._generation_waiters.append((seen, waiter))
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
        self._raise_if_failed()

    async def wait_connected(self) -> None:
        if self.status is ChannelStatus.CONNECTED:
            return
        await self.wait_generation_after(self.generation - 1 if self.generation else 0)

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            self._inflight = self._start_poll()
            while True:
                await self._wait_for_poll()
                assert self._inflight is not None
                action = await self._read_outcome(self._inflight)
                self._inflight = None
                if not await self._perform(action):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: report it to every waiter, never hang them
            log.exception("event channel crashed")
            self._fail(ChannelFailedError(f"event channel crashed: {exc!r}", cause=exc))
        finally:
            inflight, self._inflight = self._inflight, None
            if inflight is not None:
                if not inflight.done():
                    inflight.cancel()
                    await asyncio.gather(inflight, return_exceptions=True)
                elif not inflight.cancelled():
                    # A P-GET that failed while the loop was stopping (or delivering): its
                    # error is no news now, but unread it would be logged as "never
                    # retrieved" when the task is collected.
                    inflight.exception()

    def _start_poll(self) -> asyncio.Task[HttpResponse]:
        url = self._state.poll_url()
        self._poll_started = time.monotonic()
        sent: asyncio.Future[None] | None = None
        if self._fast_next:
            self._fast_next = False
            sent = asyncio.get_running_loop().create_future()
        self._sent = sent
        return asyncio.create_task(self._host.poll(url, sent), name="ucwa_async.pget")

    async def _wait_for_poll(self) -> None:
        """Return when the in-flight poll has finished; handle wake-ups meanwhile."""
        while True:
            assert self._inflight is not None
            assert self._wake is not None
            connected = self.status is ChannelStatus.CONNECTED
            waits: set[asyncio.Future[Any]] = {self._inflight, self._wake}
            sent = self._sent
            if not connected and sent is not None:
                waits.add(sent)
            done, _ = await asyncio.wait(
                waits,
                timeout=None if connected else self._settle,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._inflight in done:
                return
            if self._wake in done:
                reason, error = self._take_wake()
                await self._abandon_poll()
                self._enter_reconnecting(reason, error)
                self._inflight = self._start_poll()
                continue
            # The server has held our fresh P-GET for ``settle`` seconds (or, for a fast
            # reconnect, it is on the wire): the channel is registered.
            if sent is None or sent not in done:
                self._recreations.proven()
            self._mark_connected()

    async def _abandon_poll(self) -> None:
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            inflight.cancel()
            await asyncio.gather(inflight, return_exceptions=True)

    async def _read_outcome(self, poll: asyncio.Task[HttpResponse]) -> ChannelAction:
        # How long the server held the P-GET: what it took beyond a round trip. A distant
        # server answering at once takes a round trip (0.1-0.3 s), which alone must not
        # count as held, or it is polled back to back.
        round_trip = min(max(self._round_trip(), 0.0), MAX_ROUND_TRIP)
        elapsed = max(time.monotonic() - self._poll_started - round_trip, 0.0)
        try:
            response = poll.result()
        except UcwaError as exc:
            log.info("event channel poll failed: %s", exc)
            return self._state.on_transport_error(exc, elapsed=elapsed)
        # Decoding megabytes takes seconds of CPU: a large body is decoded in steps.
        return await run_steps(
            self._state.on_response_steps(
                response.status,
                response.content_type,
                response.body,
                retry_after=response.retry_after,
                elapsed=elapsed,
            )
        )

    async def _perform(self, action: ChannelAction) -> bool:
        """Carry out one action; False ends the loop."""
        if isinstance(action, Deliver):
            self._replaced_in_row = 0
            if action.events.may_hold_events:
                self._recreations.proven()
            if action.wait <= 0:
                self._inflight = self._start_poll()  # next P-GET first, then process
            self._mark_connected()
            await self._deliver(action.events)
            if self._inflight is None:
                await self._sleep(action.wait)
                self._inflight = self._start_poll()
        elif isinstance(action, Empty):
            self._replaced_in_row = 0
            self._mark_connected()
            await self._sleep(action.wait)
            self._inflight = self._start_poll()
        elif isinstance(action, Resync):
            log.info("event channel asked to resync")
            if action.wait <= 0:
                self._inflight = self._start_poll()
            self._host.resynced()
            if self._inflight is None:
                await self._sleep(action.wait)
                self._inflight = self._start_poll()
        elif isinstance(action, Resume):
            # "resume": the server reset its transient state (EventsInUCWA.md); what we
            # cached of it is re-read, as after a resync, and the batch's events (it has
            # next's function) are processed after that.
            log.info("event channel resumed: the server reset its transient state")
            self._replaced_in_row = 0
            if action.wait <= 0:
                self._inflight = self._start_poll()
            self._host.resynced()
            if action.events is not None:
                if action.events.may_hold_events:
                    self._recreations.proven()
                self._mark_connected()
                await self._deliver(action.events)
            if self._inflight is None:
                await self._sleep(action.wait)
                self._inflight = self._start_poll()
        elif isinstance(action, Replaced):
            self._replaced_in_row += 1
            if self._replaced_in_row > _MAX_IMMEDIATE_REPLACED:
                self._enter_reconnecting("event channel P-GET replaced repeatedly", action.error)
                await self._sleep(self._backoff.delay(self._replaced_in_row))
            self._inflight = self._start_poll()
        elif isinstance(action, Reauthenticate):
            self._enter_reconnecting("access token expired", action.error)
            try:
                await self._host.reauthenticate(self._state.current_url, action.error)
            except AuthenticationError as exc:  # the grant itself was refused: for good
                self._fail(ChannelFailedError(f"re-authentication failed: {exc}", cause=exc))
                return False
            except UcwaError as exc:  # the token endpoint is throttled or unreachable
                # The transport logs failed grants itself, a run of them aggregated (and
                # RetryLaterError: waiting them out): not a line per poll here.
                log.debug("re-authentication failed, will retry: %s", exc)
                await self._sleep(self._backoff.delay(self._state.attempt))
            self._inflight = self._start_poll()
        elif isinstance(action, RecreateApplication):
            return await self._recreate(action.error)
        elif isinstance(action, Retry):
            self._enter_reconnecting(f"event channel error: {action.error}", action.error)
            await self._sleep(action.after)
            self._inflight = self._start_poll()
        elif isinstance(action, Fatal):
            self._fail(
                ChannelFailedError(f"event channel failed: {action.error}", cause=action.error)
            )
            return False
        else:  # pragma: no cover - exhaustive over ChannelAction
            raise AssertionError(f"unknown channel action {action!r}")
        return True

    async def _deliver(self, events: EventReader) -> None:
        """Parse and hand a batch's events to the session a slice at a time, giving the
        loop a turn every ``WORK_SLICE`` seconds."""
        await run_steps(self._deliver_steps(events))

    def _deliver_steps(self, events: EventReader) -> Generator[None, None, None]:
        while events.items:
            self._deliver_part(events.take(DELIVERY_SLICE))
            yield

    def _deliver_part(self, batch: EventBatch) -> None:
        try:
            self._host.deliver(batch)
        except Exception:  # a bug in processing must not take the channel down
            log.exception("processing an event batch failed; channel continues")

    async def _recreate(self, error: UcwaError) -> bool:
        self._enter_reconnecting(f"application lost: {error}", error)
        self._host.application_lost(error)  # its invitations end now, whatever the pause
        budget = self._recreations
        pause = budget.next_delay(time.monotonic())
        if pause is None:
            unproven, every = budget.used(time.monotonic())
            why = (
                f"{unproven} new application(s) lost before their channel worked"
                if unproven >= budget.limit
                else f"the application was re-created {every} times"
            )
            self._fail(
                ChannelFailedError(
                    f"{why} within {budget.window:g} s; giving up (last: {error})", cause=error
                )
            )
            return False
        if pause > 0:
            # Not woken by reconnect requests: the application is gone, and hurrying
            # is what a server answering 404 to everything would turn into a loop.
            log.info("application lost again; re-creating it in %.1f s", pause)
            await asyncio.sleep(pause)
        for attempt in range(self._max_recreate_attempts):
            try:
                events_url = await self._host.recreate_application(error)
            except UcwaError as exc:
                log.warning("re-creating the application failed (attempt %d): %s", attempt + 1, exc)
                error = exc
                if refuses_every_application(exc):
                    break  # another POST would be refused alike (ApplicationDashboard.md)
                await asyncio.sleep(self._backoff.delay(attempt))  # not woken either
                continue
            budget.created(time.monotonic())
            self._state.reset(events_url)
            self._take_wake()  # a request for the old application's channel is moot
            self._fast_next = False
            self._inflight = self._start_poll()
            return True
        self._fail(ChannelFailedError(f"could not re-create the application: {error}", cause=error))
        return False

    async def _sleep(self, delay: float) -> None:
        """Back off, but wake early when a reconnect is requested: the caller polls next,
        and the channel counts as reconnecting until that poll is held or answered."""
        assert self._wake is not None
        if delay <= 0:
            return
        self._sleeping = True
        try:
            async with asyncio.timeout(delay):
                await asyncio.shield(self._wake)
        except TimeoutError:
            return
        finally:
            self._sleeping = False
        reason, error = self._take_wake()
        log.info("backoff cut short: %s", reason)
        # A POST is waiting for a newer generation: the next poll must produce one.
        self._enter_reconnecting(reason, error)

    def _take_wake(self) -> tuple[str, BaseException | None]:
        """Consume a pending reconnect request (if any); its reason. The next P-GET is
        trusted once on the wire if the request said ``fast``."""
        if self._wake is not None and self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        self._fast_next = self._pending_reason is not None and self._pending_fast
        self._pending_fast = False
        pending, self._pending_reason = self._pending_reason, None
        return pending or ("reconnect requested", None)

    # -- status --------------------------------------------------------------------

    def _enter_reconnecting(self, reason: str, error: BaseException | None) -> None:
        if self.status is ChannelStatus.RECONNECTING:
            self._attempts += 1
            return
        if self.status is ChannelStatus.CONNECTING:
            self._attempts += 1
            log.info("event channel not up yet: %s", reason)
            return
        self._attempts = 1
        self._down_since = time.monotonic()
        self.reconnects += 1
        self._set_status(ChannelStatus.RECONNECTING)
        log.warning("event channel reconnecting: %s", reason)
        self._host.emit(ChannelReconnecting(reason=reason, error=error))

    def _mark_connected(self) -> None:
        if self.status is ChannelStatus.CONNECTED:
            return
        previous = self.status
        self.generation += 1
        self._set_status(ChannelStatus.CONNECTED)
        if previous is ChannelStatus.RECONNECTING:
            downtime = time.monotonic() - self._down_since
            log.info("event channel reconnected after %d attempt(s)", self._attempts)
            self._host.emit(ChannelReconnected(attempts=self._attempts, downtime=downtime))
        else:
            log.info("event channel connected")
            self._host.emit(ChannelConnected(events_url=self._state.current_url))
        self._attempts = 0
        self._release_waiters()

    def _set_status(self, status: ChannelStatus) -> None:
        self.status = status

    def _release_waiters(self) -> None:
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for seen, waiter in self._generation_waiters:
            if waiter.done():
                continue
            ended = self.error is not None or self.status is ChannelStatus.CLOSED
            moved_on = self.generation > seen and self.status is ChannelStatus.CONNECTED
            if ended or moved_on:
                waiter.set_result(None)
            else:
                keep.append((seen, waiter))
        self._generation_waiters = keep

    def _fail(self, error: ChannelFailedError) -> None:
        log.error("%s", error)
        self.error = error
        self._set_status(ChannelStatus.FAILED)
        self._release_waiters()
        self._host.channel_failed(error)

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error.renewed() from self.error.cause
        if self.status is ChannelStatus.CLOSED and self._task is None and self.generation:
            raise SessionClosedError("the session closed its event channel")
