"""The operations table: every invitation from its POST to its one outcome.

One job: start an operation (operationId registered with the ``Correlator`` *before*
the POST: events can beat the 201), bind its Location, apply what the event channel
says about it, expire, cancel and re-read it — so each ``Invitation`` ends exactly once.
The session owns one table; the channel host feeds it batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ucwa_async._application import Application
from ucwa_async._core import wire as _wire
from ucwa_async._core.correlate import Correlator, Failed, NeedsLookup, Progress, Succeeded
from ucwa_async._core.errors import (
    ApplicationNotFoundError,
    CallbackChannelError,
    ChannelFailedError,
    InvitationFailedError,
    InvitationLostError,
    InvitationTimeoutError,
    NotFoundError,
    SessionClosedError,
    UcwaError,
)
from ucwa_async._core.models import (
    EventBatch,
    MessagingInvitation,
    PhoneAudioInvitation,
    Resource,
    parse_resource,
)
from ucwa_async._http import HttpResponse
from ucwa_async._invitation import Invitation
from ucwa_async._transport import Transport

if TYPE_CHECKING:
    from ucwa_async._channel import ChannelRunner
    from ucwa_async._session import SessionStats

__all__ = ["OperationTable"]

log = logging.getLogger("ucwa_async.session")

_InvT = TypeVar("_InvT", MessagingInvitation, PhoneAudioInvitation)
_TERMINAL_SUCCESS = frozenset({"connected", "success"})


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
        # Invitations whose cancel POST is in flight -> a failure that arrived meanwhile
        # (the server may report the termination before it answers the POST).
        self._cancelling: dict[str, Failed | NeedsLookup | None] = {}
        self._resyncs = 0  # resyncs so far: a POST that spans one re-reads its invitation

    def __len__(self) -> int:
        return len(self._invitations)

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
        loop = asyncio.get_running_loop()
        invitation: Invitation[_InvT] = Invitation(
            operation_id=operation_id, kind=rel, loop=loop, canceller=self.cancel
        )
        self._invitations[operation_id] = invitation
        self._correlator.expect(operation_id)
        invitation._set_timer(
            loop.call_later(timeout or self._invitation_timeout, self._expire, operation_id)
        )
        resyncs = self._resyncs
        try:
            response, generation = await self._post_continue(url, body)
        except BaseException:
            self._invitations.pop(operation_id, None)
            self._correlator.forget(operation_id)
            invitation._stop_timer()
            raise
        self._stats.invitations_started += 1
        if generation != self._app.generation:
            self.end_lost(operation_id, "the application was re-created while the POST ran")
            return invitation
        # An unsafe or malformed Location is treated as none: operationId still correlates.
        href = self._app.safe_resolve(response.location)
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
                    "CallbackChannelError: the remote event channel is not reachable", exc, seen
                )
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        await channel.wait_generation_after(seen)
                except TimeoutError:
                    # The channel did not come back in time: the caller gets the typed
                    # error it would have got without the retry, never a bare TimeoutError.
                    raise exc from None

    # -- cancel, expire, lose ----------------------------------------------------------

    async def cancel(self, invitation: Invitation[Any]) -> None:
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
            await self._transport.send("POST", self._app.resolve(cancel_href))
        except BaseException:
            # Not cancelled after all: a failure reported meanwhile is the outcome.
            deferred = self._cancelling.pop(operation_id, None)
            if deferred is not None:
                self._apply(deferred)
            raise
        self._cancelling.pop(operation_id, None)
        if self._invitations.pop(operation_id, None) is not None:
            self._stats.invitations_cancelled += 1
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
        """The channel failed for good: every pending invitation learns why."""
        for operation_id in list(self._invitations):
            invitation = self._invitations.pop(operation_id)
            self._correlator.finish(operation_id)
            invitation._fail(error)

    def close_all(self) -> None:
        """The session closed: every pending invitation ends with SessionClosedError."""
        closed = SessionClosedError("the session closed before the invitation ended")
        for operation_id in list(self._invitations):
            invitation = self._invitations.pop(operation_id)
            if invitation._fail(closed):
                self._stats.invitations_closed += 1
        self._correlator.clear()

    # -- what the channel says ---------------------------------------------------------

    def deliver(self, batch: EventBatch) -> None:
        """Feed the operation events of a batch to the correlator, in order."""
        for event in batch.events:
            if not event.is_operation_event:
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
        """Re-read every pending invitation: the events about them may be gone."""
        self._resyncs += 1
        for operation_id, href in list(self._correlator.bound().items()):
            invitation = self._invitations.get(operation_id)
            if invitation is not None:
                self._spawn(self._reread(invitation, href))

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
            invitation.href = self._app.safe_resolve(resolution.event.link.href)
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
                invitation.href = self._app.safe_resolve(resolution.href)
            self._spawn(self._look_up(invitation, success_known=False))

    def _bind_late(self, invitation: Invitation[Any], href: str) -> None:
        resolved = self._app.safe_resolve(href)
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
                    self._stats.invitations_closed += 1
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
                self._stats.invitations_lost += 1
        else:
            self._fail_invitation(
                invitation,
                f"invitation ended in state {_state_of(resource)!r}",
                state=_state_of(resource),
            )

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
