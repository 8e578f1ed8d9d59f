"""``Session``: the asyncio UCWA client.

A session owns (or borrows) one ``aiohttp.ClientSession``, signs in, creates
one UCWA application, runs exactly one event-channel task (``ChannelRunner``),
and turns every continueMessaging / continuePhoneAudio POST into an awaitable
``Invitation`` that the channel resolves.

Its life is one forward-only state machine (``SessionState``: new -> opening ->
open -> closing -> closed): ``aclose()`` interrupts an ``open()`` still signing in,
and whatever interrupts ``aclose()``, the session ends closed with its streams ended.

Correlation is race-proof: a fresh ``operationId`` is registered with the
``Correlator`` *before* the POST is sent (events can beat the 201), and the
201's Location becomes the second key once it arrives.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import urllib.parse
import weakref
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiohttp
import attrs

from ucwa_async._application import Application
from ucwa_async._auth import Auth, PasswordAuth, TokenAuth
from ucwa_async._channel import ChannelRunner
from ucwa_async._channel_host import SessionChannelHost
from ucwa_async._conversations import ConversationTable
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.correlate import check_operation_id, new_operation_id
from ucwa_async._core.errors import (
    ApplicationNotFoundError,
    ChannelFailedError,
    NotFoundError,
    RequestTimeoutError,
    SessionClosedError,
    UcwaError,
    UnsupportedModalityError,
)
from ucwa_async._core.models import (
    ConversationLog,
    MessagingInvitation,
    PhoneAudioInvitation,
    Resource,
    parse_resource,
)
from ucwa_async._core.phone import phone_uri
from ucwa_async._core.urls import normalize, origin_of, with_query
from ucwa_async._events import ChannelClosed, ChannelStatus, SessionState
from ucwa_async._http import HttpClient, sent_signal_trace
from ucwa_async._incoming import InvitationStream
from ucwa_async._invitation import Invitation
from ucwa_async._operations import OperationTable
from ucwa_async._options import Limits, Retries, Timeouts
from ucwa_async._outcome import check_wait_timeout
from ucwa_async._stream import EventStream
from ucwa_async._transport import Transport

__all__ = ["Session", "SessionStats"]

log = logging.getLogger("ucwa_async.session")

# The session's life, forward only (see SessionState).
_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.NEW: frozenset({SessionState.OPENING, SessionState.CLOSED}),
    SessionState.OPENING: frozenset({SessionState.OPEN, SessionState.CLOSING}),
    SessionState.OPEN: frozenset({SessionState.CLOSING}),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}

# Concurrent GETs of conversation_logs(): enough to hide latency, few enough to stay
# well inside the connection pool (the event channel keeps its own slots).
_LOG_FETCHERS = 8


class _Unset(enum.Enum):
    """``keepalive_interval`` not given (``None`` is a value: keep-alive off)."""

    UNSET = enum.auto()


@attrs.define
class SessionStats:
    """Counters a bot can log or export; all start at zero and only grow.

    Each counts an outcome once, when it happens (the first outcome of an invitation or
    message is its only one). Invitations and sent messages still waiting when the
    event channel failed for good end with ``ChannelFailedError`` and are not counted as
    any outcome: the ``ChannelFailed`` signal says it once for all.
    """

    invitations_started: int = 0
    """continue / start calls that got their invitation: its 201, or, after a lost 201,
    the event channel naming it within the grace (a retry that joins a watched call is
    not a second start). One named only after its call raised is counted in
    ``invitations_abandoned`` alone."""
    invitations_connected: int = 0
    """Invitations that ended ``Connected`` (``await invitation`` returned)."""
    invitations_failed: int = 0
    """Invitations the server ended without connecting (``InvitationFailedError``,
    with its reason)."""
    invitations_timed_out: int = 0
    """Invitations with no outcome within their timeout (``InvitationTimeoutError``;
    they may still be going on the server)."""
    invitations_lost: int = 0
    """Invitations whose outcome is unknown (``InvitationLostError``): their application
    was lost, or they completed but could not be read back."""
    invitations_cancelled: int = 0
    """Invitations cancelled by ``invitation.cancel()`` (their cancel POST accepted)."""
    invitations_closed: int = 0
    """Invitations still pending when the session closed (``SessionClosedError``)."""
    invitations_abandoned: int = 0
    """Accepted by the server after their caller gave up; cancelled on the server."""
    events_received: int = 0
    """Events the event channel delivered (every type, ours or not)."""
    events_rejected: int = 0
    """Malformed events (and senders) skipped, and events whose hrefs were refused; each
    is logged as a warning, none stops the channel."""
    callback_channel_retries: int = 0
    """POSTs retried after a ``CallbackChannelError`` (500 ServiceFailure: the remote
    event channel is not reachable), once the channel was re-established."""
    applications_created: int = 0
    """Applications this session made: the first, and each re-creation after the server
    lost one (``ApplicationRecreated``)."""
    reauthentications: int = 0
    """Fresh tokens asked for after a 401 (the budget is ``Retries.reauthentications``)."""
    incoming_invitations: int = 0
    """Incoming invitations that arrived (each put in the inbox, ``session.incoming()``,
    or declined if it was full)."""
    incoming_accepted: int = 0
    """Incoming invitations accepted (``accept()``'s POST taken)."""
    incoming_declined: int = 0
    """Incoming invitations declined (their decline POST taken: its answer, or, after a
    lost answer, the invitation's end on the event channel within the grace), by
    ``decline()`` or because the inbox was full."""
    incoming_overflowed: int = 0
    """Declined (reason Local) because the inbox was full."""
    messages_sent: int = 0
    """Messages the server took (``Conversation.send()``: its 201, or its events after
    a lost 201)."""
    messages_delivered: int = 0
    """Sent messages the server said were delivered (``await message`` returned)."""
    messages_failed: int = 0
    """Sent messages the server said were not delivered (``MessageFailedError``)."""
    messages_timed_out: int = 0
    """Sent messages with no outcome within their timeout (``MessageTimeoutError``)."""
    conversations_ended: int = 0
    """Conversations this session tracked that ended (``Conversation.ended``), for any
    reason (the channel's failure and the session's close included)."""


class Session:
    """An asyncio UCWA 2.0 session.

    ::

        async with ucwa_async.Session(discovery_url,
                                      auth=ucwa_async.PasswordAuth(user, password)) as session:
            logs = await session.conversation_logs(limit=20)
            im = await session.continue_messaging(logs[0], message="Following up")
            result = await im

    Parameters (all keyword-only after ``discovery_url``):

    - ``auth``: ``PasswordAuth`` or ``TokenAuth``.
    - ``wire_format``: ``"json"`` or ``"xml"`` (``application/vnd.microsoft.com.ucwa+xml``).
    - ``invitation_timeout``: seconds an invitation may stay pending before it
      ends with ``InvitationTimeoutError``.
    - ``http_session``: a borrowed ``aiohttp.ClientSession`` (never closed by us; one
      with its own ``auth=`` or default ``Authorization`` header: ``ValueError``).
    - ``timeouts``, ``retries``, ``limits``: grouped tuning (``ucwa_async.Timeouts``,
      ``ucwa_async.Retries``, ``ucwa_async.Limits``; each field documented there).
    - ``user_agent``, ``culture``: sent when the application is created.
    - ``available_for``: the modalities makeMeAvailable declares, so that people can
      reach this session (``("Messaging", "PhoneAudio")`` by default; ``()``: never made
      available, no incoming invitation arrives). Anything else: ``ValueError``.
    - ``allow_insecure_http``: allow the password and tokens over plain http to a
      non-loopback host (default False: refused with ``InsecureTransportError``; a
      downgrade from https is refused either way).

    Shorthands for one field of a group, kept from 0.1 (a shorthand given wins):
    ``request_timeout``, ``connect_timeout``, ``close_timeout``, ``pget_timeout``,
    ``reconnect_settle``, ``keepalive_interval`` (``Timeouts``); ``max_callback_retries``,
    ``max_redirects``, ``app_create_retries``, ``retry_after_cap``, ``backoff``
    (``Retries``); ``event_queue_size``, ``max_body_size`` (``Limits``).

    Once open: ``session.stats`` (``SessionStats``: counters of invitations, incoming
    invitations, messages, conversations, retries), ``channel_state``, ``state``,
    ``pending_invitations``; ``session.incoming()`` and ``session.events()`` to listen.
    """

    def __init__(
        self,
        discovery_url: str,
        *,
        auth: Auth,
        wire_format: Literal["json", "xml"] = "json",
        invitation_timeout: float = 60.0,
        http_session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        retries: Retries | None = None,
        limits: Limits | None = None,
        user_agent: str = "ucwa_async/0.1",
        culture: str = "en-US",
        # Shorthands for single fields of the groups above (the 0.1 names); a shorthand
        # given wins over the same field of its group.
        request_timeout: float | None = None,
        pget_timeout: float | None = None,
        keepalive_interval: float | _Unset | None = _Unset.UNSET,
        max_callback_retries: int | None = None,
        max_redirects: int | None = None,
        event_queue_size: int | None = None,
        retry_after_cap: float | None = None,
        max_body_size: int | None = None,
        connect_timeout: float | None = None,
        close_timeout: float | None = None,
        reconnect_settle: float | None = None,
        app_create_retries: int | None = None,
        backoff: Backoff | None = None,
        allow_insecure_http: bool = False,
        available_for: tuple[str, ...] | list[str] = ("Messaging", "PhoneAudio"),
    ) -> None:
        available_for = _check_available_for(available_for)
        try:
            parsed = urllib.parse.urlsplit(discovery_url)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a URL: {discovery_url!r}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"discovery_url must be an http(s) URL, got {discovery_url!r}")
        if parsed.username or parsed.password:
            raise ValueError("discovery_url must not carry credentials")
        try:
            parsed.port  # noqa: B018 - a port out of 0..65535 raises ValueError here
        except ValueError as exc:
            # Else open() raised urllib's bare ValueError.
            raise ValueError(f"discovery_url has an invalid port ({exc})") from None
        if not isinstance(auth, PasswordAuth | TokenAuth):
            raise TypeError("auth must be a PasswordAuth or a TokenAuth")
        if wire_format not in ("json", "xml"):
            raise ValueError(f"wire_format must be 'json' or 'xml', got {wire_format!r}")
        if http_session is not None and not isinstance(http_session, aiohttp.ClientSession):
            raise TypeError(f"http_session must be an aiohttp.ClientSession, got {http_session!r}")
        if http_session is not None and (
            http_session.auth is not None or "Authorization" in http_session.headers
        ):
            # Its credentials would go with every request sent without ours (the discovery
            # GET, an href to another host), and aiohttp refuses auth= next to our header.
            raise ValueError(
                "http_session must not carry its own credentials (auth= or a default "
                "Authorization header): the session sends its own, to its own hosts only"
            )
        # Both go into the application's POST (user_agent into every request's header):
        # checked here rather than failing inside open() with aiohttp's own error.
        _require_text("user_agent", user_agent)
        _require_text("culture", culture)
        _require_positive("invitation_timeout", invitation_timeout)
        timeouts = _with_shorthands(
            _group("timeouts", timeouts, Timeouts),
            request=("request_timeout", request_timeout),
            connect=("connect_timeout", connect_timeout),
            close=("close_timeout", close_timeout),
            pget=("pget_timeout", pget_timeout),
            reconnect_settle=("reconnect_settle", reconnect_settle),
        )
        if keepalive_interval is not _Unset.UNSET:
            if keepalive_interval is not None:
                _require_positive("keepalive_interval", keepalive_interval)
            timeouts = attrs.evolve(timeouts, keepalive=keepalive_interval)
        retries = _with_shorthands(
            _group("retries", retries, Retries),
            callback_channel=("max_callback_retries", max_callback_retries),
            redirects=("max_redirects", max_redirects),
            app_create=("app_create_retries", app_create_retries),
            retry_after_cap=("retry_after_cap", retry_after_cap),
            backoff=("backoff", backoff),
        )
        limits = _with_shorthands(
            _group("limits", limits, Limits),
            event_queue_size=("event_queue_size", event_queue_size),
            max_body_size=("max_body_size", max_body_size),
        )

        self.discovery_url = discovery_url
        self.wire_format: Literal["json", "xml"] = wire_format
        self.invitation_timeout = invitation_timeout
        self.stats = SessionStats()
        self._auth = auth
        self._borrowed = http_session
        self._user_agent = user_agent
        self._culture = culture
        self.timeouts = timeouts
        self.retries = retries
        self.limits = limits
        # Flattened for the parts the session builds in open().
        self._request_timeout = timeouts.request
        self._pget_timeout = min(max(timeouts.pget, 180.0), 1800.0)
        self._pget_read_timeout = self._pget_timeout + 30.0
        self._keepalive_interval = timeouts.keepalive
        self._connect_timeout = timeouts.connect
        self._close_timeout = timeouts.close
        self._reconnect_settle = timeouts.reconnect_settle
        self._max_callback_retries = retries.callback_channel
        self._max_redirects = retries.redirects
        self._app_create_retries = retries.app_create
        self._retry_after_cap = retries.retry_after_cap
        self._backoff = retries.backoff
        self._event_queue_size = limits.event_queue_size
        self._max_body = limits.max_body_size
        self._allow_insecure_http = allow_insecure_http
        self._accept = _wire.media_type(wire_format)
        self.available_for = available_for

        self._client: aiohttp.ClientSession | None = None
        self._pget_client: aiohttp.ClientSession | None = None  # owned only
        self._client_transport: Transport | None = None
        # The parts a session is made of, built by open(): the application's life, the
        # operations table, the event channel and its host-side adapter.
        self._app: Application | None = None
        self._ops: OperationTable | None = None
        self._conversations: ConversationTable | None = None
        self._channel: ChannelRunner | None = None
        self._host: SessionChannelHost | None = None
        # Held weakly: a stream dropped without close() is unsubscribed when collected
        # (one per loop turn would otherwise stay fed, its queue full, for months); those
        # a task waits on are held (see EventStream).
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._reading_streams: set[EventStream] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._keepalive_task: asyncio.Task[None] | None = None
        # The sign-in steps run in their own task so that aclose() can interrupt them
        # without cancelling whichever task called open().
        self._opener: asyncio.Task[None] | None = None
        self._state = SessionState.NEW
        self._close_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"<Session {self.discovery_url!r} wire={self.wire_format} state={self._state.value} "
            f"channel={self.channel_state.value} pending={self.pending_invitations}>"
        )

    # -- lifecycle -----------------------------------------------------------------
    #
    # One state machine, forward only: new -> opening -> open -> closing -> closed
    # (new -> closed for a session closed before it was opened). open() is the only
    # way into opening and open; whoever leaves opening or open for closing (aclose(),
    # or open() failing or cancelled) does the clean-up, under the close lock.

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Sign in, create the application, start the event channel, make me available.

        Raises ``SessionClosedError`` if the session is not new, or if ``aclose()``
        ran while it was opening (the session is then closed for good). Given up
        (cancelled, ``connect_timeout``), it closes the session: an application it made
        is DELETEd, even one whose creating POST had no answer yet (waited for up to
        ``close_timeout``).
        """
        if SessionState.OPENING not in _TRANSITIONS[self._state]:  # only a new session opens
            raise SessionClosedError(f"session cannot be opened again (state {self._state.value})")
        self._move(SessionState.OPENING)
        try:
            self._build_parts()
            opener = self._opener = asyncio.create_task(self._open_steps(), name="ucwa_async.open")
            await opener
        except BaseException as exc:
            closed_under_us = self._state is not SessionState.OPENING
            await self._close()
            current = asyncio.current_task()
            if (
                closed_under_us
                and isinstance(exc, asyncio.CancelledError)
                and (current is None or not current.cancelling())
            ):
                # aclose() cancelled the sign-in, not our caller: say what happened.
                raise SessionClosedError("the session was closed while it was opening") from None
            raise
        finally:
            self._opener = None
        if self._state is not SessionState.OPENING:
            # aclose() ran between the last sign-in step and this line.
            raise SessionClosedError("the session was closed while it was opening")
        self._move(SessionState.OPEN)
        if self._keepalive_interval is not None:
            self._keepalive_task = asyncio.create_task(
                self._application.keepalive(self._keepalive_interval, self._channel_alive),
                name="ucwa_async.keepalive",
            )
        log.info("session open: application %s", self.application_url)

    def _move(self, to: SessionState) -> None:
        """The one place the state changes; anything but a forward step is a bug of ours."""
        if to not in _TRANSITIONS[self._state]:
            raise AssertionError(f"session state {self._state.value} -> {to.value} is not allowed")
        self._state = to

    def _build_parts(self) -> None:
        """The parts a session is made of (no I/O yet)."""
        if self._borrowed is not None:
            self._client = self._borrowed
            self._pget_client = None
        else:
            self._client = aiohttp.ClientSession()
            # The P-GET's own: same connector and cookies, plus the trace that tells the
            # channel when a fresh P-GET is on the wire (fast reconnects).
            self._pget_client = aiohttp.ClientSession(
                connector=self._client.connector,
                connector_owner=False,
                cookie_jar=self._client.cookie_jar,
                trace_configs=[sent_signal_trace()],
            )
        self._client_transport = Transport(
            HttpClient(self._client, max_body=self._max_body, reserved_session=self._pget_client),
            auth=self._auth,
            trusted_origins={origin_of(self.discovery_url)},
            accept=self._accept,
            user_agent=self._user_agent,
            request_timeout=self._request_timeout,
            max_body=self._max_body,
            backoff=self._backoff,
            retry_after_cap=self._retry_after_cap,
            is_closed=lambda: self._state is SessionState.CLOSED,
            on_reauthenticated=self._count_reauthentication,
            allow_insecure_http=self._allow_insecure_http,
            max_reauthentications=self.retries.reauthentications,
            reauthentication_window=self.retries.reauthentication_window,
        )
        app = self._app = Application(
            self._client_transport,
            discovery_url=self.discovery_url,
            wire_format=self.wire_format,
            user_agent=self._user_agent,
            culture=self._culture,
            max_redirects=self._max_redirects,
            app_create_retries=self._app_create_retries,
            max_body=self._max_body,
            backoff=self._backoff,
            delete_timeout=self._close_timeout,
            available_for=self.available_for,
        )
        ops = self._ops = OperationTable(
            transport=self._client_transport,
            application=app,
            channel=self._running_channel,
            stats=self.stats,
            spawn=self._spawn,
            ensure_usable=self._ensure_usable,
            wire_format=self.wire_format,
            invitation_timeout=self.invitation_timeout,
            max_callback_retries=self._max_callback_retries,
            connect_timeout=self._connect_timeout,
        )
        conversations = self._conversations = ConversationTable(
            transport=self._client_transport,
            application=app,
            post_payload=ops.post_payload,
            stats=self.stats,
            spawn=self._spawn,
            ensure_usable=self._ensure_usable,
            wire_format=self.wire_format,
            invitation_timeout=self.invitation_timeout,
            inbox_size=self.limits.incoming_queue_size,
            max_messages=self.limits.message_buffer_size,
            owns_invitation=ops.owns,
        )
        ops.conversation_factory = conversations.from_invitation
        self._host = SessionChannelHost(
            transport=self._client_transport,
            application=app,
            operations=ops,
            conversations=conversations,
            channel=self._running_channel,
            stats=self.stats,
            publish=self._publish,
            pget_read_timeout=self._pget_read_timeout,
        )

    async def _open_steps(self) -> None:
        app, ops = self._application, self._operations
        try:
            async with asyncio.timeout(self._connect_timeout):
                await app.sign_in()
                events_url = await app.create()
                self.stats.applications_created = app.created
                self._start_channel(events_url)
                await self._running_channel().wait_connected()
                await app.make_me_available(ops.post_operation)
        except TimeoutError as exc:
            if isinstance(exc, UcwaError):
                raise
            raise RequestTimeoutError(
                f"sign-in did not complete within {self._connect_timeout:g} s"
            ) from exc

    async def aclose(self) -> None:
        """Stop the channel, end pending invitations, delete the application, close HTTP.

        Idempotent; safe to call from several tasks, and while ``open()`` is still
        signing in (it then raises ``SessionClosedError``). If ``aclose()`` itself is
        cancelled, the session still ends closed: the application's DELETE (best
        effort) is skipped, everything local is stopped, every ``events()`` stream
        ends; a later ``aclose()`` finishes closing the HTTP client if that was cut short.
        """
        if self._state is SessionState.NEW:
            self._move(SessionState.CLOSED)
            for stream in tuple(self._streams):  # taken before an open() that never came
                stream._end(ChannelClosed())
            self._streams.clear()
            log.info("session closed (never opened)")
            return
        await self._close()

    @property
    def state(self) -> SessionState:
        """Where the session is in its life: new, opening, open, closing or closed."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once ``state`` is ``closed`` (for good: a session is never reopened)."""
        return self._state is SessionState.CLOSED

    @property
    def channel_state(self) -> ChannelStatus:
        """``connecting``, ``connected``, ``reconnecting``, ``failed`` (for good: the
        session is still open, but its channel will not come back) or ``closed``."""
        if self._state is SessionState.CLOSED or self._state is SessionState.CLOSING:
            return ChannelStatus.CLOSED
        if self._channel is None:
            return ChannelStatus.CONNECTING
        return self._channel.status

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the event channel is connected.

        Raises ``ChannelFailedError`` if the channel failed, ``SessionClosedError`` if the
        session closed, and the builtin ``TimeoutError`` (as ``asyncio.timeout``) if
        ``timeout`` seconds pass first; 0 or less does not wait."""
        check_wait_timeout(timeout)
        self._ensure_usable()
        try:
            async with asyncio.timeout(timeout):
                # Still signing in (open() awaited by another task): the channel starts
                # on the way; asyncio.wait neither raises open()'s error nor cancels it.
                opener = self._opener
                if self._channel is None and opener is not None:
                    await asyncio.wait([opener])
                    self._ensure_usable()
                channel = self._channel
                if channel is None:
                    raise SessionClosedError(
                        "the session is not open yet: its channel is not started"
                    )
                await channel.wait_connected()
        except ChannelFailedError:
            pass  # the channel failed: raised afresh just below, without the stored one
        # The channel may have been stopped by aclose() or failed meanwhile: say which.
        self._ensure_usable()

    @property
    def application_url(self) -> str | None:
        """The absolute URL of the current UCWA application (None before sign-in)."""
        return self._app.url if self._app is not None else None

    @property
    def pending_invitations(self) -> int:
        """How many invitations have no outcome yet."""
        return len(self._ops) if self._ops is not None else 0

    # -- public operations -----------------------------------------------------------

    async def conversation_logs(self, limit: int | None = None) -> list[ConversationLog]:
        """List past conversations, in the order the server lists them.

        conversationLogs_ref.md promises no order: for the most recent, sort by
        ``created_at``. ``limit`` is sent as the server's ``limit`` query parameter and
        caps how many logs are read (each one a GET unless the listing embeds it): the
        first ``limit`` the server lists, which need not be the newest. A listed log
        deleted before it is read (its GET answers 404) is left out."""
        self._ensure_open()
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise ValueError("limit must be a positive int")
        href = await self._application.communication_link("conversationLogs")
        if href is None:
            raise UcwaError("the application has no conversationLogs link")
        url = self._application.resolve_own(href)
        if limit is not None:
            url = with_query(url, limit=str(limit))
        listing = parse_resource(await self._transport.get_json(url), rel="conversationLogs")
        embedded = {
            normalize(self._resolve(r.href)): r
            for r in listing.embedded_all("conversationLog")
            if isinstance(r, ConversationLog) and r.href
        }
        listed = list(listing.links_for("conversationLog"))
        linked = {normalize(self._resolve(h)) for h in listed}
        # PayloadFormat.md: a resource may embed a target instead of linking to it; a log
        # only embedded is listed too, after the linked ones, in document order.
        listed += [log.href for key, log in embedded.items() if key not in linked]
        if limit is not None:
            listed = listed[:limit]  # before fetching: a long listing costs no GET beyond limit
        hrefs = [self._application.resolve_own(h) for h in listed]
        logs: list[ConversationLog | None] = []
        to_fetch: list[tuple[int, str]] = []
        for index, log_url in enumerate(hrefs):
            known = embedded.get(normalize(log_url))
            if known is not None and known.link("continueMessaging"):
                logs.append(self._as_log(known, log_url))
            else:
                logs.append(None)
                to_fetch.append((index, log_url))
        await self._fetch_logs(to_fetch, logs)
        return [entry for entry in logs if entry is not None]

    async def _fetch_logs(
        self, to_fetch: list[tuple[int, str]], into: list[ConversationLog | None]
    ) -> None:
        """GET each log with a small fixed pool of workers over one shared queue.

        Not a task per href (a listing of 20 000 links would start 20 000 tasks), and
        not a TaskGroup: it would raise an ExceptionGroup (not a UcwaError), and on
        Python 3.11 a failing child leaves the caller's task marked as cancelling.
        The first error is raised as is; the other workers are cancelled and awaited.
        """
        queue = iter(to_fetch)  # shared: each href is taken by exactly one worker

        async def worker() -> None:
            for index, log_url in queue:
                try:
                    body = await self._transport.get_json(log_url)
                except ApplicationNotFoundError:
                    raise
                except NotFoundError:
                    # Deleted between the listing and its read (conversationLog_ref.md
                    # has a DELETE): not a past conversation any more, so not listed.
                    log.debug("conversationLog %s is gone since the listing", log_url)
                    continue
                into[index] = self._as_log(parse_resource(body), log_url)

        if len(to_fetch) <= 1:
            await worker()
            return
        workers = [
            asyncio.create_task(worker(), name="ucwa_async.conversation-logs")
            for _ in range(min(_LOG_FETCHERS, len(to_fetch)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def conversation_log(self, href: str) -> ConversationLog:
        """Read one conversationLog by its href."""
        self._ensure_open()
        if not isinstance(href, str):
            raise TypeError(f"href must be a conversationLog href (str), got {type(href).__name__}")
        url = self._application.rebase(self._resolve(href))
        return self._as_log(parse_resource(await self._transport.get_json(url)), url)

    async def continue_messaging(
        self,
        log: ConversationLog | str,
        message: str | None = None,
        *,
        content_type: Literal["text/plain", "text/html"] = "text/plain",
        timeout: float | None = None,
        operation_id: str | None = None,
    ) -> Invitation[MessagingInvitation]:
        """Continue a past conversation by instant message.

        Returns as soon as the server accepts the POST (201); await the returned
        ``Invitation`` for how it ended (``timeout`` counts from the 201).

        ``operation_id`` (1..50 letters, digits, ``-_.:``) makes a retry idempotent: a
        call with the id of an invitation still pending, or whose POST is still under
        way, sends nothing and returns that invitation. If the caller gives up while
        the POST is under way, the session still waits for it and cancels the
        invitation on the server (``stats.invitations_abandoned``).

        A POST whose answer is lost (``TransportError`` with ``request_sent`` not False)
        waits up to 2 s for the event channel to name the invitation, and returns it if
        it does; otherwise the ``TransportError`` is raised, and an invitation that shows
        up later is cancelled as abandoned. The ``start_*`` calls do the same.
        """
        self._ensure_open()
        if message is not None and not isinstance(message, str):
            raise TypeError("message must be a str or None")
        if content_type not in ("text/plain", "text/html"):
            raise ValueError("content_type must be 'text/plain' or 'text/html'")
        operation_id = _operation_id(operation_id)
        if timeout is not None:
            _require_positive("timeout", timeout)
        url = await self._continue_url(log, "continueMessaging")
        body: dict[str, Any] = {"operationId": operation_id}
        if message is not None:
            body["_links"] = {"message": {"href": _wire.data_uri(message, content_type)}}
        return await self._operations.start(
            "messagingInvitation", url, body, operation_id, timeout, MessagingInvitation
        )

    async def continue_phone_audio(
        self,
        log: ConversationLog | str,
        phone_number: str | None = None,
        *,
        timeout: float | None = None,
        operation_id: str | None = None,
    ) -> Invitation[PhoneAudioInvitation]:
        """Continue a past conversation by phone audio, calling ``phone_number``.

        ``phone_number`` is a global number, ``tel:+14255551234`` or ``+1 425 555 1234``
        (sent as ``tel:+14255551234``); anything else raises ``InvalidPhoneNumberError``
        (a ``ValueError``). Left out (None), none is sent and the server rings the user's
        own number, the one given when the application was created
        (continuePhoneAudio_ref.md). ``timeout`` and ``operation_id``: as for
        ``continue_messaging``.
        """
        self._ensure_open()
        number = None if phone_number is None else phone_uri(phone_number)  # the CLI's check
        operation_id = _operation_id(operation_id)
        if timeout is not None:
            _require_positive("timeout", timeout)
        url = await self._continue_url(log, "continuePhoneAudio")
        body = {"operationId": operation_id}
        if number is not None:
            body["phoneNumber"] = number
        return await self._operations.start(
            "phoneAudioInvitation", url, body, operation_id, timeout, PhoneAudioInvitation
        )

    async def invitation(
        self, href: str, *, timeout: float | None = None
    ) -> Invitation[MessagingInvitation | PhoneAudioInvitation]:
        """Re-attach to an invitation by its href (``Invitation.href``).

        Returns the tracked handle if there is one; else GETs the invitation: a final
        state gives a handle already resolved (Connected: its resource; otherwise
        ``InvitationFailedError``), a pending one is tracked like a fresh invitation,
        ``timeout`` (default ``invitation_timeout``) counting from now.
        """
        self._ensure_open()
        if not isinstance(href, str) or not href.strip():
            raise ValueError("href must be a non-empty str")
        if timeout is not None:
            _require_positive("timeout", timeout)
        return await self._operations.attach(href, timeout)

    # -- conversations -----------------------------------------------------------------

    def incoming(self) -> InvitationStream:
        """Incoming invitations: ``async with session.incoming() as invitations:
        async for invite in invitations`` (``ucwa_async.IncomingInvitation``).

        They are queued from the moment the session is open (``Limits.incoming_queue_size``;
        beyond it an invitation is declined, reason Local, and counted in
        ``stats.incoming_overflowed``). Several streams share one inbox: each invitation
        goes to exactly one of them. A stream ends when the session closes; when the
        event channel fails for good (nothing more can arrive) it raises
        ``ChannelFailedError``.
        """
        self._ensure_usable()
        return InvitationStream(self._conversation_table.inbox)

    async def start_messaging(
        self,
        to: str,
        message: str | None = None,
        subject: str | None = None,
        *,
        content_type: Literal["text/plain", "text/html"] = "text/plain",
        importance: Literal["Normal", "Urgent", "Emergency"] | None = None,
        timeout: float | None = None,
        operation_id: str | None = None,
    ) -> Invitation[MessagingInvitation]:
        """Start a new conversation with ``to`` (``sip:...``; a bare ``user@domain`` is
        sent as ``sip:user@domain``) by instant message.

        Returns an ``Invitation`` as ``continue_messaging`` does (after the 201);
        ``await inv.conversation()`` for the ``Conversation`` once connected.
        """
        self._ensure_open()
        body = self._start_body(to, subject, importance, operation_id)
        if message is not None:
            if not isinstance(message, str):
                raise TypeError("message must be a str or None")
            if content_type not in ("text/plain", "text/html"):
                raise ValueError("content_type must be 'text/plain' or 'text/html'")
            body["_links"] = {"message": {"href": _wire.data_uri(message, content_type)}}
        if timeout is not None:
            _require_positive("timeout", timeout)
        url = await self._communication_link("startMessaging")
        return await self._operations.start(
            "messagingInvitation", url, body, body["operationId"], timeout, MessagingInvitation
        )

    async def start_phone_audio(
        self,
        to: str,
        phone_number: str | None = None,
        subject: str | None = None,
        *,
        importance: Literal["Normal", "Urgent", "Emergency"] | None = None,
        timeout: float | None = None,
        operation_id: str | None = None,
    ) -> Invitation[PhoneAudioInvitation]:
        """Call ``to`` (``sip:...``, or a bare ``user@domain``) by phone audio: the server
        rings ``phone_number`` (``tel:+1...``, this user's own phone; left out, the one
        given when the application was created, startPhoneAudio_ref.md) and connects it.
        Returns an ``Invitation``."""
        self._ensure_open()
        body = self._start_body(to, subject, importance, operation_id)
        if phone_number is not None:
            body["phoneNumber"] = phone_uri(phone_number)
        if timeout is not None:
            _require_positive("timeout", timeout)
        url = await self._communication_link("startPhoneAudio")
        return await self._operations.start(
            "phoneAudioInvitation", url, body, body["operationId"], timeout, PhoneAudioInvitation
        )

    async def request(
        self, method: str, href: str, body: Mapping[str, Any] | None = None
    ) -> Resource | None:
        """Escape hatch for what is not wrapped yet (presence, markAsRead, ...).

        ``href`` as the server gave it (relative or absolute); ``body`` in canonical
        shape (properties, ``"_links": {rel: {"href": ...}}``), encoded in the session's
        wire. The session's authentication, origin, https and error rules apply; a
        CallbackChannelError on a POST reconnects and retries as for invitations.
        Returns the response's resource, or None for an empty answer (204).
        """
        self._ensure_open()
        if not isinstance(method, str) or method.upper() not in _REQUEST_METHODS:
            raise ValueError(f"method must be one of {sorted(_REQUEST_METHODS)}, got {method!r}")
        if not isinstance(href, str) or not href.strip():
            raise ValueError("href must be a non-empty str")
        if body is not None and not isinstance(body, Mapping):
            # Else the JSON wire sent it as it was and the XML wire raised AttributeError.
            raise TypeError(f"body must be a mapping or None, got {type(body).__name__}")
        method = method.upper()
        url = self._application.rebase(self._resolve(href))
        payload: bytes | None = None
        content_type: str | None = None
        if body is not None:
            payload, content_type = _wire.encode_input(body, self.wire_format)
        if method == "POST":
            response = await self._operations.post_payload(url, payload, content_type)
        else:
            response = await self._transport.send(
                method, url, data=payload, content_type=content_type
            )
        if not response.body:
            return None
        return parse_resource(
            _wire.decode(response.body, response.content_type, max_size=self._max_body)
        )

    @property
    def _conversation_table(self) -> ConversationTable:
        if self._conversations is None:
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        return self._conversations

    async def _communication_link(self, rel: str) -> str:
        href = await self._application.communication_link(rel)
        if href is None:
            raise UcwaError(f"the application's communication resource has no {rel} link")
        return self._application.resolve_own(href)

    def _start_body(
        self, to: str, subject: str | None, importance: str | None, operation_id: str | None
    ) -> dict[str, Any]:
        if not isinstance(to, str) or not to.strip():
            raise ValueError("to must be a non-empty str such as 'sip:someone@contoso.com'")
        to = to.strip()
        if ":" not in to:
            to = f"sip:{to}"
        body: dict[str, Any] = {"operationId": _operation_id(operation_id), "to": to}
        if subject is not None:
            if not isinstance(subject, str):
                raise TypeError("subject must be a str or None")
            if len(subject) > 250:
                raise ValueError("subject is at most 250 characters (UCWA's limit)")
            body["subject"] = subject
        if importance is not None:
            if importance not in ("Normal", "Urgent", "Emergency"):
                raise ValueError("importance must be 'Normal', 'Urgent' or 'Emergency'")
            body["importance"] = importance
        return body

    def events(self, maxsize: int | None = None) -> EventStream:
        """Subscribe to the event channel: UCWA events and channel signals, in order.

        Use as ``async with session.events() as events: async for event in events``.
        A full queue drops its oldest item (see ``EventStream.dropped``); the
        channel never waits for a subscriber. A stream taken before ``open()`` sees the
        first ``ChannelConnected`` too. A stream dropped without ``close()`` (no longer
        referenced, no task waiting on it) is unsubscribed once collected. Items are
        ``Event | ChannelSignal``; the last is ``ChannelClosed``, when the session closes.
        """
        if self._state is not SessionState.NEW:
            self._ensure_usable()
        if maxsize is not None and (
            not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1
        ):
            # 0 must not silently mean the default bound.
            raise ValueError(f"maxsize must be a positive int or None, got {maxsize!r}")
        stream = EventStream(
            maxsize=self._event_queue_size if maxsize is None else maxsize,
            on_close=self._unsubscribe,
            reading=self._reading_streams,
        )
        self._streams.add(stream)
        return stream

    # -- the parts ---------------------------------------------------------------------

    @property
    def _transport(self) -> Transport:
        if self._client_transport is None:
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        return self._client_transport

    @property
    def _application(self) -> Application:
        if self._app is None:
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        return self._app

    @property
    def _operations(self) -> OperationTable:
        if self._ops is None:
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        return self._ops

    def _running_channel(self) -> ChannelRunner:
        assert self._channel is not None, "the event channel is started by open()"
        return self._channel

    def _start_channel(self, events_url: str) -> None:
        assert self._host is not None
        self._channel = ChannelRunner(
            self._host,
            events_url,
            pget_timeout=self._pget_timeout,
            settle=self._reconnect_settle,
            backoff=self._backoff,
            retry_after_cap=self._retry_after_cap,
            round_trip=self._transport.round_trip,
        )
        self._channel.start()

    # -- helpers -----------------------------------------------------------------------

    def _channel_alive(self) -> bool:
        """False once the event channel has failed: the session is of no more use."""
        return self._channel is None or self._channel.error is None

    def _count_reauthentication(self) -> None:
        self.stats.reauthentications += 1

    def _resolve(self, href: str) -> str:
        return self._application.resolve(href)

    async def _continue_url(self, log_ref: ConversationLog | str, rel: str) -> str:
        if isinstance(log_ref, str):
            conversation_log = await self.conversation_log(log_ref)
        elif isinstance(log_ref, ConversationLog):
            conversation_log = log_ref
        else:
            raise TypeError("log must be a ConversationLog or a conversationLog href (str)")
        href = conversation_log.link(rel)
        if href is None:
            # The server offers a continue only by its link (conversationLog_ref.md): none
            # for this modality, or none left on an expired log. Nothing to POST to.
            raise UnsupportedModalityError(
                f"the conversationLog {conversation_log.href or '(no href)'} offers no {rel}"
                " link: it cannot be continued that way"
            )
        return self._application.rebase(self._application.resolve_own(href))

    def _as_log(self, resource: Resource, url: str) -> ConversationLog:
        # The user sees absolute hrefs, as for invitations: the URL the log was read from.
        if isinstance(resource, ConversationLog):
            return resource if resource.href == url else attrs.evolve(resource, href=url)
        raise UcwaError(f"{url} is not a conversationLog (rel {resource.rel!r})")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _publish(self, item: object) -> None:
        """Hand an event or a channel signal to every ``events()`` subscriber."""
        if self._streams:  # (every event comes here: most sessions have no stream)
            for stream in tuple(self._streams):
                stream._push(item)

    def _unsubscribe(self, stream: EventStream) -> None:
        self._streams.discard(stream)

    def _ensure_open(self) -> None:
        """``_ensure_usable``, and not still opening: the public requests need the
        application that open() is still creating (``_ensure_usable`` alone lets open's
        own steps through)."""
        self._ensure_usable()
        if self._state is SessionState.OPENING:
            raise SessionClosedError(
                "the session is still opening: await open() (or enter 'async with') first"
            )

    def _ensure_usable(self) -> None:
        if self._state is SessionState.CLOSED or self._state is SessionState.CLOSING:
            raise SessionClosedError(f"the session is {self._state.value}")
        if self._state is not SessionState.OPEN and self._state is not SessionState.OPENING:
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        failed = self._channel.error if self._channel is not None else None
        if failed is not None:
            raise failed.renewed() from failed.cause

    async def _close(self) -> None:
        """Leave opening/open for closing, clean up, end closed; idempotent.

        The DELETE of the application is the only step that waits on the server and
        the only one skipped when the closing task is cancelled; everything else runs
        in ``finally``, so streams end and the client closes whatever happens.
        """
        if self._state is SessionState.OPENING or self._state is SessionState.OPEN:
            self._move(SessionState.CLOSING)
        opener = self._opener
        if opener is not None and opener is not asyncio.current_task():
            opener.cancel()  # aclose() during open(): stop the sign-in where it is
        async with self._close_lock:
            if self._state is SessionState.CLOSED:
                await self._close_client()  # a previous close may have been cut short there
                return
            # Cancellations of this task so far (open() cancelled by its caller): the
            # clean-up, DELETE included, still runs; a new one skips the DELETE.
            current = asyncio.current_task()
            already = current.cancelling() if current is not None else 0
            try:
                if opener is not None and opener is not current:
                    await asyncio.gather(opener, return_exceptions=True)
                if self._ops is not None:
                    # Bounded by close_timeout, skipped (as the DELETE) if we are cancelled.
                    await self._ops.finish_cancels(self._close_timeout)
                await self._stop_local(already)
                if self._app is not None:
                    # A create POST given up on its way (open() cancelled, connect_timeout,
                    # a re-creation the close stopped): its application is DELETEd too.
                    await self._app.finish_creation(self._close_timeout)
                if self._app is not None and self._app.url is not None:
                    # Best effort, bounded by close_timeout: errors are logged, not raised.
                    await self._transport.delete(self._app.url, self._close_timeout)
            finally:
                try:
                    await self._stop_local(already)
                    if self._app is not None:
                        await self._app.finish_creation(0)  # (cut short: cancelled)
                finally:
                    for stream in tuple(self._streams):
                        stream._end(ChannelClosed())
                    self._streams.clear()
                    self._move(SessionState.CLOSED)
                    log.info("session closed")
                    await self._close_client()

    async def _stop_local(self, already_cancelling: int) -> None:
        """Stop the channel and every task of ours and end pending invitations.

        Idempotent, and it finishes even when the closing task is being cancelled; a
        cancellation newer than ``already_cancelling`` is re-raised at the end.
        """
        interrupted: asyncio.CancelledError | None = None
        if self._channel is not None:
            try:
                await self._channel.stop()
            except asyncio.CancelledError as exc:
                # stop() re-raises any cancellation pending on this task once the channel
                # task is gone; a second call only marks it closed and releases waiters.
                current = asyncio.current_task()
                if current is not None and current.cancelling() > already_cancelling:
                    interrupted = exc
                await self._channel.stop()
        if self._host is not None:
            await self._host.stop()
        # A background task may spawn another (a read-back after a POST): a few rounds.
        for _round in range(3):
            tasks: list[asyncio.Task[Any]] = list(self._background)
            if self._keepalive_task is not None:
                tasks.append(self._keepalive_task)
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._keepalive_task = None
        if self._ops is not None:
            self._ops.close_all()
        if self._conversations is not None:
            self._conversations.close()
        if interrupted is not None:
            raise interrupted

    async def _close_client(self) -> None:
        pget_client = self._pget_client
        if pget_client is not None and not pget_client.closed:
            await pget_client.close()  # not the connector: the main client owns it
        client = self._client
        if client is not None and self._borrowed is None and not client.closed:
            await client.close()


_GroupT = TypeVar("_GroupT", Timeouts, Retries, Limits)


def _group(name: str, value: _GroupT | None, kind: type[_GroupT]) -> _GroupT:
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a ucwa_async.{kind.__name__}, got {value!r}")
    return value


def _with_shorthands(group: _GroupT, **fields: tuple[str, Any]) -> _GroupT:
    """``group`` with each shorthand that was given (not None) put in its field.

    The group's own validators run (attrs.evolve); their message names the field, so it
    is rephrased with the shorthand's name the caller wrote.
    """
    changes = {field: value for field, (_, value) in fields.items() if value is not None}
    for field, value in changes.items():
        shorthand = fields[field][0]
        try:
            attrs.evolve(group, **{field: value})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{shorthand}: {exc}") from None
    return attrs.evolve(group, **changes) if changes else group


_REQUEST_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_MODALITIES = frozenset({"Messaging", "PhoneAudio"})


def _check_available_for(value: object) -> tuple[str, ...]:
    """``available_for`` as a tuple of distinct modalities makeMeAvailable accepts."""
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise ValueError(
            "available_for must be a tuple of 'Messaging' and/or 'PhoneAudio' "
            f"(or () for never available), got {value!r}"
        )
    modalities = tuple(value)
    for modality in modalities:
        if modality not in _MODALITIES:
            raise ValueError(
                f"available_for: {modality!r} is not 'Messaging' or 'PhoneAudio' "
                "(the only modalities UCWA's makeMeAvailable accepts)"
            )
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"available_for lists a modality twice: {value!r}")
    return modalities


def _operation_id(value: str | None) -> str:
    """The caller's operationId, validated, or a fresh one."""
    return new_operation_id() if value is None else check_operation_id(value)


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} must be non-empty, without control characters: {value!r}")


def _require_positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
