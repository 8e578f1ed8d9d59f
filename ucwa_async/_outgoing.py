"""Sent messages: ``OutgoingMessage`` and the table that resolves each one exactly once.

A sent message is an operation like an invitation (sendMessage_ref.md, SendAnIM.md):
an ``operationId`` registered with a ``Correlator`` *before* the POST (query parameter:
the body is the text itself), the 201's Location bound as its second key (SendAnIM's
``completed`` message event carries no operationId, only the href), and the outcome
from the event channel (event-level ``status``: Success, or Failure with a reason; a
``completed`` with no status says it by the message's own ``status``, embedded or read).
Events that beat the 201 wait in the correlator's orphan buffer. A CallbackChannelError
reconnects the channel and retries with the same operationId (``post_payload``, bounded
like continue_*). No outcome within the timeout: ``MessageTimeoutError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from ucwa_async import _outcome
from ucwa_async._answers import answered_self, failure_text
from ucwa_async._application import Application
from ucwa_async._core.correlate import (
    Correlator,
    Failed,
    NeedsLookup,
    Progress,
    Succeeded,
    new_operation_id,
)
from ucwa_async._core.errors import (
    MessageError,
    MessageFailedError,
    MessageTimeoutError,
    SessionClosedError,
    TransportError,
    UcwaError,
)
from ucwa_async._core.models import Event, Resource
from ucwa_async._core.urls import with_query
from ucwa_async._http import HttpResponse
from ucwa_async._outcome import OutcomeFuture

if TYPE_CHECKING:
    from ucwa_async._session import SessionStats

__all__ = ["OutgoingMessage", "SentMessages"]

log = logging.getLogger("ucwa_async.session")
# The resource a POST may answer in its body (see answered_self).
_MESSAGE_RELS = frozenset({"message"})

_MAX_UNCLAIMED = 1024

PostPayload = Callable[[str, bytes | None, str | None], Awaitable[HttpResponse]]
ReadResource = Callable[[str], Awaitable[Resource | None]]


class OutgoingMessage(OutcomeFuture[None]):
    """A message this session sent, after the server accepted it (201): an
    ``asyncio.Future`` resolved once by the session, as ``Invitation`` is.

    ``await message`` (same as ``await message.wait()``) returns once it is delivered, or
    raises ``MessageFailedError`` (``.reason`` is the server's), ``MessageTimeoutError``,
    ``ConversationEndedError`` or ``SessionClosedError``. Awaiting is shielded: cancelling
    the awaiting task leaves the outcome for a later ``await``. ``asyncio.wait``,
    ``as_completed`` and ``gather`` take it as it is; ``result()``, ``exception()`` and the
    done callbacks are the ``Future`` ones. A sent message cannot be taken back:
    ``cancel()`` returns False and changes nothing.
    """

    __slots__ = ("_timer", "conversation_href", "href", "html", "operation_id", "text")

    def __init__(
        self,
        *,
        operation_id: str,
        text: str,
        html: bool,
        conversation_href: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(loop=loop)
        self.operation_id = operation_id
        self.text = text
        self.html = html
        self.conversation_href = conversation_href
        self.href: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"<OutgoingMessage operation_id={self.operation_id!r} href={self.href!r} "
            f"done={self.done()}>"
        )

    @property
    def delivered(self) -> bool:
        """True once the server said the message was delivered."""
        return self.done() and not self.cancelled() and self.exception() is None

    def _wait_timed_out(self, timeout: float) -> BaseException:
        return MessageTimeoutError(
            f"no delivery outcome for message {self.operation_id} within this wait's"
            f" {timeout:g} s; it is still pending (wait again)",
            href=self.href,
            operation_id=self.operation_id,
        )

    def cancel(self, msg: Any | None = None) -> bool:
        """A sent message cannot be taken back (UCWA has no such request): False."""
        return False

    # -- used by the session only -------------------------------------------------

    def _settle(self, error: BaseException | None) -> bool:
        if self.done():
            return False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if error is None:
            self._resolve(None)
        else:
            self._reject(error)
        return True


class SentMessages:
    """Messages sent and not yet resolved, and their correlation."""

    def __init__(
        self,
        *,
        application: Application,
        post_payload: PostPayload,
        stats: SessionStats,
        read: ReadResource | None = None,
        spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None,
    ) -> None:
        self._app = application
        self._post = post_payload
        self._stats = stats
        self._read = read  # GET a message (None if it cannot be read)
        self._spawn = spawn
        self._correlator = Correlator(normalize=application.key)
        self._pending: dict[str, OutgoingMessage] = {}
        # Pending operation ids by conversation: a conversation that ends settles its
        # own messages without a scan of every pending one (200 conversations leaving
        # with 2 000 messages pending: 400 000 comparisons).
        self._by_conversation: dict[str, dict[str, None]] = {}
        # sendMessage POSTs without their 201 yet (or waiting for the channel's word on
        # a lost one): the time (time.monotonic) before each was made, oldest first.
        self._since: dict[str, float] = {}
        # POSTs that got no answer, waiting for the channel to name their operationId;
        # the hrefs of the last started messages nobody claimed while a POST awaited its
        # answer (the reference's message events embed nothing: a GET tells whose).
        self._unanswered: dict[str, asyncio.Future[None]] = {}
        # (As many as the correlator's orphans: a connection drop loses the answers of
        # every POST under way at once, and a send finds its own message among them.)
        # By key: (href, when it came), oldest first; bound by a 201 or read, it leaves.
        self._unclaimed: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self._looking: set[str] = set()  # unclaimed messages being read
        self._closed = False

    def __len__(self) -> int:
        return len(self._pending)

    async def send(
        self,
        url: str,
        text: str,
        *,
        html: bool,
        conversation_href: str,
        timeout: float,
    ) -> OutgoingMessage:
        """POST the message to a sendMessage link; returns after the 201."""
        if self._closed:
            raise SessionClosedError("the session is closed")
        operation_id = new_operation_id()
        loop = asyncio.get_running_loop()
        message = OutgoingMessage(
            operation_id=operation_id,
            text=text,
            html=html,
            conversation_href=conversation_href,
            loop=loop,
        )
        self._correlator.expect(operation_id)
        self._add(message)
        content_type = ("text/html" if html else "text/plain") + "; charset=utf-8"
        self._since[operation_id] = time.monotonic()
        try:
            response: HttpResponse | None = await self._post(
                with_query(url, operationId=operation_id), text.encode("utf-8"), content_type
            )
        except TransportError as exc:
            # No answer: the server may have taken the message all the same (sending it
            # again would say it twice). Its events name its operationId if it did.
            taken = False
            try:
                if exc.request_sent is not False:
                    taken = await self._answer_from_channel(message)
            finally:  # (cancelled while waiting, too: nothing of it stays pending)
                if not taken:
                    self._remove(operation_id)
                    self._correlator.forget(operation_id)
            if not taken:
                raise
            response = None
        except BaseException:
            self._remove(operation_id)
            self._correlator.forget(operation_id)
            raise
        finally:
            del self._since[operation_id]
        self._stats.messages_sent += 1
        if self._pending.get(operation_id) is message:
            message._timer = loop.call_later(timeout, self._expire, operation_id)
        if response is None:
            log.info("sendMessage %s got no answer, but the server took it", operation_id)
            return message
        href = self._app.safe_resolve(response.location)
        if href is None:
            href = self._app.safe_resolve(answered_self(response, operation_id, _MESSAGE_RELS))
        if href is None:
            log.info("sendMessage answered %d without a usable Location", response.status)
            return message
        message.href = href
        self._drop_unclaimed(href)
        try:
            resolutions = self._correlator.bind(operation_id, href)
        except (ValueError, KeyError) as exc:
            log.warning("cannot correlate message %s by href: %s", operation_id, exc)
            return message
        for resolution in resolutions:
            self._apply(resolution)
        return message

    async def _answer_from_channel(self, message: OutgoingMessage) -> bool:
        """Wait up to ``_outcome.UNANSWERED_GRACE`` for the event channel to name the
        message's operationId: True if it did (the server took the message; it may have
        ended). A link-only started message nobody claimed is read (at most
        ``_outcome.MAX_LOOKUPS``) for its operationId."""
        operation_id = message.operation_id
        if self._closed:
            return False
        if message.href is not None:
            return True  # an event named it already (it may have ended)
        if message.done():
            return False  # ended here (its conversation, the channel): nothing named it
        loop = asyncio.get_running_loop()
        named = self._unanswered[operation_id] = loop.create_future()
        deadline = loop.time() + _outcome.UNANSWERED_GRACE
        owner = self._correlator.owner
        # Only messages that came after the POST was made: an older one is not the one it
        # made (8 older ones, someone else's, spent its MAX_LOOKUPS, and it never read
        # its own, the newest).
        since = self._since[operation_id]

        async def is_ours(href: str) -> bool:
            return await self._is_ours(href, operation_id)

        def candidates() -> Iterable[str]:
            # Not one another send reads: each unclaimed message is read once, for
            # whichever send it names (each read the same ones, and others never found
            # theirs), _outcome.MAX_LOOKUPS at once.
            if len(self._looking) >= _outcome.MAX_LOOKUPS:
                return ()
            self._prune_unclaimed()
            return (
                href
                for href, at in self._unclaimed.values()
                if at >= since and href not in self._looking and owner(href) is None
            )

        try:
            async with asyncio.timeout_at(deadline):  # the reads too: a slow GET is cut
                await _outcome.look_up_unclaimed(
                    named,
                    candidates,
                    is_ours,
                    lambda href: self._bind_unanswered(message, href),
                    stop=lambda: self._closed or message.done(),
                )
        except TimeoutError:
            pass
        finally:
            self._unanswered.pop(operation_id, None)
        return named.done() and not self._closed

    async def _is_ours(self, href: str, operation_id: str) -> bool:
        """Whether the message at ``href`` is ``operation_id``'s (a GET, once per href);
        one of another message still pending is bound to it."""
        if self._read is None:
            return False
        self._looking.add(href)
        try:
            resource = await self._read(href)
        finally:
            self._looking.discard(href)
        self._drop_unclaimed(href)  # read: nobody reads it again
        named = resource.properties.get("operationId") if resource is not None else None
        if named == operation_id:
            return True
        other = self._pending.get(named) if isinstance(named, str) else None
        if other is not None and other.href is None and not self._closed:
            self._bind_unanswered(other, href)
        return False

    def _bind_unanswered(self, message: OutgoingMessage, href: str) -> None:
        """The message read at ``href`` is the one whose answer was lost: bind it (its
        events waiting in the correlator are replayed)."""
        named = self._unanswered.get(message.operation_id)
        if named is not None and not named.done():
            named.set_result(None)
        message.href = self._app.safe_resolve(href) or href
        self._drop_unclaimed(href)
        try:
            resolutions = self._correlator.bind(message.operation_id, href)
        except (ValueError, KeyError) as exc:
            log.warning("cannot correlate message %s by href: %s", message.operation_id, exc)
            return
        for resolution in resolutions:
            self._apply(resolution)

    def claims(self, event: Event) -> bool:
        """Feed a ``message`` event; True if it is about a message this session sent."""
        resource = event.resource
        if resource is not None and str(resource.properties.get("direction", "")).lower() == (
            "incoming"
        ):
            return False
        owned = self._correlator.owner(event.link.href) is not None
        if not owned and not self._since:
            # Not a message of ours: those whose 201 came are known by href, and an
            # unknown one can be ours only while a POST awaits its 201. Kept out of the
            # correlator, incoming messages (link-only ones above all) cannot crowd out
            # the events that wait there for a 201.
            return False
        try:
            resolutions = self._correlator.feed(event)
        except UcwaError:
            return owned
        for resolution in resolutions:
            self._apply(resolution)
        if not owned and not resolutions and event.type == "started":
            # Perhaps a message whose 201 is under way, or lost: see _answer_from_channel.
            self._keep_unclaimed(event.link.href)
        return owned or bool(resolutions)

    def _keep_unclaimed(self, href: str) -> None:
        try:
            key = self._app.key(href)
        except ValueError:
            return  # (no 201 can claim it either)
        unclaimed = self._unclaimed
        unclaimed[key] = (href, time.monotonic())
        unclaimed.move_to_end(key)
        while len(unclaimed) > _MAX_UNCLAIMED:
            unclaimed.popitem(last=False)

    def _drop_unclaimed(self, href: str) -> None:
        """The message at ``href`` is claimed (bound, or read): no send reads it again."""
        if self._unclaimed:
            with contextlib.suppress(ValueError):
                self._unclaimed.pop(self._app.key(href), None)

    def _prune_unclaimed(self) -> None:
        """Drop the unclaimed messages that came before every POST under way was made:
        none of them is a message those POSTs (or later ones) made."""
        oldest = next(iter(self._since.values()), None)
        unclaimed = self._unclaimed
        while unclaimed:
            key, (_, at) = next(iter(unclaimed.items()))
            if oldest is not None and at >= oldest:
                break
            del unclaimed[key]

    def _apply(self, resolution: Progress | Succeeded | Failed | NeedsLookup) -> None:
        if self._unanswered:
            named = self._unanswered.get(resolution.operation_id)
            if named is not None and not named.done():
                named.set_result(None)  # the server took the message whose answer was lost
        message = self._pending.get(resolution.operation_id)
        if message is None:
            return
        if message.href is None and resolution.event.link.href:
            # (from a started event too: the server has taken the message, whose 201 may
            # be lost; see _answer_from_channel)
            message.href = self._app.safe_resolve(resolution.event.link.href)
            self._drop_unclaimed(resolution.event.link.href)
        if isinstance(resolution, Progress):
            return
        if (
            isinstance(resolution, NeedsLookup)
            and resolution.event.resource is None
            and resolution.href
            and self._read is not None
            and self._spawn is not None
        ):
            # A completed that embeds nothing and gives no status: the message's own
            # status (message_ref: its delivery Status) says how it went. It stays
            # pending (its timeout, its conversation's end) while it is read.
            self._spawn(self._look_up(resolution.operation_id, resolution.href, self._read))
            return
        self._remove(resolution.operation_id)
        failed = isinstance(resolution, Failed) or (
            isinstance(resolution, NeedsLookup)
            and str(_status_of(resolution.event)).lower() in ("failed", "failure")
        )
        reason = resolution.reason if isinstance(resolution, Failed) else None
        self._conclude(message, failed, reason)

    async def _look_up(self, operation_id: str, href: str, read: ReadResource) -> None:
        try:
            resource = await read(href)
        except Exception:  # a bug must not leave the message unresolved
            log.exception("reading message %s failed", href)
            resource = None
        message = self._remove(operation_id)
        if message is None:
            return  # timed out, its conversation ended or the session closed meanwhile
        status = resource.properties.get("status") if resource is not None else None
        # Unreadable: completed, and nothing says it failed.
        self._conclude(message, str(status).lower() in ("failed", "failure"), None)

    def _conclude(self, message: OutgoingMessage, failed: bool, reason: Any) -> None:
        if failed:
            if message._settle(
                MessageFailedError(
                    failure_text("message not delivered", reason),
                    reason=reason,
                    href=message.href,
                    operation_id=message.operation_id,
                )
            ):
                self._stats.messages_failed += 1
        elif message._settle(None):
            self._stats.messages_delivered += 1

    def _expire(self, operation_id: str) -> None:
        message = self._remove(operation_id)
        if message is None:
            return
        self._correlator.finish(operation_id)
        if message._settle(
            MessageTimeoutError(
                f"message {operation_id} had no delivery outcome within its timeout"
                " (send()'s timeout, by default invitation_timeout); the session stopped waiting",
                href=message.href,
                operation_id=operation_id,
            )
        ):
            self._stats.messages_timed_out += 1

    def end_conversation(self, conversation_href: str, error: MessageError | UcwaError) -> None:
        """The conversation ended: its messages still pending end with ``error``."""
        for operation_id in list(self._by_conversation.get(conversation_href, ())):
            message = self._remove(operation_id)
            if message is not None:
                self._correlator.finish(operation_id)
                message._settle(error)

    def fail_all(self, error: UcwaError) -> None:
        """Every message still waiting for its outcome ends with ``error`` (the event
        channel that would have told it failed for good)."""
        for message in self._pending.values():
            message._settle(error)
        self._pending.clear()
        self._by_conversation.clear()
        self._correlator.clear()

    def close_all(self, error: UcwaError) -> None:
        self._closed = True
        for named in self._unanswered.values():
            if not named.done():
                named.set_result(None)
        for message in self._pending.values():
            message._settle(error)
        self._pending.clear()
        self._by_conversation.clear()
        self._correlator.clear()

    def _add(self, message: OutgoingMessage) -> None:
        self._pending[message.operation_id] = message
        ops = self._by_conversation.setdefault(message.conversation_href, {})
        ops[message.operation_id] = None

    def _remove(self, operation_id: str) -> OutgoingMessage | None:
        message = self._pending.pop(operation_id, None)
        if message is not None:
            ops = self._by_conversation.get(message.conversation_href)
            if ops is not None:
                ops.pop(operation_id, None)
                if not ops:
                    del self._by_conversation[message.conversation_href]
        return message


def _status_of(event: Any) -> object:
    resource = event.resource
    return resource.properties.get("status") if resource is not None else None
