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
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiohttp
import attrs

from ucwa_async._auth import Auth, PasswordAuth, TokenAuth
from ucwa_async._channel import ChannelRunner
from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.correlate import Correlator, Failed, NeedsLookup, Progress, Succeeded
from ucwa_async._core.errors import (
    AlreadyExistsError,
    ApplicationNotFoundError,
    CallbackChannelError,
    ChannelFailedError,
    InvitationFailedError,
    InvitationLostError,
    InvitationTimeoutError,
    NotFoundError,
    ProxyResponseError,
    RequestTimeoutError,
    SessionClosedError,
    UcwaError,
)
from ucwa_async._core.models import (
    ConversationLog,
    EventBatch,
    MessagingInvitation,
    PhoneAudioInvitation,
    Resource,
    parse_resource,
)
from ucwa_async._core.urls import (
    app_base_path_of,
    normalize,
    origin_of,
    resolve_href,
    with_query,
)
from ucwa_async._events import (
    ApplicationRecreated,
    ChannelClosed,
    ChannelFailed,
    ChannelSignal,
    ChannelStatus,
)
from ucwa_async._http import HttpClient, HttpResponse
from ucwa_async._invitation import Invitation
from ucwa_async._stream import EventStream
from ucwa_async._transport import Transport

__all__ = ["Session", "SessionStats"]

log = logging.getLogger("ucwa_async.session")

