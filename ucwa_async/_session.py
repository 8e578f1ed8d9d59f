"""``Session``: the asyncio UCWA client.

A session owns (or borrows) one ``aiohttp.ClientSession``, signs in, creates
one UCWA application, runs exactly one event-channel task (``ChannelRunner``),
and turns every continueMessaging / continuePhoneAudio POST into an awaitable
``Invitation`` that the channel resolves.

Correlation is race-proof: a fresh ``operationId`` is registered with the
``Correlator`` *before* the POST is sent (events can beat the 201), and the
201's Location becomes the second key once it arrives.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
import uuid
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Literal

import aiohttp
import attrs

from ucwa_async._application import Application
from ucwa_async._auth import Auth, PasswordAuth, TokenAuth
from ucwa_async._channel import ChannelRunner
from ucwa_async._channel_host import SessionChannelHost
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.correlate import check_operation_id
from ucwa_async._core.errors import (
    RequestTimeoutError,
    SessionClosedError,
    UcwaError,
)
from ucwa_async._core.models import (
    ConversationLog,
    MessagingInvitation,
    PhoneAudioInvitation,
    Resource,
    parse_resource,
)
from ucwa_async._core.urls import normalize, origin_of, with_query
from ucwa_async._events import ChannelClosed, ChannelStatus
from ucwa_async._http import HttpClient
from ucwa_async._invitation import Invitation
from ucwa_async._operations import OperationTable
from ucwa_async._stream import EventStream
from ucwa_async._transport import Transport

__all__ = ["Session", "SessionStats"]

log = logging.getLogger("ucwa_async.session")


@attrs.define
class SessionStats:
    """Counters a bot can log or export; all start at zero."""

    invitations_started: int = 0
    invitations_connected: int = 0
    invitations_failed: int = 0
    invitations_timed_out: int = 0
    invitations_lost: int = 0
    invitations_cancelled: int = 0
    invitations_closed: int = 0
    invitations_abandoned: int = 0
    """Accepted by the server after their caller gave up; cancelled on the server."""
    events_received: int = 0
    events_rejected: int = 0
    callback_channel_retries: int = 0
    applications_created: int = 0
    reauthentications: int = 0


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
    - ``http_session``: a borrowed ``aiohttp.ClientSession`` (never closed by us).
    - ``request_timeout``: per-request timeout of ordinary (non-P-GET) requests.
    - ``pget_timeout``: the ``timeout`` query of the event channel, clamped to
      180..1800 s by UCWA; the HTTP read timeout of a P-GET is 30 s above it.
    - ``keepalive_interval``: seconds between ``reportMyActivity`` POSTs (None: off).
    - ``max_callback_retries``: how often a POST answered ``CallbackChannelError``
      is retried after re-establishing the channel before the error reaches you.
    - ``event_queue_size``: bound of each ``events()`` subscriber's queue.
    - ``retry_after_cap``: the longest ``Retry-After`` we honour, in seconds.
    - ``max_body_size``: responses larger than this are refused.
    """

    def __init__(
        self,
        discovery_url: str,
        *,
        auth: Auth,
        wire_format: Literal["json", "xml"] = "json",
        invitation_timeout: float = 60.0,
        http_session: aiohttp.ClientSession | None = None,
        user_agent: str = "ucwa_async/0.1",
        culture: str = "en-US",
        request_timeout: float = 30.0,
        pget_timeout: float = 180.0,
        keepalive_interval: float | None = 180.0,
        max_callback_retries: int = 3,
        max_redirects: int = 4,
        event_queue_size: int = 1000,
        retry_after_cap: float = 60.0,
        max_body_size: int = _wire.DEFAULT_MAX_BODY,
        connect_timeout: float = 30.0,
        close_timeout: float = 5.0,
        reconnect_settle: float = 0.1,
        app_create_retries: int = 4,
        backoff: Backoff | None = None,
    ) -> None:
        try:
            parsed = urllib.parse.urlsplit(discovery_url)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a URL: {discovery_url!r}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"discovery_url must be an http(s) URL, got {discovery_url!r}")
        if parsed.username or parsed.password:
            raise ValueError("discovery_url must not carry credentials")
        if not isinstance(auth, PasswordAuth | TokenAuth):
            raise TypeError("auth must be a PasswordAuth or a TokenAuth")
        if wire_format not in ("json", "xml"):
            raise ValueError(f"wire_format must be 'json' or 'xml', got {wire_format!r}")
        _require_positive("invitation_timeout", invitation_timeout)
        _require_positive("request_timeout", request_timeout)
        _require_positive("connect_timeout", connect_timeout)
        _require_positive("pget_timeout", pget_timeout)
        _require_positive("close_timeout", close_timeout)
        if keepalive_interval is not None:
            _require_positive("keepalive_interval", keepalive_interval)
        if max_callback_retries < 0 or max_redirects < 0 or app_create_retries < 0:
            raise ValueError("retry counts must not be negative")
        if event_queue_size < 1:
            raise ValueError(f"event_queue_size must be at least 1, got {event_queue_size!r}")

        self.discovery_url = discovery_url
        self.wire_format: Literal["json", "xml"] = wire_format
        self.invitation_timeout = invitation_timeout
        self.stats = SessionStats()
        self._auth = auth
        self._borrowed = http_session
        self._user_agent = user_agent
        self._culture = culture
        self._request_timeout = request_timeout
        self._pget_timeout = min(max(pget_timeout, 180.0), 1800.0)
        self._pget_read_timeout = self._pget_timeout + 30.0
        self._keepalive_interval = keepalive_interval
        self._max_callback_retries = max_callback_retries
        self._max_redirects = max_redirects
        self._event_queue_size = event_queue_size
        self._retry_after_cap = retry_after_cap
        self._max_body = max_body_size
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._reconnect_settle = reconnect_settle
        self._app_create_retries = app_create_retries
        self._backoff = backoff or Backoff()
        self._accept = _wire.media_type(wire_format)

        self._client: aiohttp.ClientSession | None = None
        self._client_transport: Transport | None = None
        # The parts a session is made of, built by open(): the application's life, the
        # operations table, the event channel and its host-side adapter.
        self._app: Application | None = None
        self._ops: OperationTable | None = None
        self._channel: ChannelRunner | None = None
        self._host: SessionChannelHost | None = None
        self._streams: list[EventStream] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._state = "new"
        self._close_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"<Session {self.discovery_url!r} wire={self.wire_format} state={self._state} "
            f"channel={self.channel_state.value} pending={self.pending_invitations}>"
        )

    # -- lifecycle -----------------------------------------------------------------

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
        """Sign in, create the application, start the event channel, make me available."""
        if self._state != "new":
            raise SessionClosedError(f"session cannot be opened again (state {self._state})")
        self._state = "opening"
        try:
            if self._borrowed is not None:
                self._client = self._borrowed
            else:
                self._client = aiohttp.ClientSession()
            self._client_transport = Transport(
                HttpClient(self._client, max_body=self._max_body),
                auth=self._auth,
                trusted_origins={origin_of(self.discovery_url)},
                accept=self._accept,
                user_agent=self._user_agent,
                request_timeout=self._request_timeout,
                max_body=self._max_body,
                backoff=self._backoff,
                retry_after_cap=self._retry_after_cap,
                is_closed=lambda: self._state == "closed",
                on_reauthenticated=self._count_reauthentication,
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
            self._host = SessionChannelHost(
                transport=self._client_transport,
                application=app,
                operations=ops,
                channel=self._running_channel,
                stats=self.stats,
                publish=self._publish,
                pget_read_timeout=self._pget_read_timeout,
            )
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
        except BaseException:
            await self._shutdown(delete_application=True)
            raise
        self._state = "open"
        if self._keepalive_interval is not None:
            self._keepalive_task = asyncio.create_task(
                app.keepalive(self._keepalive_interval), name="ucwa_async.keepalive"
            )
        log.info("session open: application %s", self.application_url)

    async def aclose(self) -> None:
        """Stop the channel, end pending invitations, delete the application, close HTTP.

        Idempotent; safe to call from several tasks.
        """
        await self._shutdown(delete_application=True)

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    @property
    def channel_state(self) -> ChannelStatus:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        if self._state == "closed":
            return ChannelStatus.CLOSED
        if self._channel is None:
            return ChannelStatus.CONNECTING
        return self._channel.status

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the event channel is connected (raises if it failed or closed)."""
        self._ensure_usable()
        assert self._channel is not None
        async with asyncio.timeout(timeout):
            await self._channel.wait_connected()

    @property
    def application_url(self) -> str | None:
        return self._app.url if self._app is not None else None

    @property
    def pending_invitations(self) -> int:
        return len(self._ops) if self._ops is not None else 0

    # -- public operations -----------------------------------------------------------

    async def conversation_logs(self, limit: int | None = None) -> list[ConversationLog]:
        """List past conversations (most recent first, as the server orders them)."""
        self._ensure_usable()
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError("limit must be a positive int")
        communication = self._application.communication()
        href = communication.link("conversationLogs")
        if href is None:
            raise UcwaError("the application has no conversationLogs link")
        url = self._resolve(href)
        if limit is not None:
            url = with_query(url, limit=str(limit))
        listing = parse_resource(await self._transport.get_json(url), rel="conversationLogs")
        hrefs = [self._resolve(h) for h in listing.links_for("conversationLog")]
        embedded = {
            normalize(self._resolve(r.href)): r
            for r in listing.embedded_all("conversationLog")
            if isinstance(r, ConversationLog) and r.href
        }
        if limit is not None:
            hrefs = hrefs[:limit]
        semaphore = asyncio.Semaphore(8)

        async def fetch(log_url: str) -> ConversationLog:
            known = embedded.get(normalize(log_url))
            if known is not None and known.link("continueMessaging"):
                return known
            async with semaphore:
                return self._as_log(
                    parse_resource(await self._transport.get_json(log_url)), log_url
                )

        # Not a TaskGroup: it would raise an ExceptionGroup (not a UcwaError), and on
        # Python 3.11 a failing child leaves the caller's task marked as cancelling.
        tasks = [asyncio.create_task(fetch(u)) for u in hrefs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def conversation_log(self, href: str) -> ConversationLog:
        """Read one conversationLog by its href."""
        self._ensure_usable()
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
        """
        self._ensure_usable()
        if message is not None and not isinstance(message, str):
            raise TypeError("message must be a str or None")
        if content_type not in ("text/plain", "text/html"):
            raise ValueError("content_type must be 'text/plain' or 'text/html'")
        operation_id = _operation_id(operation_id)
        url = await self._continue_url(log, "continueMessaging")
        body: dict[str, Any] = {"operationId": operation_id}
        if message is not None:
            body["_links"] = {"message": {"href": _wire.data_uri(message, content_type)}}
        if timeout is not None:
            _require_positive("timeout", timeout)
        return await self._operations.start(
            "messagingInvitation", url, body, operation_id, timeout, MessagingInvitation
        )

    async def continue_phone_audio(
        self,
        log: ConversationLog | str,
        phone_number: str,
        *,
        timeout: float | None = None,
        operation_id: str | None = None,
    ) -> Invitation[PhoneAudioInvitation]:
        """Continue a past conversation by phone audio, calling ``phone_number`` (``tel:+1...``).

        ``timeout`` and ``operation_id``: as for ``continue_messaging``.
        """
        self._ensure_usable()
        if not isinstance(phone_number, str) or not phone_number.strip():
            raise ValueError("phone_number must be a non-empty str such as 'tel:+14255551234'")
        phone_number = phone_number.strip()
        if not phone_number.lower().startswith("tel:"):
            phone_number = f"tel:{phone_number}"
        operation_id = _operation_id(operation_id)
        url = await self._continue_url(log, "continuePhoneAudio")
        body = {"operationId": operation_id, "phoneNumber": phone_number}
        if timeout is not None:
            _require_positive("timeout", timeout)
        return await self._operations.start(
            "phoneAudioInvitation", url, body, operation_id, timeout, PhoneAudioInvitation
        )

    async def invitation(self, href: str, *, timeout: float | None = None) -> Invitation[Any]:
        """Re-attach to an invitation by its href (``Invitation.href``).

        Returns the tracked handle if there is one; else GETs the invitation: a final
        state gives a handle already resolved (Connected: its resource; otherwise
        ``InvitationFailedError``), a pending one is tracked like a fresh invitation,
        ``timeout`` (default ``invitation_timeout``) counting from now.
        """
        self._ensure_usable()
        if not isinstance(href, str) or not href.strip():
            raise ValueError("href must be a non-empty str")
        if timeout is not None:
            _require_positive("timeout", timeout)
        return await self._operations.attach(href, timeout)

    def events(self, maxsize: int | None = None) -> EventStream:
        """Subscribe to the event channel: UCWA events and channel signals, in order.

        Use as ``async with session.events() as events: async for event in events``.
        A full queue drops its oldest item (see ``EventStream.dropped``); the
        channel never waits for a subscriber.
        """
        self._ensure_usable()
        stream = EventStream(maxsize=maxsize or self._event_queue_size, on_close=self._unsubscribe)
        self._streams.append(stream)
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
        )
        self._channel.start()

    # -- helpers -----------------------------------------------------------------------

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
            raise UcwaError(f"this conversationLog offers no {rel} link")
        return self._application.rebase(self._resolve(href))

    def _as_log(self, resource: Resource, url: str) -> ConversationLog:
        if isinstance(resource, ConversationLog):
            return resource
        raise UcwaError(f"{url} is not a conversationLog (rel {resource.rel!r})")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _publish(self, item: object) -> None:
        """Hand an event or a channel signal to every ``events()`` subscriber."""
        for stream in tuple(self._streams):
            stream._push(item)

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def _ensure_usable(self) -> None:
        if self._state == "closed":
            raise SessionClosedError("the session is closed")
        if self._state != "open" and self._state != "opening":
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        if self._channel is not None and self._channel.error is not None:
            raise self._channel.error

    async def _shutdown(self, *, delete_application: bool) -> None:
        async with self._close_lock:
            if self._state == "closed":
                return
            self._state = "closed"
            tasks: list[asyncio.Task[Any]] = list(self._background)
            if self._keepalive_task is not None:
                tasks.append(self._keepalive_task)
            for task in tasks:
                task.cancel()
            interrupted: asyncio.CancelledError | None = None
            try:
                if self._channel is not None:
                    try:
                        await self._channel.stop()
                    except asyncio.CancelledError as exc:
                        # stop() re-raises a cancellation pending on this task (open()
                        # cancelled mid-sign-in, or aclose() cancelled): finish the
                        # clean-up first, then re-raise.
                        interrupted = exc
                if self._host is not None:
                    await self._host.stop()
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
                if self._ops is not None:
                    self._ops.close_all()
                if (
                    delete_application
                    and self._app is not None
                    and self._app.url is not None
                    and self._client_transport is not None
                ):
                    await self._app.delete(self._close_timeout)
                for stream in tuple(self._streams):
                    stream._end(ChannelClosed())
                self._streams.clear()
            finally:
                if self._client is not None and self._borrowed is None:
                    await self._client.close()
            log.info("session closed")
            if interrupted is not None:
                raise interrupted


def _operation_id(value: str | None) -> str:
    """The caller's operationId, validated, or a fresh one."""
    return uuid.uuid4().hex if value is None else check_operation_id(value)


def _require_positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
