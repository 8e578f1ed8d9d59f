"""Event-channel (P-GET) state: what a poll outcome means and what to do next (sans-IO).

The IO shell (``ucwa_async._channel.ChannelRunner``) polls :meth:`ChannelState.poll_url`,
feeds what came back to :meth:`ChannelState.on_response` or
:meth:`ChannelState.on_transport_error`, and performs the returned action. All the
protocol decisions live here:

- ``200`` with a ``next`` link: :class:`Deliver` (events) or :class:`Empty` (a timeout
  page); the cursor moves to ``next``. Events URLs are opaque: we follow ``next``,
  ``resync`` and ``resume`` exactly as given and never edit ``ack``.
- ``resync`` link: :class:`Resync` (cached transient state is stale); it wins over
  ``next`` because the server is saying our cursor can no longer be trusted.
- ``resume`` link (and no ``next``): :class:`Resume`, re-sending our query parameters.
  It has "the same function as next" (EventsInUCWA.md): the batch's events are handed on
  like a :class:`Deliver`'s; and the server has reset its transient state (conversations,
  subscriptions), so what we cached of it is stale, as after a ``resync``.
- ``401``: :class:`Reauthenticate`; ``404``/``410``: :class:`RecreateApplication`, but
  :class:`Fatal` for ``TooManyApplications``/``UserAgentNotAllowed`` (a new application
  would be refused alike);
  ``409``: :class:`Replaced` (the only conflict a GET of the events URL can have is a
  competing P-GET: ``PGetReplaced``).
- ``5xx``, ``408``, ``429``, transport errors, undecodable bodies, and a ``2xx`` without
  any of the links above: :class:`Retry` the *same* URL (an unacknowledged batch is
  re-delivered, so nothing is lost) after ``Retry-After`` (at least ``retry_after_floor``,
  at most ``retry_after_cap``: ``Retry-After: 0`` and dates in the past included) or a
  backoff delay.
- a ``403`` that is not a UCWA error body (a front proxy's "Access is denied" page, seen
  intermittently in the field) is retried a few times before it becomes fatal;
- other ``4xx`` (``400``, UCWA ``403``, ``405``, ``415``...): :class:`Fatal`.

Pacing: given how long the P-GET took (``elapsed``), an answer that was not held and
carried no event (empty, ``resume``, ``resync``, an error, only malformed events) waits a
minimum interval that grows while such answers come in a row (:class:`PollPacer`):
``Deliver``/``Empty``/``Resume``/``Resync`` carry it as ``wait``; it is folded into
``Retry.after``. A batch with events is never delayed, unless its ``next`` (or ``resume``)
is the URL just polled: "The URL changes with each request" (EventsInUCWA.md), so a server
saying otherwise will send the same events again, and answering it at once is a hot loop.

A body above :data:`LARGE_BODY` (XML: :data:`LARGE_XML_BODY`) is decoded a step at a time
(:meth:`ChannelState.on_response_steps`, ``wire.decode_steps``) so that the shell can
let its event loop run between steps; the events of a batch are parsed when the shell
takes them (``Deliver.events``), a slice at a time.

Nothing here raises on bad input; every outcome is an action.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TypeAlias

import attrs

from ucwa_async._core import models as _models
from ucwa_async._core import urls
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.errors import (
    DecodeError,
    InsecureTransportError,
    ProxyResponseError,
    ResponseError,
    TransportError,
    UcwaError,
    UnsafeHrefError,
    refuses_every_application,
)
from ucwa_async._core.pacing import PollPacer
from ucwa_async._core.responses import classify

__all__ = [
    "LARGE_BODY",
    "LARGE_XML_BODY",
    "LAZY_BODY",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "ChannelAction",
    "ChannelState",
    "Deliver",
    "Empty",
    "Fatal",
    "Reauthenticate",
    "RecreateApplication",
    "Replaced",
    "Resume",
    "Resync",
    "Retry",
]

MIN_TIMEOUT = 180
MAX_TIMEOUT = 1800
LARGE_BODY = 256 * 1024
"""JSON bodies above this size are decoded a step at a time
(:meth:`ChannelState.on_response_steps`); below, ``json.loads`` takes ~1-2 ms."""
LARGE_XML_BODY = 32 * 1024
"""The same for XML, whose decoding calls back into Python for every element (a
500-event batch: ~18 ms at once)."""
LAZY_BODY = LARGE_BODY
"""JSON bodies above this size keep their events undecoded until taken (``wire.LazyItems``:
each event is decoded twice, but a batch's objects are never alive at once). Objects
alive while a whole batch is dispatched survive the young generations and count towards
the next full garbage collection, a pass over the whole process (30-40 ms during the
release of 10 000 held invitations): decoded one event at a time, they die young."""


@attrs.frozen
class Deliver:
    """A batch with events; the cursor already moved to ``next_url``.

    ``events`` parses them a slice at a time (the shell hands each slice on and lets
    the loop run between slices); :attr:`batch` parses all of them at once."""

    events: _models.EventReader = attrs.field(eq=False)
    next_url: str
    wait: float = 0.0
    """Seconds before the next P-GET: non-zero only for a batch with no event object
    answered without being held (nothing but malformed events, say)."""

    @property
    def batch(self) -> _models.EventBatch:
        """Every event not taken from :attr:`events` yet, parsed now (not taken)."""
        return self.events.copy().read_all()


@attrs.frozen
class Empty:
    """A timeout page (no events); the cursor already moved to ``next_url``."""

    next_url: str
    wait: float = 0.0
    """Seconds before the next P-GET (pacing of answers that were not held)."""


@attrs.frozen
class Resync:
    """Poll ``url`` next and re-read in-flight operations: cached state is stale."""

    url: str
    wait: float = 0.0
    """Seconds before the next P-GET (pacing of answers that were not held)."""


@attrs.frozen
class Resume:
    """Poll ``url`` next (with our query parameters re-sent); the server reset its
    transient state (cached conversations and in-flight operations are stale)."""

    url: str
    wait: float = 0.0
    """Seconds before the next P-GET (pacing of answers that were not held)."""
    events: _models.EventReader | None = attrs.field(default=None, eq=False, kw_only=True)
    """The batch's events, when it has any (``resume`` acknowledges them like ``next``)."""


@attrs.frozen
class RecreateApplication:
    """The application is gone (404/410): create a new one, then :meth:`ChannelState.reset`."""

    error: UcwaError


@attrs.frozen
class Replaced:
    """409 PGetReplaced: another P-GET took our place; poll again (the same URL)."""

    error: UcwaError


@attrs.frozen
class Reauthenticate:
    """401: get a new token, then poll the same URL."""

    error: UcwaError


@attrs.frozen
class Retry:
    """Poll the same URL again after ``after`` seconds."""

    after: float
    error: UcwaError


@attrs.frozen
class Fatal:
    """The channel cannot continue; ``error`` says why."""

    error: UcwaError


ChannelAction: TypeAlias = (
    Deliver
    | Empty
    | Resync
    | Resume
    | RecreateApplication
    | Replaced
    | Reauthenticate
    | Retry
    | Fatal
)

# 408 and 425 are "try again"; everything else 4xx (bar the handled ones) is our bug or
# the server's refusal, and repeating it would not help.
_RETRYABLE_4XX = frozenset({408, 425, 429})


def _clamp_timeout(timeout: float) -> int:
    if not math.isfinite(timeout):
        return MIN_TIMEOUT
    return int(min(max(round(timeout), MIN_TIMEOUT), MAX_TIMEOUT))


class ChannelState:
    """The cursor of one application's event channel and the P-GET decision table."""

    def __init__(
        self,
        events_url: str,
        *,
        timeout: float = 180.0,
        backoff: Backoff | None = None,
        retry_after_cap: float = 60.0,
        proxy_retry_limit: int = 5,
        retry_after_floor: float = 1.0,
        pacer: PollPacer | None = None,
    ) -> None:
        self._timeout = _clamp_timeout(timeout)
        self._backoff = backoff if backoff is not None else Backoff()
        self._retry_after_cap = max(0.0, retry_after_cap)
        # A cap set below the floor is the caller's explicit choice: it wins.
        self._retry_after_floor = min(max(0.0, retry_after_floor), self._retry_after_cap)
        self._pacer = pacer if pacer is not None else PollPacer()
        self._proxy_retry_limit = proxy_retry_limit
        self._current = ""
        self._app_base_path = ""
        self._attempt = 0
        # The last batch named the URL just polled as the next one (see _paced).
        self._stuck = False
        self._polled = ""  # the last poll_url()
        self.reset(events_url)

    # -- state ----------------------------------------------------------------------

    @property
    def current_url(self) -> str:
        """The events URL the next P-GET targets (as the server gave it, resolved)."""
        return self._current

    @property
    def attempt(self) -> int:
        """Consecutive failed polls (0 after any successful one)."""
        return self._attempt

    @property
    def timeout(self) -> int:
        """The ``timeout`` query value in seconds (clamped to 180..1800).

        The shell's HTTP read timeout must be above it, or idle P-GETs get cancelled.
        """
        return self._timeout

    def poll_url(self) -> str:
        """The URL to GET: :attr:`current_url` plus ``timeout`` (``ack`` untouched)."""
        self._polled = urls.with_query(self._current, timeout=self._timeout)
        return self._polled

    def reset(self, events_url: str) -> None:
        """Start over on a new application's first events URL (absolute)."""
        # Validates too: an events URL must be an absolute http(s) URL.
        self._current = urls.resolve_href(events_url, base_url=events_url)
        self._app_base_path = urls.app_base_path_of(self._current)
        self._attempt = 0

    # -- outcomes -------------------------------------------------------------------

    @property
    def pacer(self) -> PollPacer:
        return self._pacer

    def on_transport_error(
        self, error: BaseException, *, elapsed: float | None = None
    ) -> ChannelAction:
        """The poll got no HTTP answer: retry the same URL after a backoff delay.

        ``elapsed``: seconds the P-GET took (None: unknown, no pacing).
        """
        if isinstance(error, InsecureTransportError):
            # An events URL that leaves https for http: asking again cannot help.
            return Fatal(error)
        if not isinstance(error, UcwaError):
            wrapped = TransportError(f"event channel poll failed: {error!r}")
            wrapped.__cause__ = error
            error = wrapped
        return self._paced(self._retry(error), elapsed)

    def on_response(
        self,
        status: int,
        content_type: str | None,
        body: bytes,
        *,
        retry_after: str | None = None,
        elapsed: float | None = None,
    ) -> ChannelAction:
        """The action for one P-GET answer (``retry_after``: the raw header).

        ``elapsed``: seconds from sending the P-GET to this answer (the shell deducts a
        round trip: what the server held it); it decides the pacing (None: unknown, no
        pacing).
        """
        return _wire.complete(
            self.on_response_steps(
                status, content_type, body, retry_after=retry_after, elapsed=elapsed
            )
        )

    def on_response_steps(
        self,
        status: int,
        content_type: str | None,
        body: bytes,
        *,
        retry_after: str | None = None,
        elapsed: float | None = None,
    ) -> Generator[None, None, ChannelAction]:
        """:meth:`on_response`, a step at a time: a body above :data:`LARGE_BODY` is
        decoded with ``wire.decode_steps``, and the generator yields between its steps;
        it returns the action."""
        if 200 <= status < 300:
            action = yield from self._on_success(status, content_type, body)
        else:
            action = self._decide(status, content_type, body, retry_after)
        return self._paced(action, elapsed)

    def _decide(
        self, status: int, content_type: str | None, body: bytes, retry_after: str | None
    ) -> ChannelAction:
        error = classify(
            status,
            content_type,
            body,
            method="GET",
            url=self._current,
            retry_after=retry_after,
        )
        if error is None:
            # 1xx/3xx (redirects are followed by the HTTP layer): nothing to read.
            return self._retry(
                ResponseError(
                    status=status,
                    message="unexpected status on the event channel",
                    method="GET",
                    url=self._current,
                )
            )
        return self._on_error(error)

    # -- internals ------------------------------------------------------------------

    def _paced(self, action: ChannelAction, elapsed: float | None) -> ChannelAction:
        """Add the pacing delay to an answer that moves on to another P-GET."""
        stuck, self._stuck = self._stuck, False
        if isinstance(action, Deliver | Resume) and action.events is not None:
            # Events whose batch did not move the cursor will come again: not progress.
            delivered = action.events.may_hold_events and not stuck
            wait = self._pacer.after_answer(elapsed, delivered=delivered)
        elif isinstance(action, Empty | Resume | Resync | Retry):
            wait = self._pacer.after_answer(elapsed, delivered=False)
        else:  # 401/404/409 and fatal answers have their own budgets
            return action
        if isinstance(action, Retry):
            return action if wait <= action.after else attrs.evolve(action, after=wait)
        return attrs.evolve(action, wait=wait) if wait > 0 else action

    def _on_success(
        self, status: int, content_type: str | None, body: bytes
    ) -> Generator[None, None, ChannelAction]:
        try:
            large = LARGE_XML_BODY if _wire.wire_of(content_type) == "xml" else LARGE_BODY
            if len(body) > large:
                decoded = yield from _wire.decode_steps(
                    body, content_type, lazy_events=len(body) > LAZY_BODY
                )
            else:
                decoded = _wire.decode(body, content_type)
            reader = _models.read_event_batch(decoded)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            # DecodeError is the contract; the others would be a parser bug, and a parser
            # bug must not kill the channel either: the same URL is re-delivered later.
            error = exc if isinstance(exc, DecodeError) else DecodeError(str(exc))
            return self._retry(error)

        batch = reader.envelope
        polled = (self._current, self._polled)
        try:
            if batch.resync_href:
                self._current = self._resolve(batch.resync_href)
                self._attempt = 0
                return Resync(self._current)
            if batch.next_href:
                self._current = self._resolve(batch.next_href)
                self._attempt = 0
                self._stuck = self._current in polled
                if reader.items:
                    # Only malformed events still go to the host: it counts them.
                    return Deliver(reader, self._current)
                return Empty(self._current)
            if batch.resume_href:
                self._current = self._resolve(batch.resume_href)
                self._attempt = 0
                self._stuck = self._current in polled
                return Resume(self._current, events=reader if reader.items else None)
        except UnsafeHrefError as exc:
            return self._retry(exc)
        return self._retry(
            DecodeError(
                f"event channel answered {status} without a next, resync or resume link",
                content_type=content_type,
            )
        )

    def _on_error(self, error: ResponseError) -> ChannelAction:
        status = error.status
        if status == 401:
            self._attempt += 1
            return Reauthenticate(error)
        if status in (404, 410) and not refuses_every_application(error):
            self._attempt += 1
            return RecreateApplication(error)
        if status == 409:
            self._attempt += 1
            return Replaced(error)
        if status >= 500 or status in _RETRYABLE_4XX:
            return self._retry(error)
        if (
            status == 403
            and isinstance(error, ProxyResponseError)
            and self._attempt < self._proxy_retry_limit
        ):
            return self._retry(error)
        return Fatal(error)

    def _retry(self, error: UcwaError) -> Retry:
        server_delay = error.retry_after if isinstance(error, ResponseError) else None
        if server_delay is not None:
            # Retry-After: 0 or a date in the past means "now"; the floor keeps a server
            # that always says so from being polled in a tight loop.
            after = min(max(server_delay, self._retry_after_floor), self._retry_after_cap)
        else:
            after = self._backoff.delay(self._attempt)
        self._attempt += 1
        return Retry(after, error)

    def _resolve(self, href: str) -> str:
        return urls.resolve_href(
            href, base_url=self._current, app_base_path=self._app_base_path or None
        )