_InvT = TypeVar("_InvT", MessagingInvitation, PhoneAudioInvitation)
_TERMINAL_SUCCESS = frozenset({"connected", "success"})
# Bound of the href -> URL and URL -> correlation-key memos. An invitation's href is
# resolved for its 201 and again for each of its events; the memos make the repeats
# dict look-ups (resolve_href + normalize were ~17% of the client's CPU at 2 000
# invitations/s, see BENCHMARKS.md). Small: only recent hrefs repeat.
_HREF_MEMO_SIZE = 1024
# Lost applications whose hrefs (a ConversationLog the caller still holds) are still moved
# onto the current one. Bounded: a server losing applications must not grow it; the
# re-creation budget allows 60 per 10 minutes, so this spans 10 minutes of the worst.
_OLD_APPS_KEPT = 64


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
        self._applications_url: str | None = None
        self._application: Resource | None = None
        self._app_url: str | None = None
        self._app_base_path: str | None = None
        self._app_generation = 0
        # URLs of applications lost and re-created: hrefs under them (conversation logs a
        # caller still holds) are moved onto the current application. Insertion-ordered,
        # only the last _OLD_APPS_KEPT: a server losing applications must not grow it.
        self._old_app_urls: dict[str, None] = {}
        self._mma_task: asyncio.Task[None] | None = None
        self._lost_invitations = 0  # ended when the application was last lost
        self._origin: str | None = None
        self._channel: ChannelRunner | None = None
        self._resolved: dict[tuple[str, str, str | None], str] = {}
        self._normalized: dict[str, str] = {}
        self._correlator = Correlator(normalize=self._key)
        self._invitations: dict[str, Invitation[Any]] = {}
        # Invitations whose cancel POST is in flight -> a failure that arrived meanwhile
        # (the server may report the termination before it answers the POST).
        self._cancelling: dict[str, Failed | NeedsLookup | None] = {}
        self._resyncs = 0  # resyncs so far: a POST that spans one re-reads its invitation
        self._streams: list[EventStream] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._state = "new"
        self._close_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"<Session {self.discovery_url!r} wire={self.wire_format} state={self._state} "
            f"channel={self.channel_state.value} pending={len(self._invitations)}>"
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
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await self._sign_in()
                    events_url = await self._create_application()
                    self._start_channel(events_url)
                    assert self._channel is not None
                    await self._channel.wait_connected()
                    await self._make_me_available()
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
                self._keepalive(self._keepalive_interval), name="ucwa_async.keepalive"
            )
        log.info("session open: application %s", self._app_url)

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
        return self._app_url

    @property
    def pending_invitations(self) -> int:
        return len(self._invitations)

    # -- public operations -----------------------------------------------------------

    async def conversation_logs(self, limit: int | None = None) -> list[ConversationLog]:
        """List past conversations (most recent first, as the server orders them)."""
        self._ensure_usable()
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError("limit must be a positive int")
        communication = self._communication()
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
        url = self._rebase(self._resolve(href))
        return self._as_log(parse_resource(await self._transport.get_json(url)), url)

    async def continue_messaging(
        self,
        log: ConversationLog | str,
        message: str | None = None,
        *,
        content_type: Literal["text/plain", "text/html"] = "text/plain",
        timeout: float | None = None,
    ) -> Invitation[MessagingInvitation]:
        """Continue a past conversation by instant message.

        Returns as soon as the server accepts the POST (201); await the returned
        ``Invitation`` for how it ended.
        """
        self._ensure_usable()
        if message is not None and not isinstance(message, str):
            raise TypeError("message must be a str or None")
        if content_type not in ("text/plain", "text/html"):
            raise ValueError("content_type must be 'text/plain' or 'text/html'")
        url = await self._continue_url(log, "continueMessaging")
        operation_id = uuid.uuid4().hex
        body: dict[str, Any] = {"operationId": operation_id}
        if message is not None:
            body["_links"] = {"message": {"href": _wire.data_uri(message, content_type)}}
        return await self._start_invitation(
            "messagingInvitation", url, body, operation_id, timeout, MessagingInvitation
        )

    async def continue_phone_audio(
        self,
        log: ConversationLog | str,
        phone_number: str,
        *,
        timeout: float | None = None,
    ) -> Invitation[PhoneAudioInvitation]:
        """Continue a past conversation by phone audio, calling ``phone_number`` (``tel:+1...``)."""
        self._ensure_usable()
        if not isinstance(phone_number, str) or not phone_number.strip():
            raise ValueError("phone_number must be a non-empty str such as 'tel:+14255551234'")
        phone_number = phone_number.strip()
        if not phone_number.lower().startswith("tel:"):
            phone_number = f"tel:{phone_number}"
        url = await self._continue_url(log, "continuePhoneAudio")
        operation_id = uuid.uuid4().hex
        body = {"operationId": operation_id, "phoneNumber": phone_number}
        return await self._start_invitation(
            "phoneAudioInvitation", url, body, operation_id, timeout, PhoneAudioInvitation
        )

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

    # -- invitations -----------------------------------------------------------------

    async def _start_invitation(
        self,
        rel: str,
        url: str,
        body: Mapping[str, Any],
        operation_id: str,
        timeout: float | None,
        model: type[_InvT],
    ) -> Invitation[_InvT]:
        if timeout is not None:
            _require_positive("timeout", timeout)
        loop = asyncio.get_running_loop()
        invitation: Invitation[_InvT] = Invitation(
            operation_id=operation_id, kind=rel, loop=loop, canceller=self._cancel_invitation
        )
        self._invitations[operation_id] = invitation
        self._correlator.expect(operation_id)
        invitation._set_timer(
            loop.call_later(timeout or self.invitation_timeout, self._expire, operation_id)
        )
        resyncs = self._resyncs
        try:
            response, generation = await self._post_continue(url, body)
        except BaseException:
            self._invitations.pop(operation_id, None)
            self._correlator.forget(operation_id)
            invitation._stop_timer()
            raise
        self.stats.invitations_started += 1
        if generation != self._app_generation:
            self._end_lost(operation_id, "the application was re-created while the POST ran")
            return invitation
        # An unsafe or malformed Location is treated as none: operationId still correlates.
        href = self._safe_resolve(response.location)
        if href is not None:
            invitation.href = href
            self._bind(operation_id, href)
            if resyncs != self._resyncs and operation_id in self._invitations:
                # A resync while the POST ran may have discarded this invitation's
                # events, and resynced() could not re-read it yet: do it now.
                self._spawn(self._reread(invitation, href))
        else:
            log.info(
                "continue POST answered %d without a usable Location; correlating by operationId",
                response.status,
            )
        return invitation

    async def _post_continue(self, url: str, body: Mapping[str, Any]) -> tuple[HttpResponse, int]:
        """POST a continue request; returns the response and the application generation
        it went to. ``404 ApplicationNotFound`` (the application was deleted under us):
        wait for the channel to re-create it, then POST again there (the same operationId:
        the refused POST created nothing), up to ``max_callback_retries`` times."""
        recreations = 0
        while True:
            if self._app_url in self._old_app_urls:
                # A re-creation is under way: the current URL is known to be dead.
                await self._wait_application_after(None)
            url = self._rebase(url)
            generation = self._app_generation
            current = self._app_url
            try:
                return await self._post_operation(url, body), generation
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
        assert self._channel is not None
        async with asyncio.timeout(self._connect_timeout):
            while self._app_generation == generation or self._app_url in self._old_app_urls:
                await self._channel.wait_generation_after(self._channel.generation)

    async def _post_operation(self, url: str, body: Mapping[str, Any]) -> HttpResponse:
        """POST a continue request; CallbackChannelError: reconnect the channel, then retry."""
        payload, content_type = _wire.encode_input(body, self.wire_format)
        attempt = 0
        while True:
            assert self._channel is not None
            seen = self._channel.generation
            try:
                return await self._transport.send(
                    "POST", url, data=payload, content_type=content_type
                )
            except CallbackChannelError as exc:
                attempt += 1
                if attempt > self._max_callback_retries:
                    log.warning("CallbackChannelError persists after %d retries", attempt - 1)
                    raise
                self.stats.callback_channel_retries += 1
                log.info("CallbackChannelError on POST; re-establishing the event channel")
                self._channel.request_reconnect(
                    "CallbackChannelError: the remote event channel is not reachable", exc, seen
                )
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        await self._channel.wait_generation_after(seen)
                except TimeoutError:
                    # The channel did not come back in time: the caller gets the typed
                    # error it would have got without the retry, never a bare TimeoutError.
                    raise exc from None

    async def _cancel_invitation(self, invitation: Invitation[Any]) -> None:
        self._ensure_usable()
        cancel_href = invitation._cancel_href
        if cancel_href is None:
            if invitation.href is None:
                raise UcwaError("cannot cancel: the invitation's href is not known yet")
            current = parse_resource(await self._transport.get_json(invitation.href))
            cancel_href = current.link("cancel")
            if cancel_href is None:
                raise UcwaError("the server offers no cancel link for this invitation")
        operation_id = invitation.operation_id
        self._cancelling[operation_id] = None
        try:
            await self._transport.send("POST", self._resolve(cancel_href))
        except BaseException:
            # Not cancelled after all: a failure reported meanwhile is the outcome.
            deferred = self._cancelling.pop(operation_id, None)
            if deferred is not None:
                self._apply(deferred)
            raise
        self._cancelling.pop(operation_id, None)
        if self._invitations.pop(operation_id, None) is not None:
            self.stats.invitations_cancelled += 1
        self._correlator.finish(operation_id)

    def _expire(self, operation_id: str) -> None:
        invitation = self._invitations.pop(operation_id, None)
        if invitation is None:
            return
        self._correlator.finish(operation_id)
        if invitation._fail(
            InvitationTimeoutError(
                f"invitation {operation_id} had no outcome within its timeout",
                href=invitation.href,
                operation_id=operation_id,
            )
        ):
            self.stats.invitations_timed_out += 1

    def _end_lost(self, operation_id: str, why: str) -> None:
        invitation = self._invitations.pop(operation_id, None)
        self._correlator.finish(operation_id)
        if invitation is not None and invitation._fail(
            InvitationLostError(why, href=invitation.href, operation_id=operation_id)
        ):
            self.stats.invitations_lost += 1

    def _apply(self, resolution: Progress | Succeeded | Failed | NeedsLookup) -> None:
        operation_id = resolution.operation_id
        invitation = self._invitations.get(operation_id)
        if invitation is None:
            return
        if isinstance(resolution, Progress):
            resource = resolution.event.resource
            invitation._progress(resolution.state, _cancel_link(resource))
            if invitation.href is None and resolution.event.link.href:
                self._bind_late(invitation, resolution.event.link.href)
            return
        if operation_id in self._cancelling and not isinstance(resolution, Succeeded):
            # Most likely the termination our own cancel caused: the cancel POST decides.
            self._cancelling[operation_id] = resolution
            return
        del self._invitations[operation_id]
        if invitation.href is None and isinstance(resolution, Succeeded | Failed):
            invitation.href = self._safe_resolve(resolution.event.link.href)
        if isinstance(resolution, Succeeded):
            if isinstance(resolution.resource, MessagingInvitation | PhoneAudioInvitation):
                self._succeed(invitation, resolution.resource)
            else:
                self._spawn(self._look_up(invitation, success_known=True))
        elif isinstance(resolution, Failed):
            self._fail_invitation(
                invitation,
                _failure_text(resolution.reason),
                reason=resolution.reason,
                state=_state_of(resolution.event.resource) or "Failed",
            )
        else:
            if invitation.href is None:
                invitation.href = self._safe_resolve(resolution.href)
            self._spawn(self._look_up(invitation, success_known=False))

    def _bind_late(self, invitation: Invitation[Any], href: str) -> None:
        resolved = self._safe_resolve(href)
        if resolved is None:
            return
        invitation.href = resolved
        self._bind(invitation.operation_id, resolved)

    def _bind(self, operation_id: str, href: str) -> None:
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
            self.stats.invitations_connected += 1

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
            self.stats.invitations_failed += 1

    async def _look_up(self, invitation: Invitation[Any], *, success_known: bool) -> None:
        """GET an invitation whose final state the event did not carry."""
        href = invitation.href
        resource: Resource | None = None
        if href is not None:
            try:
                resource = parse_resource(await self._transport.get_json(href))
            except NotFoundError:
                resource = None
            except UcwaError as exc:
                log.info("could not read invitation %s: %s", href, exc)
            except asyncio.CancelledError:
                # The session is closing (it cancels its background tasks): this
                # invitation is no longer in the pending table, so end it here.
                if success_known:
                    self._succeed(invitation, _synthesise(invitation, "Connected"))
                elif invitation._fail(
                    SessionClosedError("the session closed before the invitation ended")
                ):
                    self.stats.invitations_closed += 1
                raise
        state = (_state_of(resource) or "").lower()
        if isinstance(resource, MessagingInvitation | PhoneAudioInvitation) and (
            state in _TERMINAL_SUCCESS or (success_known and state != "failed")
        ):
            self._succeed(invitation, resource)
        elif success_known:
            fallback = _synthesise(invitation, "Connected")
            self._succeed(invitation, fallback)
        elif resource is None:
            if invitation._fail(
                InvitationLostError(
                    "the invitation completed but could not be read back",
                    href=href,
                    operation_id=invitation.operation_id,
                )
            ):
                self.stats.invitations_lost += 1
        else:
            self._fail_invitation(
                invitation,
                f"invitation ended in state {_state_of(resource)!r}",
                state=_state_of(resource),
            )

    # -- the event channel's host side --------------------------------------------------

    def _start_channel(self, events_url: str) -> None:
        self._channel = ChannelRunner(
            self,
            events_url,
            pget_timeout=self._pget_timeout,
            settle=self._reconnect_settle,
            backoff=self._backoff,
            retry_after_cap=self._retry_after_cap,
        )
        self._channel.start()

    async def poll(self, url: str) -> HttpResponse:
        return await self._transport.http.request(
            "GET",
            url,
            headers=self._transport.headers_for(url),
            timeout=self._pget_read_timeout,
            reserved=True,
        )

    def deliver(self, batch: EventBatch) -> None:
        if batch.rejected_count:
            self.stats.events_rejected += batch.rejected_count
            log.warning(
                "skipped %d malformed event(s) in a batch: %s",
                batch.rejected_count,
                "; ".join(batch.rejected[:3]),
            )
        for event in batch.events:
            self.stats.events_received += 1
            for stream in tuple(self._streams):
                stream._push(event)
            if not event.is_operation_event:
                continue
            try:
                resolutions = self._correlator.feed(event)
            except UcwaError as exc:  # e.g. a hostile href: drop the event, keep the channel
                self.stats.events_rejected += 1
                log.warning("event rejected: %s", exc)
                continue
            for resolution in resolutions:
                self._apply(resolution)

    def resynced(self) -> None:
        """Re-read every pending invitation: the events about them may be gone."""
        self._resyncs += 1
        for operation_id, href in list(self._correlator.bound().items()):
            invitation = self._invitations.get(operation_id)
            if invitation is not None:
                self._spawn(self._reread(invitation, href))

    async def _reread(self, invitation: Invitation[Any], href: str) -> None:
        try:
            resource = parse_resource(await self._transport.get_json(href))
        except UcwaError as exc:
            log.info("re-reading %s after resync failed: %s", href, exc)
            return
        state = (_state_of(resource) or "").lower()
        if state in ("connecting", ""):
            invitation._progress(_state_of(resource), _cancel_link(resource))
            return
        if self._invitations.pop(invitation.operation_id, None) is None:
            return
        self._correlator.finish(invitation.operation_id)
        if state in _TERMINAL_SUCCESS:
            self._succeed(invitation, resource)
        else:
            self._fail_invitation(
                invitation,
                f"invitation ended in state {_state_of(resource)!r}",
                state=_state_of(resource),
                href=href,
            )

    def emit(self, signal: ChannelSignal) -> None:
        for stream in tuple(self._streams):
            stream._push(signal)

    async def reauthenticate(self, url: str, error: UcwaError) -> None:
        origin = origin_of(url)
        await self._transport.authenticate(
            origin, url, None, self._transport.token_versions.get(origin, 0)
        )

    def application_lost(self, error: UcwaError) -> None:
        """End what was bound to the lost application now, not after the pause before
        its re-creation; once per loss (the current URL is then among the old ones)."""
        old_url = self._app_url
        if old_url is None or old_url in self._old_app_urls:
            return
        lost = [op for op in self._correlator.bound() if op in self._invitations]
        self._lost_invitations = len(lost)
        self._app_generation += 1
        self._old_app_urls[old_url] = None
        while len(self._old_app_urls) > _OLD_APPS_KEPT:
            del self._old_app_urls[next(iter(self._old_app_urls))]
        for operation_id in lost:
            self._end_lost(operation_id, f"the application was lost ({error}); outcome unknown")

    async def recreate_application(self, error: UcwaError) -> str:
        self.application_lost(error)
        old_url = self._app_url
        if old_url is not None:  # best effort: a misrouted 404 must not leave it behind
            await self._delete_application(old_url)
        events_url = await self._create_application()
        if self._app_url is not None:  # the server may reuse an id: that one is not dead
            self._old_app_urls.pop(self._app_url, None)
        self.emit(
            ApplicationRecreated(
                application_url=self._app_url or "", lost_invitations=self._lost_invitations
            )
        )
        if self._mma_task is not None:  # one makeMeAvailable, for the newest application
            self._mma_task.cancel()
        self._mma_task = self._spawn(self._make_me_available_when_connected())
        return events_url

    def channel_failed(self, error: ChannelFailedError) -> None:
        for operation_id in list(self._invitations):
            invitation = self._invitations.pop(operation_id)
            self._correlator.finish(operation_id)
            invitation._fail(error)
        self.emit(ChannelFailed(error=error))

    # -- sign-in ---------------------------------------------------------------------

    async def _sign_in(self) -> None:
        url = self.discovery_url
        for _hop in range(self._max_redirects + 1):
            root = parse_resource(await self._transport.get_json(url, authorize=False), rel="root")
            user_href = root.link("user")
            redirect = root.link("redirect")
            if user_href is None and redirect is not None:
                url = self._trust(resolve_href(redirect, base_url=url))
                continue
            if user_href is None:
                raise UcwaError("autodiscovery answered without a user link")
            user_url = self._trust(resolve_href(user_href, base_url=url))
            user = parse_resource(await self._transport.get_json(user_url), rel="user")
            applications = user.link("applications")
            if applications is not None:
                self._applications_url = resolve_href(applications, base_url=user_url)
                self._origin = self._trust(origin_of(self._applications_url))
                return
            redirect = user.link("redirect")
            if redirect is None:
                raise UcwaError("the user resource has neither an applications nor a redirect link")
            url = self._trust(resolve_href(redirect, base_url=user_url))
            log.info("autodiscovery redirected to %s", origin_of(url))
        raise UcwaError(f"too many autodiscovery redirects (more than {self._max_redirects})")

    def _trust(self, url: str) -> str:
        return self._transport.trust(url)

    async def _create_application(self) -> str:
        assert self._applications_url is not None
        body = {
            "UserAgent": self._user_agent,
            "EndpointId": str(uuid.uuid4()),
            "Culture": self._culture,
        }
        payload, content_type = _wire.encode_input(body, self.wire_format)
        attempt = 0
        while True:
            try:
                response = await self._transport.send(
                    "POST", self._applications_url, data=payload, content_type=content_type
                )
                break
            except ProxyResponseError as exc:
                # A front proxy's HTML "Access is denied" page: transient, bounded retries.
                if exc.status not in (401, 403) or attempt >= self._app_create_retries:
                    raise
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.info(
                    "proxy refused application creation (%d); retry in %.2f s", exc.status, delay
                )
                await asyncio.sleep(delay)
        application = parse_resource(
            _wire.decode(response.body, response.content_type, max_size=self._max_body),
            rel="application",
        )
        if application.href is None and response.location:
            application = attrs.evolve(application, href=response.location)
        if application.href is None:
            raise UcwaError("the application resource has no self link")
        self._application = application
        self._app_url = resolve_href(application.href, base_url=self._applications_url)
        self._app_base_path = app_base_path_of(self._app_url)
        self.stats.applications_created += 1
        events = application.link("events")
        if events is None:
            raise UcwaError("the application resource has no events link")
        return self._resolve(events)

    async def _make_me_available(self) -> None:
        communication = self._communication()
        href = communication.link("makeMeAvailable")
        if href is None:
            log.info("no makeMeAvailable link; skipping (already available?)")
            return
        body = {
            "supportedModalities": ["Messaging", "PhoneAudio"],
            "supportedMessageFormats": ["Plain"],
        }
        try:
            await self._post_operation(self._resolve(href), body)
        except AlreadyExistsError:
            log.debug("makeMeAvailable: already available")

    async def _make_me_available_when_connected(self) -> None:
        assert self._channel is not None
        try:
            await self._channel.wait_connected()  # raises if the channel fails meanwhile
            await self._make_me_available()
        except UcwaError as exc:
            log.warning("makeMeAvailable after re-creating the application failed: %s", exc)

    def _communication(self) -> Resource:
        assert self._application is not None
        communication = self._application.embedded_one("communication")
        if communication is None:
            raise UcwaError("the application has no embedded communication resource")
        return communication

    # -- helpers -----------------------------------------------------------------------

    @property
    def _transport(self) -> Transport:
        if self._client_transport is None:
            raise SessionClosedError("the session is not open: use 'async with Session(...)'")
        return self._client_transport

    def _count_reauthentication(self) -> None:
        self.stats.reauthentications += 1

    def _resolve(self, href: str) -> str:
        base_url = self._app_url or self._origin or self.discovery_url
        memo_key = (href, base_url, self._app_base_path)
        url = self._resolved.get(memo_key)
        if url is None:  # errors are raised, never memoised
            url = resolve_href(href, base_url=base_url, app_base_path=self._app_base_path)
            _memo(self._resolved, memo_key, url)
        return url

    def _safe_resolve(self, href: str | None) -> str | None:
        if not href:
            return None
        try:
            return self._resolve(href)
        except (UcwaError, ValueError):
            return None

    def _key(self, href: str) -> str:
        url = self._resolve(href)
        key = self._normalized.get(url)
        if key is None:
            key = normalize(url)
            _memo(self._normalized, url, key)
        return key

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
        return self._rebase(self._resolve(href))

    def _rebase(self, url: str) -> str:
        """A URL under a lost (re-created) application, moved onto the current one."""
        current = self._app_url
        if current is None:
            return url
        for old in self._old_app_urls:
            if url.startswith(old + "/") and old != current:
                return current + url[len(old) :]
        return url

    def _as_log(self, resource: Resource, url: str) -> ConversationLog:
        if isinstance(resource, ConversationLog):
            return resource
        raise UcwaError(f"{url} is not a conversationLog (rel {resource.rel!r})")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

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

    async def _keepalive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            me = self._application.embedded_one("me") if self._application else None
            href = me.link("reportMyActivity") if me is not None else None
            if href is None:
                log.debug("no reportMyActivity link; keep-alive idle")
                continue
            try:
                await self._transport.send("POST", self._resolve(href))
            except UcwaError as exc:
                log.warning("reportMyActivity failed: %s", exc)

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
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
                closed = SessionClosedError("the session closed before the invitation ended")
                for operation_id in list(self._invitations):
                    invitation = self._invitations.pop(operation_id)
                    if invitation._fail(closed):
                        self.stats.invitations_closed += 1
                self._correlator.clear()
                if (
                    delete_application
                    and self._app_url is not None
                    and self._client_transport is not None
                ):
                    await self._delete_application()
                for stream in tuple(self._streams):
                    stream._end(ChannelClosed())
                self._streams.clear()
            finally:
                if self._client is not None and self._borrowed is None:
                    await self._client.close()
            log.info("session closed")
            if interrupted is not None:
                raise interrupted

    async def _delete_application(self, url: str | None = None) -> None:
        url = url or self._app_url
        assert url is not None
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._transport.http.request(
                    "DELETE",
                    url,
                    headers=self._transport.headers_for(url),
                    timeout=self._close_timeout,
                )
        except (UcwaError, TimeoutError) as exc:
            log.info("could not delete the application on close: %s", exc)


def _memo(memo: dict[Any, str], key: Any, value: str) -> None:
    """Remember ``key -> value``, dropping the oldest entry beyond ``_HREF_MEMO_SIZE``."""
    if len(memo) >= _HREF_MEMO_SIZE:
        del memo[next(iter(memo))]
    memo[key] = value


def _require_positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _cancel_link(resource: Resource | None) -> str | None:
    return resource.link("cancel") if resource is not None else None


def _state_of(resource: Resource | None) -> str | None:
    state = getattr(resource, "state", None)
    return state if isinstance(state, str) else None


def _failure_text(reason: Any) -> str:
    if reason is None:
        return "invitation failed (the server gave no reason)"
    parts = [p for p in (getattr(reason, "code", None), getattr(reason, "subcode", None)) if p]
    text = "/".join(parts) or "failure"
    message = getattr(reason, "message", None)
    return f"invitation failed: {text}" + (f": {message}" if message else "")


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
