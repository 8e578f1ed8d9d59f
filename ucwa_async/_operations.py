"""The operations table: every invitation from its POST to its one outcome.

One job: start an operation, bind its Location, apply what the event channel says about
it, expire, cancel and read it back — so each ``Invitation`` ends exactly once, and no
call the server accepted is ever left ringing with nobody able to see it.

- **start**: the operationId is registered with the ``Correlator`` *before* the POST
  (events can beat the 201). The POST runs in a task the session owns, not in the
  caller's: a caller that gives up (its task cancelled, an ``asyncio.timeout`` around
  ``continue_*()``) leaves it running; if the 201 then arrives with nobody waiting, the
  invitation is cancelled on the server (best effort, bounded, counted). A second start
  with the same operationId while the first is pending joins it: no second POST. The
  invitation's timeout counts from the 201.
- **cancel**: one cancel POST per invitation, shared by concurrent callers, run by the
  session; a failure other than our own cancellation reported meanwhile (Declined,
  Busy...) is the server's outcome and is kept.
- **read-back**: one path GETs an invitation for link-only completions, resync re-reads,
  a cancel without a cancel link and ``attach``; at most ``_READERS`` GETs at once, one
  per invitation at a time, and resync re-reads in waves (``RereadWaves``).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ucwa_async import _outcome
from ucwa_async._answers import answered_self, failure_text
from ucwa_async._application import Application
from ucwa_async._core import wire as _wire
from ucwa_async._core.correlate import (
    IN_PROGRESS_STATES,
    Correlator,
    Failed,
    NeedsLookup,
    Progress,
    Succeeded,
    check_operation_id,
    new_operation_id,
)
from ucwa_async._core.errors import (
    ApplicationNotFoundError,
    CallbackChannelError,
    ChannelFailedError,
    InvitationFailedError,
    InvitationLostError,
    InvitationTimeoutError,
    NotFoundError,
    SessionClosedError,
    TransportError,
    UcwaError,
)
from ucwa_async._core.models import (
    EventBatch,
    MessagingInvitation,
    PhoneAudioInvitation,
    Resource,
    parse_resource,
)
from ucwa_async._core.rereads import RereadWaves
from ucwa_async._deadlines import Deadlines
from ucwa_async._http import HttpResponse
from ucwa_async._invitation import Invitation
from ucwa_async._outcome import consume_exception, shielded
from ucwa_async._transport import Transport

if TYPE_CHECKING:
    from ucwa_async._channel import ChannelRunner
    from ucwa_async._conversation import Conversation
    from ucwa_async._session import SessionStats

__all__ = ["OperationTable"]

log = logging.getLogger("ucwa_async.session")
# The resource a POST may answer in its body (see answered_self).
_INVITATION_RELS = frozenset({"messagingInvitation", "phoneAudioInvitation"})

_InvT = TypeVar("_InvT", MessagingInvitation, PhoneAudioInvitation)
_TERMINAL_SUCCESS = frozenset({"connected", "success"})
# A continue POST that got no answer (TransportError) may still have reached the server:
# the call waits up to _outcome.UNANSWERED_GRACE for the event channel to name its
# operationId (and so does a retry with the same operation_id); its operationId is then
# watched for _UNANSWERED_WATCH (at most its invitation timeout), for at most
# _MAX_UNANSWERED POSTs.
_UNANSWERED_WATCH = 60.0
_MAX_UNANSWERED = 1024
_READERS = 8  # invitation GETs at once: a resync with 10 000 pending is not 10 000 GETs
_RESYNC_WAVE_INTERVAL = 1.0  # seconds between the starts of two resync re-read waves

# What a read-back is for: "success" (a completed/Success event without the resource),
# "completed" (a completed event that does not say how it ended), "pending" (a resync
# may have dropped its events: the invitation is still in the table).
ReadMode = Literal["success", "completed", "pending"]
Verdict = Literal["pending", "connected", "failed", "unknown"]


class _Start:
    """A continue POST in flight: ``posted`` resolves at its answer; ``waiters`` callers
    are waiting for it (none left at the 201: the call was abandoned)."""

    __slots__ = ("invitation", "posted", "since", "timeout", "waiters")

    def __init__(
        self, invitation: Invitation[Any], posted: asyncio.Future[None], timeout: float
    ) -> None:
        self.invitation = invitation
        self.posted = posted
        self.timeout = timeout
        self.waiters = 0
        # Before the POST is sent (the correlator's clock): events that came earlier are
        # not about the invitation it makes.
        self.since = time.monotonic()


class _Unanswered:
    """A continue POST that got no answer: the server may have made its invitation.
    ``named`` resolves when the channel names the operation (``seen``) or the watch
    ends; the POST's own task, then a retry with the same operation_id, wait on it
    (``waiters``) to take that invitation (``taken``: one of them did); with nobody
    waiting, it is cancelled on the server."""

    __slots__ = ("invitation", "named", "seen", "since", "taken", "waiters")

    def __init__(
        self, invitation: Invitation[Any], named: asyncio.Future[None], since: float
    ) -> None:
        self.invitation = invitation
        self.named = named
        self.since = since  # its POST's _Start.since
        self.waiters = 0
        self.seen = False
        self.taken = False


class _Cancel:
    """A cancel POST in flight; ``deferred`` ends the invitation the way the server
    reported meanwhile, should the cancel fail."""

    __slots__ = ("deferred", "done", "msg")

    def __init__(self, done: asyncio.Future[None], msg: str | None) -> None:
        self.done = done
        self.msg = msg  # Invitation.cancel(msg): the CancelledError's message
        self.deferred: Callable[[], None] | None = None


class _Read:
    __slots__ = ("href", "invitation", "mode")

    def __init__(self, invitation: Invitation[Any], href: str | None, mode: ReadMode) -> None:
        self.invitation = invitation
        self.href = href
        self.mode = mode


class OperationTable:
    """Pending invitations, their correlation, and how each one ends."""

    def __init__(
        self,
        *,
        transport: Transport,
        application: Application,
        channel: Callable[[], ChannelRunner],
        stats: SessionStats,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        ensure_usable: Callable[[], None],
        wire_format: Literal["json", "xml"],
        invitation_timeout: float,
        max_callback_retries: int,
        connect_timeout: float,
    ) -> None:
        self._transport = transport
        self._app = application
        self._channel = channel
        self._stats = stats
        self._spawn = spawn
        self._ensure_usable = ensure_usable
        self._wire_format = wire_format
        self._invitation_timeout = invitation_timeout
        self._max_callback_retries = max_callback_retries
        self._connect_timeout = connect_timeout
        self._correlator = Correlator(normalize=application.key)
        self._invitations: dict[str, Invitation[Any]] = {}
        self._starting: dict[str, _Start] = {}  # continue POSTs in flight
        self._cancels: dict[str, _Cancel] = {}  # cancel POSTs in flight
        self._abandoning: dict[str, asyncio.Future[None]] = {}  # abandoned, being cancelled
        self._unanswered: dict[str, _Unanswered] = {}  # POSTs without an answer, watched
        # Unclaimed invitations read for them: being read (with the read's answer), and
        # the operationId each named.
        self._looking: dict[str, asyncio.Future[str | None]] = {}
        self._looked: collections.OrderedDict[str, str | None] = collections.OrderedDict()
        # The correlator's unclaimed invitations, scanned once for all the calls that look
        # among them (see _unclaimed): None when events came, a read ended, or a bind.
        self._scan: tuple[list[tuple[float, str]], dict[str, list[str]]] | None = None
        self._scanned_at = 0.0
        self._scan_since = 0.0  # the oldest watched POST's time when it was made
        self._resyncs = 0  # resyncs so far: a POST that spans one re-reads its invitation
        # Read-backs: queued (in order), in flight (one per invitation), asked again
        # while in flight (its GET may predate a resync).
        self._read_queue: collections.OrderedDict[str, _Read] = collections.OrderedDict()
        self._reading: dict[str, _Read] = {}
        self._read_again: dict[str, _Read] = {}
        self._readers = 0
        self._waves = RereadWaves(_RESYNC_WAVE_INTERVAL)
        self._wave: set[str] = set()  # operations the running wave has still to read
        self._wave_timer: asyncio.TimerHandle | None = None
        # Invitation timeouts: one heap and one loop timer, not a call_later each.
        self._deadlines = Deadlines(self._deadline_passed, self._deadline_live)
        self._closed = False
        # Set by the session: what Invitation.conversation() calls with the final resource.
        self.conversation_factory: Callable[[Invitation[Any], Any], Conversation] | None = None
        # One bound method for every invitation (``self.request_cancel`` makes a new one
        # on each access: 64 bytes per pending invitation).
        self._canceller = self.request_cancel

    def __len__(self) -> int:
        # A watched unanswered POST's invitation is tracked, but no caller holds it
        # (unless its call, or a retry, still waits for the channel's word on it).
        if not self._unanswered:
            return len(self._invitations)
        unheld = sum(1 for watch in self._unanswered.values() if watch.waiters == 0)
        return len(self._invitations) - unheld

    # -- start -------------------------------------------------------------------------

    async def start(
        self,
        rel: str,
        url: str,
        body: Mapping[str, Any],
        operation_id: str,
        timeout: float | None,
        model: type[_InvT],
    ) -> Invitation[_InvT]:
        if operation_id in self._unanswered and operation_id not in self._starting:
            await self._retry_unanswered(operation_id, rel, timeout)
        abandoning = self._abandoning.get(operation_id)
        if abandoning is not None:
            # Its caller gave up and the session is cancelling it: a retry must not get
            # a handle about to be cancelled. Once cancelled, start afresh; if the cancel
            # failed, the invitation is still pending and the retry adopts it.
            await asyncio.shield(abandoning)
            self._ensure_usable()
        known = self._known(operation_id)
        if known is not None:
            # A retry of the same operation: join it, never POST it twice.
            if known.kind != rel:
                raise ValueError(f"operation_id {operation_id!r} is in use by a {known.kind}")
            entry = self._starting.get(operation_id)
            return known if entry is None else await self._join(entry)
        loop = asyncio.get_running_loop()
        invitation: Invitation[_InvT] = Invitation(
            operation_id=operation_id, kind=rel, loop=loop, canceller=self._canceller
        )
        invitation._conversation_factory = self.conversation_factory
        self._correlator.expect(operation_id)
        self._invitations[operation_id] = invitation
        posted: asyncio.Future[None] = loop.create_future()
        posted.add_done_callback(consume_exception)
        entry = _Start(invitation, posted, timeout or self._invitation_timeout)
        self._starting[operation_id] = entry
        self._spawn(self._run_start(entry, url, body))
        return await self._join(entry)

    def _known(self, operation_id: str) -> Invitation[Any] | None:
        """The handle of ``operation_id`` if it is pending or its outcome is being read."""
        invitation = self._invitations.get(operation_id)
        if invitation is not None:
            return invitation
        for reads in (self._read_queue, self._reading, self._read_again):
            read = reads.get(operation_id)
            if read is not None and read.mode != "pending":
                return read.invitation
        return None

    async def _join(self, entry: _Start) -> Invitation[Any]:
        entry.waiters += 1
        try:
            await shielded(entry.posted)
        except asyncio.CancelledError:
            entry.waiters -= 1
            posted = entry.posted
            invitation = entry.invitation
            if (
                entry.waiters == 0
                and posted.done()
                and not posted.cancelled()
                and posted.exception() is None
                and self._known(invitation.operation_id) is invitation
            ):
                # Cancelled in the turn the 201 landed: _run_start saw a waiter then, and
                # the handle never reached it. Nobody can see the call: cancel it.
                self._spawn(self._abandon(invitation))
            raise
        entry.waiters -= 1
        return entry.invitation

    async def _run_start(self, entry: _Start, url: str, body: Mapping[str, Any]) -> None:
        """The continue POST, in a task the session owns: it outlives a caller that gives up."""
        invitation = entry.invitation
        if entry.waiters == 0:
            # The caller gave up before the POST was sent: nothing reached the server.
            self._drop_start(entry)
            entry.posted.cancel()
            return
        resyncs = self._resyncs
        try:
            response, generation = await self._post_continue(url, body)
        except asyncio.CancelledError:
            self._drop_start(entry)
            _settle(entry.posted, SessionClosedError("the session closed during the POST"))
            raise
        except Exception as exc:
            error: Exception | None = exc
            if isinstance(exc, TransportError) and exc.request_sent is not False:
                error = await self._answer_from_channel(entry, exc)
            else:
                self._drop_start(entry)
            if error is not None:
                _settle(entry.posted, error)
                return
            response = None  # the channel answered for the lost 201
        self._starting.pop(invitation.operation_id, None)
        self._stats.invitations_started += 1
        try:
            if response is not None:
                self._accepted(entry, response, generation, resyncs)
            elif self._invitations.get(invitation.operation_id) is invitation:
                self._arm_timeout(invitation, entry.timeout)
        finally:
            _settle(entry.posted, None)
        if entry.waiters == 0 and self._known(invitation.operation_id) is invitation:
            # Still pending (or its outcome being read back), and nobody can see it.
            await self._abandon(invitation)

    # -- a POST without an answer -----------------------------------------------------

    async def _answer_from_channel(self, entry: _Start, error: TransportError) -> Exception | None:
        """The continue POST got no answer (connection lost, timed out): the server may
        have made the invitation all the same. Wait up to ``_outcome.UNANSWERED_GRACE`` for the
        event channel to name its operationId: named, the server made it, and the call
        gets it as if the 201 had come (None); else the call gets ``error``, and the
        operationId stays watched: an invitation that shows up later is cancelled on the
        server (``_unanswered_named``) unless a retry of the same operation_id takes it."""
        invitation = entry.invitation
        operation_id = invitation.operation_id
        if self._invitations.get(operation_id) is not invitation:
            # An event ended it already (the server made it; a link-only completion may
            # still be reading it back, so it need not be done yet), or the session closed.
            self._starting.pop(operation_id, None)
            return None if self._ended_here(invitation) and not self._closed else error
        if invitation.href is not None:
            return None  # an event named it already
        if self._closed:
            self._drop_start(entry)
            return error
        if len(self._unanswered) >= _MAX_UNANSWERED:
            oldest = next(iter(self._unanswered))
            log.warning("too many unanswered continue POSTs watched; no longer watching %s", oldest)
            self._forget_unanswered(oldest)
        named: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch = self._unanswered[operation_id] = _Unanswered(invitation, named, entry.since)
        if self._scan is not None and entry.since < self._scan_since:
            self._scan = None  # a POST made earlier: the calls look among more events
        self._arm_timeout(invitation, min(entry.timeout, _UNANSWERED_WATCH))
        watch.waiters += 1
        try:
            async with asyncio.timeout(_outcome.UNANSWERED_GRACE):
                await self._look_for(watch)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._starting.pop(operation_id, None)
            _settle(entry.posted, SessionClosedError("the session closed during the POST"))
            raise
        finally:
            watch.waiters -= 1
        if self._unanswered.get(operation_id) is watch:
            self._starting.pop(operation_id, None)
            log.info(
                "continue POST %s got no answer; watching the event channel for its invitation",
                operation_id,
            )
            return error
        if not watch.seen:  # the watch ended unnamed (its timeout, a channel failure)
            self._starting.pop(operation_id, None)
            return error
        if self._invitations.get(operation_id) is invitation:
            watch.taken = True
            return None  # named: the server made it
        self._starting.pop(operation_id, None)
        return None if self._ended_here(invitation) and not self._closed else error

    def _ended_here(self, invitation: Invitation[Any]) -> bool:
        """An event ended ``invitation``: it is done, or its outcome is being read back
        (a completion that did not say how it ended, or a Success without the resource)."""
        return invitation.done() or self._known(invitation.operation_id) is invitation

    async def _look_for(self, watch: _Unanswered) -> None:
        """Until the channel names the watched operation: read the invitations that
        unclaimed link-only events named (messagingInvitation_ref.md's started sample
        embeds nothing, so no operationId), at most ``_outcome.MAX_LOOKUPS``; the one
        whose operationId is the POST's is its invitation."""
        operation_id = watch.invitation.operation_id

        def candidates() -> Iterable[str]:
            # Only what came after this POST was made (see others).
            if len(self._looking) >= _READERS:
                return ()
            return itertools.chain(
                self._unclaimed()[1].get(operation_id, ()), self._unread(watch, after=True)
            )

        def others() -> Iterable[str]:
            # What came before this POST was made, after the oldest watched one: not
            # this call's, but maybe the invitation of a call whose grace ended (a watch
            # stays a minute; read, it is cancelled on the server). Its own budget: 8 of
            # them, older than this POST, spent the call's MAX_LOOKUPS, and it never
            # read its own.
            return self._unread(watch, after=False)

        async def is_ours(href: str) -> bool:
            # The read runs in a task the session owns: one the grace cuts short still
            # binds the operation it names (still watched: nobody holding it, it is
            # cancelled on the server). Cut with the grace, its answer was lost, and the
            # call its caller was told failed went on ringing.
            return await shielded(self._read_unclaimed(href)) == operation_id

        def found(href: str) -> None:
            self._found(watch, href)

        await _outcome.look_up_unclaimed(watch.named, candidates, is_ours, found, others=others)

    def _unread(self, watch: _Unanswered, *, after: bool) -> Iterable[str]:
        """The unclaimed invitations nobody has read or is reading that came after
        (``after``) or before ``watch``'s POST was made; none while ``_READERS`` reads
        are under way. Not one another call reads, nor one read already for another
        operation: when many POSTs lost their answers at once, each unclaimed invitation
        is read once, for whichever of them it names (each call read the same oldest
        MAX_LOOKUPS, and the others never found theirs)."""
        if len(self._looking) >= _READERS:
            return ()
        unread = self._unclaimed()[0]
        split = bisect.bisect_left(unread, watch.since, key=_arrival)
        looked, looking = self._looked, self._looking
        indices = range(split, len(unread)) if after else range(split)
        return (
            href
            for href in (unread[i][1] for i in indices)
            if href not in looking and href not in looked
        )

    def _unclaimed(self) -> tuple[list[tuple[float, str]], dict[str, list[str]]]:
        """The invitation hrefs of the correlator's orphan events not read yet (with the
        time each came, ascending), and those read already by the operationId they
        named. One scan for every waiting call, made again when something changed or
        after ``_outcome._LOOKUP_STEP`` (1000 calls each scanning 1000 orphans every step
        saturated the loop for the whole grace)."""
        now = asyncio.get_running_loop().time()
        if self._scan is None or now >= self._scanned_at + _outcome._LOOKUP_STEP:
            unread: list[tuple[float, str]] = []
            named: dict[str, list[str]] = {}
            looked = self._looked
            # Only what came since the oldest watched POST was made: older unclaimed
            # invitations (someone else's; link-only incoming ones stay a minute) would
            # spend the calls' MAX_LOOKUPS, and a call never read its own, the newest.
            since = min((w.since for w in self._unanswered.values()), default=0.0)
            for at, event in self._correlator.orphans(since):
                if getattr(event.link, "rel", None) not in _INVITATION_RELS:
                    continue
                href = event.link.href
                if href not in looked:
                    unread.append((at, href))
                elif (operation_id := looked[href]) is not None:
                    named.setdefault(operation_id, []).append(href)
            self._scan, self._scanned_at, self._scan_since = (unread, named), now, since
        return self._scan

    def _found(self, watch: _Unanswered, href: str) -> None:
        """The invitation at ``href`` is the watched operation's: bind it."""
        operation_id = watch.invitation.operation_id
        if self._unanswered.get(operation_id) is watch:
            self._bind_late(watch.invitation, href)  # its events are replayed
        if self._unanswered.get(operation_id) is watch:
            self._unanswered_named(operation_id)

    def _read_unclaimed(self, href: str) -> asyncio.Future[str | None]:
        """``_names(href)``, run in a task the session owns (see ``_look_for``)."""
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        if href in self._looked:
            answer.set_result(self._looked[href])
            return answer
        # (now: no other call picks it before the task starts)
        self._looking[href] = answer

        async def read() -> None:
            operation_id: str | None = None
            try:
                operation_id = await self._names(href)
            finally:
                if self._looking.get(href) is answer:
                    del self._looking[href]
                if not answer.done():
                    answer.set_result(operation_id)

        self._spawn(read())
        return answer

    async def _names(self, href: str) -> str | None:
        """The operationId of the invitation at ``href`` (a GET, once per href); one of
        another watched operation binds it to that one."""
        if href in self._looked:
            return self._looked[href]
        operation_id: str | None = None
        try:
            url = self._app.resolve_own(href)
            resource = parse_resource(await self._transport.get_json(url))
            if isinstance(resource, MessagingInvitation | PhoneAudioInvitation):
                operation_id = _usable_operation_id(resource.operation_id)
        except NotFoundError:
            pass  # gone (it ended): the same for every call, remembered as no one's
        except UcwaError as exc:
            log.info("could not read invitation %s: %s", href, exc)
            return None  # (not remembered: another call may read it again)
        self._looked[href] = operation_id
        self._scan = None
        while len(self._looked) > _MAX_UNANSWERED:
            self._looked.popitem(last=False)
        watch = self._unanswered.get(operation_id) if operation_id is not None else None
        if watch is not None and not self._closed:
            self._found(watch, href)
        return operation_id

    def _forget_unanswered(self, operation_id: str) -> None:
        """End the watch of an unanswered POST: nothing of it was seen."""
        watch = self._unanswered.pop(operation_id, None)
        if watch is None:
            return
        _settle(watch.named, None)
        if self._invitations.get(operation_id) is watch.invitation:
            del self._invitations[operation_id]
            self._correlator.finish(operation_id)
            watch.invitation._cancel_local("the continue POST got no answer")

    def _unanswered_named(self, operation_id: str) -> None:
        """The channel named the operation of an unanswered POST (the resolution is
        applied): the server made it. A retry waiting for it joins it; else nobody
        holds it, and it is cancelled on the server (an abandoned call)."""
        watch = self._unanswered.pop(operation_id)
        watch.seen = True
        invitation = watch.invitation
        _settle(watch.named, None)
        if self._invitations.get(operation_id) is not invitation:
            if _connected(invitation) and watch.waiters == 0 and not self._closed:
                # Connected before anyone could cancel it, and nobody holds it: leave the
                # conversation, or the call the caller was told failed goes on.
                log.warning(
                    "the server connected invitation %s although its continue POST got no "
                    "answer; leaving its conversation",
                    invitation.href or operation_id,
                )
                self._spawn(self._leave_orphan(invitation))
            elif watch.waiters == 0 and self._known(operation_id) is invitation:
                # Its outcome is being read back: connected, nobody would hold it.
                self._spawn(self._abandon(invitation))
            elif watch.waiters == 0:
                log.warning(
                    "the server made invitation %s although its continue POST got no answer; "
                    "it has already ended",
                    invitation.href or operation_id,
                )
            return
        if watch.waiters > 0:
            return  # the call, or a retry of it, takes it
        log.warning(
            "the server made invitation %s although its continue POST got no answer; cancelling it",
            invitation.href or operation_id,
        )
        self._spawn(self._abandon(invitation))

    async def _leave_orphan(self, invitation: Invitation[Any]) -> None:
        """Leave the conversation of a connected invitation nobody holds (best effort,
        bounded by ``connect_timeout``)."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                conversation = await invitation.conversation()
                await conversation.leave()
        except (UcwaError, TimeoutError) as exc:
            log.warning(
                "could not leave the conversation of invitation %s: %s",
                invitation.href or invitation.operation_id,
                exc,
            )

    async def _retry_unanswered(self, operation_id: str, rel: str, timeout: float | None) -> None:
        """A retry of an unanswered POST: wait up to ``_outcome.UNANSWERED_GRACE`` for the channel
        to name the first POST's invitation. Named: the retry joins it (no second POST);
        else the watch ends and the retry POSTs afresh."""
        watch = self._unanswered[operation_id]
        if watch.invitation.kind != rel:  # (before the wait: it must not take the call)
            kind = watch.invitation.kind
            raise ValueError(f"operation_id {operation_id!r} is in use by a {kind}")
        watch.waiters += 1
        try:
            try:
                async with asyncio.timeout(_outcome.UNANSWERED_GRACE):
                    await self._look_for(watch)  # (link-only events name nothing by themselves)
            except TimeoutError:
                # A read under way may still name the first POST's invitation: its answer
                # decides. Forgotten first, the watch was not there when the read named
                # it: the first call rang on, nobody holding it, and the retry POSTed
                # again (a second call, or 409 AlreadyExists). Each read is one GET.
                reads = [read for read in self._looking.values() if not read.done()]
                if reads and self._unanswered.get(operation_id) is watch:
                    await asyncio.wait(reads)
        except asyncio.CancelledError:
            watch.waiters -= 1
            if (
                watch.seen
                and not watch.taken
                and watch.waiters == 0
                and self._invitations.get(operation_id) is watch.invitation
                and not self._closed
            ):
                # Named in the turn this retry was cancelled: nobody takes it.
                self._spawn(self._abandon(watch.invitation))
            raise
        watch.waiters -= 1
        if self._unanswered.get(operation_id) is watch:
            self._forget_unanswered(operation_id)  # nothing came: POST again
        elif (
            watch.seen
            and not watch.taken
            and self._invitations.get(operation_id) is watch.invitation
            and not self._closed
        ):
            # Joined: from now on it is the retry's invitation, with the retry's timeout
            # (one start, however many retries wait for it).
            watch.taken = True
            self._stats.invitations_started += 1
            self._arm_timeout(watch.invitation, timeout or self._invitation_timeout)
        self._ensure_usable()

    def _drop_start(self, entry: _Start) -> None:
        operation_id = entry.invitation.operation_id
        self._starting.pop(operation_id, None)
        if self._invitations.get(operation_id) is entry.invitation:
            del self._invitations[operation_id]
            self._correlator.forget(operation_id)

    def _accepted(
        self, entry: _Start, response: HttpResponse, generation: int, resyncs: int
    ) -> None:
        invitation = entry.invitation
        operation_id = invitation.operation_id
        if generation != self._app.generation:
            self.end_lost(operation_id, "the application was re-created while the POST ran")
            return
        if self._invitations.get(operation_id) is invitation:
            # The timeout counts from the 201: a POST slower than the timeout must not
            # end an invitation the server has just started ringing.
            self._arm_timeout(invitation, entry.timeout)
        # An unsafe or malformed Location is treated as none: operationId still correlates.
        href = self._app.safe_resolve(response.location)
        if href is None:
            href = self._app.safe_resolve(answered_self(response, operation_id, _INVITATION_RELS))
        if href is None:
            log.info(
                "continue POST answered %d without a usable Location; correlating by operationId",
                response.status,
            )
            return
        invitation.href = href
        self._bind(operation_id, href)
        if resyncs != self._resyncs and self._invitations.get(operation_id) is invitation:
            # A resync while the POST ran may have discarded this invitation's events,
            # and the resync's wave could not read it (it had no href yet): do it now.
            self._enqueue_read(_Read(invitation, href, "pending"))

    async def _abandon(self, invitation: Invitation[Any]) -> None:
        """Nobody waits for this accepted invitation: cancel it on the server."""
        self._stats.invitations_abandoned += 1
        operation_id = invitation.operation_id
        where = invitation.href or operation_id
        log.warning("continue call abandoned by its caller after the 201; cancelling %s", where)
        abandoning: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._abandoning[operation_id] = abandoning
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._cancel(invitation)
                if not invitation.done() and self._known(operation_id) is invitation:
                    # Its outcome is being read back (nothing to cancel): it may connect.
                    await asyncio.wait([invitation])
            if _connected(invitation) and not self._closed:
                # It connected before the cancel could land (the completed event came in
                # the same batch as the started one, say): nobody holds the conversation.
                log.warning(
                    "abandoned invitation %s connected first; leaving its conversation", where
                )
                await self._leave_orphan(invitation)
        except (UcwaError, TimeoutError) as exc:
            log.warning("could not cancel the abandoned invitation %s: %s", where, exc)
        finally:
            self._abandoning.pop(operation_id, None)
            _settle(abandoning, None)

    async def _post_continue(self, url: str, body: Mapping[str, Any]) -> tuple[HttpResponse, int]:
        """POST a continue request; returns the response and the application generation
        it went to. ``404 ApplicationNotFound`` (the application was deleted under us):
        wait for the channel to re-create it, then POST again there (the same operationId:
        the refused POST created nothing), up to ``max_callback_retries`` times."""
        recreations = 0
        while True:
            if self._app.recreating:
                await self._wait_application_after(None)
            url = self._app.rebase(url)
            generation = self._app.generation
            current = self._app.url
            try:
                return await self.post_operation(url, body), generation
            except ApplicationNotFoundError as exc:
                under_current = current is not None and url.startswith(current + "/")
                if recreations >= self._max_callback_retries or not under_current:
                    raise
                recreations += 1
                log.info("continue POST: the application is gone; waiting for a new one")
                try:
                    await self._wait_application_after(generation)
                except TimeoutError:
                    raise exc from None

    async def _wait_application_after(self, generation: int | None) -> None:
        """Wait until an application newer than ``generation`` (None: any re-creation
        under way) exists and its event channel is up."""
        channel = self._channel()
        async with asyncio.timeout(self._connect_timeout):
            while self._app.generation == generation or self._app.recreating:
                await channel.wait_generation_after(channel.generation)

    async def post_operation(self, url: str, body: Mapping[str, Any]) -> HttpResponse:
        """POST an operation; CallbackChannelError: reconnect the channel, then retry."""
        payload, content_type = _wire.encode_input(body, self._wire_format)
        return await self.post_payload(url, payload, content_type)

    async def post_payload(
        self, url: str, payload: bytes | None, content_type: str | None
    ) -> HttpResponse:
        """POST an encoded body (a sent message's text, say), with the retry of
        ``post_operation``: CallbackChannelError reconnects the channel, then the same
        request (same operationId) is sent again, at most ``max_callback_retries`` times."""
        attempt = 0
        while True:
            channel = self._channel()
            seen = channel.generation
            try:
                return await self._transport.send(
                    "POST", url, data=payload, content_type=content_type
                )
            except CallbackChannelError as exc:
                attempt += 1
                if attempt > self._max_callback_retries:
                    log.warning("CallbackChannelError persists after %d retries", attempt - 1)
                    raise
                self._stats.callback_channel_retries += 1
                log.info("CallbackChannelError on POST; re-establishing the event channel")
                channel.request_reconnect(
                    "CallbackChannelError: the remote event channel is not reachable",
                    exc,
                    seen,
                    # The first retry goes once the fresh P-GET is on the wire; if the server
                    # refuses again, the next waits until it holds one (reconnect_settle).
                    fast=attempt == 1,
                )
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        await channel.wait_generation_after(seen)
                except TimeoutError:
                    # The channel did not come back in time: the caller gets the typed
                    # error it would have got without the retry, never a bare TimeoutError.
                    raise exc from None

    # -- attach ------------------------------------------------------------------------

    async def attach(self, href: str, timeout: float | None) -> Invitation[Any]:
        """The handle of the invitation at ``href``: the tracked one, or a new one from
        its current state (final: resolved at once; pending: tracked from now)."""
        url = self._app.rebase(self._app.resolve(href))
        tracked = self._tracked(url)
        if tracked is not None:
            return tracked
        resource = parse_resource(await self._transport.get_json(url))
        if not isinstance(resource, MessagingInvitation | PhoneAudioInvitation):
            raise UcwaError(f"{url} is not an invitation (rel {resource.rel!r})")
        tracked = self._tracked(url)  # another attach or a 201 may have won meanwhile
        if tracked is not None:
            return tracked
        operation_id = _usable_operation_id(resource.operation_id)
        if operation_id is not None:
            known = self._known(operation_id)
            if known is not None:  # tracked by operationId only (a 201 without Location)
                watch = self._unanswered.get(operation_id)
                if watch is not None and watch.invitation is known:
                    # A POST without an answer: the handle is the caller's from now on.
                    del self._unanswered[operation_id]
                    watch.seen = watch.taken = True
                    _settle(watch.named, None)
                    self._arm_timeout(known, timeout or self._invitation_timeout)
                if known.href is None and operation_id in self._invitations:
                    self._bind_late(known, url)
                return known
        if operation_id is None or self._correlator.is_pending(operation_id):
            operation_id = new_operation_id()
        loop = asyncio.get_running_loop()
        invitation: Invitation[Any] = Invitation(
            operation_id=operation_id,
            kind=resource.rel or "messagingInvitation",
            loop=loop,
            canceller=self._canceller,
        )
        invitation._conversation_factory = self.conversation_factory
        invitation.href = url
        verdict = _verdict(resource)
        state = _state_of(resource)
        if verdict == "connected":
            invitation._succeed(resource, state)
            return invitation
        if verdict == "failed":
            invitation._fail(
                InvitationFailedError(
                    f"invitation ended in state {state!r}", href=url, operation_id=operation_id
                ),
                state=state,
            )
            return invitation
        self._correlator.expect(operation_id)
        self._invitations[operation_id] = invitation
        self._progress(invitation, state, resource)
        self._arm_timeout(invitation, timeout or self._invitation_timeout)
        self._bind(operation_id, url)
        return invitation

    def _tracked(self, url: str) -> Invitation[Any] | None:
        owner = self._correlator.owner(url)
        return self._invitations.get(owner) if owner is not None else None

    # -- cancel, expire, lose ----------------------------------------------------------

    def request_cancel(
        self, invitation: Invitation[Any], msg: str | None = None
    ) -> asyncio.Future[None] | None:
        """``Invitation.cancel()``: start the cancel POST in a task the session owns
        (awaited at close), or join the one under way. Returns the future of that request
        (its error if it fails), or None when there is nothing to cancel: the invitation
        has ended (or its outcome is being read back), or the session is not usable."""
        try:
            self._ensure_usable()
        except UcwaError:
            return None
        return self._start_cancel(invitation, msg)

    def _start_cancel(
        self, invitation: Invitation[Any], msg: str | None = None
    ) -> asyncio.Future[None] | None:
        operation_id = invitation.operation_id
        entry = self._cancels.get(operation_id)
        if entry is not None:
            return entry.done
        if self._closed or invitation.done():
            return None
        if self._invitations.get(operation_id) is not invitation:
            return None  # its outcome is being read back
        done: asyncio.Future[None] = invitation.get_loop().create_future()
        done.add_done_callback(consume_exception)
        entry = self._cancels[operation_id] = _Cancel(done, msg)
        self._spawn(self._run_cancel(invitation, entry))
        return done

    async def _cancel(self, invitation: Invitation[Any]) -> bool:
        """Cancel on the server and wait for the answer (an abandoned call); concurrent
        callers share one cancel POST, which the session runs."""
        done = self._start_cancel(invitation)
        if done is None:
            return False
        await asyncio.shield(done)
        return invitation.cancelled()

    async def _run_cancel(self, invitation: Invitation[Any], entry: _Cancel) -> None:
        operation_id = invitation.operation_id
        try:
            cancel_href = invitation._cancel_target()
            if cancel_href is None:
                cancel_href = await self._find_cancel_link(invitation)
            if cancel_href is not None:
                await self._transport.send("POST", self._app.resolve_own(cancel_href))
        except asyncio.CancelledError:
            self._cancels.pop(operation_id, None)
            _settle(entry.done, SessionClosedError("the session closed during the cancel"))
            raise
        except Exception as exc:
            self._cancels.pop(operation_id, None)
            if entry.deferred is not None:
                entry.deferred()  # not cancelled after all: what the server said stands
            else:
                log.warning(
                    "could not cancel invitation %s: %s; it stays pending",
                    invitation.href or operation_id,
                    exc,
                )
            _settle(entry.done, exc)
            return
        self._cancels.pop(operation_id, None)
        if cancel_href is not None and self._invitations.get(operation_id) is invitation:
            del self._invitations[operation_id]
            self._correlator.finish(operation_id)
            if invitation._cancel_local(entry.msg):
                self._stats.invitations_cancelled += 1
        _settle(entry.done, None)

    async def _find_cancel_link(self, invitation: Invitation[Any]) -> str | None:
        """No event gave the cancel link yet: GET the invitation for it. None: the
        invitation had already ended, and now has that outcome."""
        if invitation.href is None:
            raise UcwaError("cannot cancel: the invitation's href is not known yet")
        resource = parse_resource(
            await self._transport.get_json(self._app.resolve_own(invitation.href))
        )
        cancel_href = resource.link("cancel")
        if cancel_href is not None:
            return cancel_href
        if _verdict(resource) in ("connected", "failed"):
            self._end_as_read(invitation, resource, invitation.href, defer=False)
            return None
        raise UcwaError("the server offers no cancel link for this invitation")

    async def finish_cancels(self, timeout: float) -> None:
        """The session is closing: let the cancel POSTs under way (``cancel()`` returns
        at once; abandoned calls) reach the server, for up to ``timeout`` seconds. A
        call left ringing on the server is worse than a slower close."""
        pending = [entry.done for entry in self._cancels.values()]
        pending += self._abandoning.values()
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def _arm_timeout(self, invitation: Invitation[Any], timeout: float) -> None:
        when = invitation.get_loop().time() + timeout  # (get_running_loop: a getpid)
        invitation._set_deadline(when)
        self._deadlines.add(invitation.operation_id, when)

    def _deadline_live(self, operation_id: str, when: float) -> bool:
        invitation = self._invitations.get(operation_id)
        return invitation is not None and invitation._deadline == when

    def _deadline_passed(self, operation_id: str, _when: float) -> None:
        self._expire(operation_id)

    def _expire(self, operation_id: str) -> None:
        if operation_id in self._unanswered:
            self._forget_unanswered(operation_id)  # nothing came of the unanswered POST
            return
        invitation = self._invitations.pop(operation_id, None)
        if invitation is None:
            return
        self._correlator.finish(operation_id)
        if invitation._fail(
            InvitationTimeoutError(
                f"invitation {operation_id} had no outcome within its timeout"
                " (invitation_timeout, or the call's timeout); the session stopped waiting for it",
                href=invitation.href,
                operation_id=operation_id,
            )
        ):
            self._stats.invitations_timed_out += 1

    def end_lost(self, operation_id: str, why: str) -> None:
        invitation = self._invitations.pop(operation_id, None)
        self._correlator.finish(operation_id)
        if invitation is not None and invitation._fail(
            InvitationLostError(why, href=invitation.href, operation_id=operation_id)
        ):
            self._stats.invitations_lost += 1

    def lose_bound(self, why: str) -> int:
        """The application was lost: every invitation it had accepted ends as lost."""
        lost = [op for op in self._correlator.bound() if op in self._invitations]
        for operation_id in lost:
            self.end_lost(operation_id, why)
        return len(lost)

    def fail_all(self, error: ChannelFailedError) -> None:
        """The channel failed for good: every pending invitation learns why; the POSTs
        without an answer are no longer watched (nothing more can name them)."""
        for operation_id in list(self._unanswered):
            self._forget_unanswered(operation_id)
        for operation_id in list(self._invitations):
            invitation = self._invitations.pop(operation_id)
            self._correlator.finish(operation_id)
            invitation._fail(error)

    def close_all(self) -> None:
        """The session closed: every pending invitation ends with SessionClosedError."""
        self._closed = True
        self._waves.reset()
        self._deadlines.close()
        if self._wave_timer is not None:
            self._wave_timer.cancel()
            self._wave_timer = None
        self._wave.clear()
        for reads in (self._read_queue, self._reading, self._read_again):
            for read in list(reads.values()):
                self._end_unread(read)
            reads.clear()
        closed = SessionClosedError("the session closed before the invitation ended")
        for entry in list(self._starting.values()):
            _settle(entry.posted, closed)
        for cancel in list(self._cancels.values()):
            _settle(cancel.done, closed)
        for abandoning in list(self._abandoning.values()):
            _settle(abandoning, None)
        for operation_id in list(self._unanswered):
            self._forget_unanswered(operation_id)
        self._starting.clear()
        self._cancels.clear()
        for operation_id in list(self._invitations):
            invitation = self._invitations.pop(operation_id)
            if invitation._fail(closed):
                self._stats.invitations_closed += 1
        self._correlator.clear()
        self._scan = None

    def owns(self, href: str) -> bool:
        """True if ``href`` is an invitation this session started and still tracks."""
        return self._correlator.owner(href) is not None

    # -- what the channel says ---------------------------------------------------------

    def deliver(self, batch: EventBatch) -> None:
        """Feed the operation events of a batch to the correlator, in order."""
        self._scan = None  # (new orphans, perhaps)
        for event in batch.events:
            if not event.is_operation_event or _not_ours(event):
                continue
            try:
                resolutions = self._correlator.feed(event)
            except UcwaError as exc:  # e.g. a hostile href: drop the event, keep the channel
                self._stats.events_rejected += 1
                log.warning("event rejected: %s", exc)
                continue
            for resolution in resolutions:
                self._apply(resolution)

    def resynced(self) -> None:
        """Events may be lost: re-read every pending invitation, in waves (see RereadWaves)."""
        self._resyncs += 1
        if self._closed:
            return
        delay = self._waves.requested(asyncio.get_running_loop().time())
        if delay is not None:
            self._schedule_wave(delay)

    def _progress(
        self, invitation: Invitation[Any], state: str | None, resource: Resource | None
    ) -> None:
        cancel = _cancel_link(resource) or None  # an empty href is no link
        # Kept as "" when it is the invitation's own href + /cancel (as servers write
        # it): one string less per pending invitation. A hostile href stays as it is,
        # to be refused if the cancel is sent.
        href = invitation.href
        if cancel and href is not None and self._app.safe_resolve(cancel) == href + "/cancel":
            cancel = ""
        invitation._progress(state, cancel)

    def _apply(
        self, resolution: Progress | Succeeded | Failed | NeedsLookup, named: bool = False
    ) -> None:
        operation_id = resolution.operation_id
        invitation = self._invitations.get(operation_id)
        if invitation is None:
            return
        if not named and self._unanswered and operation_id in self._unanswered:
            # The first word of an unanswered POST's invitation: applied, then the watch
            # learns it (one call more on this rare path only: every event comes here).
            self._apply(resolution, named=True)
            self._unanswered_named(operation_id)
            return
        if isinstance(resolution, Progress):
            resource = resolution.event.resource
            self._progress(invitation, resolution.state, resource)
            if invitation.href is None and resolution.event.link.href:
                self._bind_late(invitation, resolution.event.link.href)
            return
        cancel = self._cancels.get(operation_id)
        if cancel is not None and _may_be_our_cancel(resolution):
            # Most likely the termination our own cancel caused: the cancel POST decides.
            if cancel.deferred is None:
                cancel.deferred = functools.partial(self._end, resolution, invitation)
            return
        self._end(resolution, invitation)

    def _end(
        self, resolution: Succeeded | Failed | NeedsLookup, invitation: Invitation[Any]
    ) -> None:
        operation_id = resolution.operation_id
        if self._invitations.get(operation_id) is not invitation:
            return  # it ended meanwhile (cancelled, timed out)
        del self._invitations[operation_id]
        if invitation.href is None and isinstance(resolution, Succeeded | Failed):
            invitation.href = self._app.safe_resolve(resolution.event.link.href)
        if isinstance(resolution, Succeeded):
            if isinstance(resolution.resource, MessagingInvitation | PhoneAudioInvitation):
                self._succeed(invitation, resolution.resource)
            else:
                self._enqueue_read(_Read(invitation, invitation.href, "success"))
        elif isinstance(resolution, Failed):
            self._fail_invitation(
                invitation,
                failure_text("invitation failed", resolution.reason),
                reason=resolution.reason,
                state=_state_of(resolution.event.resource) or "Failed",
            )
        else:
            if invitation.href is None:
                invitation.href = self._app.safe_resolve(resolution.href)
            self._enqueue_read(_Read(invitation, invitation.href, "completed"))

    def _bind_late(self, invitation: Invitation[Any], href: str) -> None:
        resolved = self._app.safe_resolve(href)
        if resolved is None:
            return
        invitation.href = resolved
        self._bind(invitation.operation_id, resolved)

    def _bind(self, operation_id: str, href: str) -> None:
        self._scan = None  # (its orphans are taken)
        try:
            resolutions = self._correlator.bind(operation_id, href)
        except (ValueError, KeyError) as exc:
            # The server named an href another pending invitation already has (or the
            # operation ended meanwhile): keep correlating by operationId only.
            log.warning("cannot correlate %s by href: %s", operation_id, exc)
            return
        for resolution in resolutions:
            self._apply(resolution)

    def _succeed(self, invitation: Invitation[Any], resource: Resource) -> None:
        if invitation._succeed(resource, _state_of(resource) or "Connected"):
            self._stats.invitations_connected += 1

    def _fail_invitation(
        self,
        invitation: Invitation[Any],
        message: str,
        *,
        state: str | None,
        reason: Any = None,
        href: str | None = None,
    ) -> None:
        """End an invitation with InvitationFailedError; counted only if it really ended."""
        error = InvitationFailedError(
            message,
            reason=reason,
            href=href or invitation.href,
            operation_id=invitation.operation_id,
        )
        if invitation._fail(error, state=state):
            self._stats.invitations_failed += 1

    # -- reading an invitation back ----------------------------------------------------

    def _enqueue_read(self, read: _Read) -> None:
        """Queue a GET of an invitation: one per invitation at a time, a stronger reason
        (its completion) replacing a weaker one (a resync) still queued."""
        if read.href is None:
            self._settle_read(read, None)  # nothing to GET: decide from what we know
            return
        if self._closed:
            self._end_unread(read)
            return
        operation_id = read.invitation.operation_id
        if operation_id in self._reading:
            # Its GET may predate what made us ask again: read once more after it.
            previous = self._read_again.get(operation_id)
            self._read_again[operation_id] = _stronger(previous, read)
            return
        self._read_queue[operation_id] = _stronger(self._read_queue.get(operation_id), read)
        self._start_readers()

    def _start_readers(self) -> None:
        current = asyncio.current_task()
        if self._closed or (current is not None and current.cancelling()):
            return  # the session is closing: close_all ends what is still queued
        while self._readers < min(_READERS, len(self._read_queue)):
            self._readers += 1
            self._spawn(self._reader())

    async def _reader(self) -> None:
        try:
            while self._read_queue:
                operation_id, read = self._read_queue.popitem(last=False)
                self._reading[operation_id] = read
                try:
                    await self._read_back(read)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug of ours must not stop the other reads
                    log.exception("reading invitation %s back failed", read.href)
                finally:
                    self._reading.pop(operation_id, None)
                    self._read_done(operation_id)
        finally:
            self._readers -= 1

    async def _read_back(self, read: _Read) -> None:
        """GET the invitation and end it (or note its progress) from what it says."""
        invitation, href = read.invitation, read.href
        assert href is not None
        if read.mode == "pending" and self._invitations.get(invitation.operation_id) is not (
            invitation
        ):
            return  # it ended meanwhile: nothing to re-read
        resource: Resource | None = None
        try:
            resource = parse_resource(await self._transport.get_json(self._app.resolve_own(href)))
        except NotFoundError:
            resource = None
        except UcwaError as exc:
            log.info("could not read invitation %s back: %s", href, exc)
            if read.mode == "pending":
                return  # still pending; events or its timeout will end it
        except asyncio.CancelledError:
            self._end_unread(read)
            raise
        self._settle_read(read, resource)

    def _settle_read(self, read: _Read, resource: Resource | None) -> None:
        invitation, mode = read.invitation, read.mode
        verdict = _verdict(resource)
        if mode == "pending":
            if self._invitations.get(invitation.operation_id) is not invitation:
                return  # it ended while we read (its completion queued a read of its own)
            if resource is None or verdict in ("pending", "unknown"):
                if resource is not None:
                    self._progress(invitation, _state_of(resource), resource)
                return
            self._end_as_read(invitation, resource, read.href, defer=True)
        elif mode == "success":
            # The event said Success: trust it unless the resource says Failed.
            if isinstance(resource, MessagingInvitation | PhoneAudioInvitation) and (
                verdict != "failed"
            ):
                self._succeed(invitation, resource)
            else:
                self._succeed(invitation, _synthesise(invitation, "Connected"))
        elif verdict == "connected":
            assert resource is not None
            self._succeed(invitation, resource)
        elif resource is None:
            if invitation._fail(
                InvitationLostError(
                    "the invitation completed but could not be read back",
                    href=read.href,
                    operation_id=invitation.operation_id,
                )
            ):
                self._stats.invitations_lost += 1
        else:
            self._fail_invitation(
                invitation,
                f"invitation ended in state {_state_of(resource)!r}",
                state=_state_of(resource),
            )

    def _end_as_read(
        self, invitation: Invitation[Any], resource: Resource, href: str | None, *, defer: bool
    ) -> None:
        """A pending invitation read back in a final state ends with it."""
        operation_id = invitation.operation_id
        connected = _verdict(resource) == "connected"

        def end() -> None:
            if self._invitations.get(operation_id) is not invitation:
                return
            del self._invitations[operation_id]
            self._correlator.finish(operation_id)
            if connected:
                self._succeed(invitation, resource)
            else:
                state = _state_of(resource)
                self._fail_invitation(
                    invitation, f"invitation ended in state {state!r}", state=state, href=href
                )

        cancel = self._cancels.get(operation_id)
        if defer and cancel is not None and not connected:
            if cancel.deferred is None:
                cancel.deferred = end  # likely our own cancel: the cancel POST decides
            return
        end()

    def _end_unread(self, read: _Read) -> None:
        """The session closes before a read-back: end what left the table on what we know."""
        invitation = read.invitation
        if read.mode == "success":
            self._succeed(invitation, _synthesise(invitation, "Connected"))
        elif read.mode == "completed" and invitation._fail(
            SessionClosedError("the session closed before the invitation ended")
        ):
            self._stats.invitations_closed += 1
        # "pending": still in the table, which close_all ends.

    def _read_done(self, operation_id: str) -> None:
        again = self._read_again.pop(operation_id, None)
        if again is not None:
            self._enqueue_read(again)
            return
        if operation_id in self._wave and operation_id not in self._read_queue:
            self._wave.discard(operation_id)
            if not self._wave and self._waves.running:
                self._wave_finished()

    # -- resync waves ------------------------------------------------------------------

    def _schedule_wave(self, delay: float) -> None:
        if delay <= 0:
            self._start_wave()
        else:
            loop = asyncio.get_running_loop()
            self._wave_timer = loop.call_later(delay, self._start_wave)

    def _start_wave(self) -> None:
        self._wave_timer = None
        if self._closed:
            return
        self._waves.started(asyncio.get_running_loop().time())
        for operation_id, href in self._correlator.bound().items():
            invitation = self._invitations.get(operation_id)
            if invitation is not None:
                self._wave.add(operation_id)
                self._enqueue_read(_Read(invitation, href, "pending"))
        if not self._wave:
            self._wave_finished()

    def _wave_finished(self) -> None:
        delay = self._waves.finished(asyncio.get_running_loop().time())
        if delay is not None:
            self._schedule_wave(delay)


# Conversation resources (messages, modalities, participants...): never an invitation
# of ours; kept out of the correlator, whose orphan buffer they would only crowd.
_CONVERSATION_RELS = frozenset(
    {
        "conversation",
        "localParticipant",
        "message",
        "messaging",
        "participant",
        "participantAudio",
        "participantMessaging",
        "phoneAudio",
        "typingParticipants",
    }
)


def _not_ours(event: Any) -> bool:
    """A conversation event, or an invitation someone sent to us (direction Incoming)."""
    if event.link.rel in _CONVERSATION_RELS:
        return True
    resource = event.resource
    return resource is not None and getattr(resource, "direction", None) == "Incoming"


def _cancel_link(resource: Resource | None) -> str | None:
    return resource.link("cancel") if resource is not None else None


def _state_of(resource: Resource | None) -> str | None:
    state = getattr(resource, "state", None)
    return state if isinstance(state, str) else None


def _synthesise(invitation: Invitation[Any], state: str) -> Resource:
    """A minimal resource for a success we know of but could not read back."""
    return parse_resource(
        {
            "rel": invitation.kind,
            "_links": {"self": {"href": invitation.href}} if invitation.href else {},
            "operationId": invitation.operation_id,
            "state": state,
        }
    )


def _connected(invitation: Invitation[Any]) -> bool:
    """Whether the invitation has ended connected."""
    return invitation.done() and not invitation.cancelled() and invitation.exception() is None


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _verdict(resource: Resource | None) -> Verdict:
    """What an invitation resource read back says about how it ended."""
    if not isinstance(resource, MessagingInvitation | PhoneAudioInvitation):
        return "unknown"
    state = (_state_of(resource) or "").lower()
    if state in IN_PROGRESS_STATES:  # a ringing call (Alerting) is still under way
        return "pending"
    return "connected" if state in _TERMINAL_SUCCESS else "failed"


def _may_be_our_cancel(resolution: Succeeded | Failed | NeedsLookup) -> bool:
    """Could this termination be the one our cancel POST caused? A Success, or a failure
    with a reason of its own (Declined, Busy...), cannot: it is the server's outcome."""
    if isinstance(resolution, Succeeded):
        return False
    if isinstance(resolution, NeedsLookup):
        return True
    reason = resolution.reason
    if reason is None:
        return True
    codes = (getattr(reason, "code", None), getattr(reason, "subcode", None))
    return any(isinstance(c, str) and c.lower() == "cancelled" for c in codes)


def _stronger(previous: _Read | None, read: _Read) -> _Read:
    """Of two read requests for one invitation, the one that must not be lost."""
    if previous is None or previous.mode == "pending":
        return read
    return previous


def _arrival(unread: tuple[float, str]) -> float:
    return unread[0]


def _usable_operation_id(value: object) -> str | None:
    try:
        return check_operation_id(value)
    except ValueError:
        return None
