"""``ConversationTable``: the session's conversations, inbox and sent messages.

The IO side of ``_core.conversation.ConversationBook``: the channel host hands it each
event batch; it feeds the book and the sent-message table, and acts on the effects
(wake streams, queue incoming invitations, GET what an event announced without its
resource, end conversations). It also does the conversation requests: accept, decline,
sendMessage, setIsTyping, stopMessaging, stopPhoneAudio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ucwa_async import _outcome
from ucwa_async._application import Application
from ucwa_async._conversation import Conversation
from ucwa_async._core import wire as _wire
from ucwa_async._core.chat import INVITATION_KINDS
from ucwa_async._core.conversation import (
    Arrived,
    ConversationBook,
    ConversationEndReason,
    ConversationState,
    Effect,
    Ended,
    Fetch,
    InvitationEnded,
)
from ucwa_async._core.errors import (
    ChannelFailedError,
    ConversationError,
    InvitationTimeoutError,
    InvitationWithdrawnError,
    NotFoundError,
    SessionClosedError,
    TransportError,
    UcwaError,
    UnsafeHrefError,
    UnsupportedModalityError,
)
from ucwa_async._core.models import EventBatch, Resource, parse_resource
from ucwa_async._http import HttpResponse
from ucwa_async._incoming import Inbox, IncomingInvitation
from ucwa_async._outcome import consume_exception, shielded
from ucwa_async._outgoing import OutgoingMessage, SentMessages
from ucwa_async._transport import Transport

if TYPE_CHECKING:
    from ucwa_async._invitation import Invitation
    from ucwa_async._session import SessionStats

__all__ = ["ConversationTable"]

log = logging.getLogger("ucwa_async.session")

# How a conversation ends when its caller hangs up: its unanswered invitations are over.
_CALLER_GONE = (
    ConversationEndReason.DELETED,
    ConversationEndReason.REMOTE_LEFT,
    ConversationEndReason.DISCONNECTED,
)
_FETCHERS = 4  # GETs at once of messages / participants announced without a resource
_MAX_FETCH_QUEUE = 10_000
_MAX_OPEN_INVITATIONS = 10_000  # incoming invitations the server has not ended yet
# Resources an event may announce again and again (link-only ``updated``): a GET still
# queued for one stands for the later announcements too.
_READ_AGAIN = frozenset({"conversation", "messaging", "phoneAudio", "participant"})
# How long send() waits for events to bring a sendMessage link before it reads the
# messaging resource itself: briefly at first (a server that announces nothing for a
# continued conversation must not cost every first send seconds), longer after a read
# that still said Connecting.
_FIRST_READ_AFTER = 0.5
_MODALITY_WAIT = 5.0

_T = TypeVar("_T")

PostPayload = Callable[[str, bytes | None, str | None], Coroutine[Any, Any, HttpResponse]]


class ConversationTable:
    def __init__(
        self,
        *,
        transport: Transport,
        application: Application,
        post_payload: PostPayload,
        stats: SessionStats,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        ensure_usable: Callable[[], None],
        wire_format: Literal["json", "xml"],
        invitation_timeout: float,
        inbox_size: int,
        max_messages: int,
        owns_invitation: Callable[[str], bool] = lambda href: False,
    ) -> None:
        self._transport = transport
        self._app = application
        self._post_payload = post_payload
        self._stats = stats
        self._spawn = spawn
        self.ensure_usable = ensure_usable
        self._wire_format = wire_format
        self._invitation_timeout = invitation_timeout
        self._owns_invitation = owns_invitation  # one this session started (no GET)
        self.book = ConversationBook(
            normalize=application.key, resolve=application.resolve, max_messages=max_messages
        )
        self.sent = SentMessages(
            application=application,
            post_payload=post_payload,
            stats=stats,
            read=self._read_message,
            spawn=spawn,
        )
        self.inbox = Inbox(inbox_size)
        self._conversations: dict[str, Conversation] = {}
        # Ended ones whose streams still wait for a message being read (link-only).
        self._draining: dict[str, Conversation] = {}
        self._invitations: dict[str, IncomingInvitation] = {}  # not yet ended, by key
        # The same, by their conversation's key (its end withdraws them: one look-up, not
        # a pass over every open invitation for each ending conversation).
        self._invitations_of: dict[str, dict[str, IncomingInvitation]] = {}
        self._accepting: dict[str, asyncio.Future[bool]] = {}
        self._fetch_queue: collections.deque[Fetch] = collections.deque()
        self._queued: set[tuple[str, str]] = set()  # (kind, href) in the queue
        # GETs queued or under way (by number, in order), by conversation key; and who
        # waits for those up to a number to have landed.
        self._read_numbers = itertools.count()
        self._fetch_numbers: collections.deque[int] = collections.deque()  # by _fetch_queue
        self._reads: dict[str, set[int]] = {}
        self._reads_waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._fetchers = 0
        self._closed = False

    # -- what the channel says ---------------------------------------------------

    def deliver(self, batch: EventBatch) -> None:
        for event in batch.events:
            if event.link.rel == "message" and self.sent.claims(event):
                continue
            try:
                self._act(self.book.feed(event))
            except UcwaError as exc:  # a hostile href or body: drop the event
                self._stats.events_rejected += 1
                log.warning("conversation event rejected: %s", exc)
            except Exception:  # a bug of ours must not stop the event channel
                self._stats.events_rejected += 1
                log.exception("conversation event %s %s failed", event.type, event.link.rel)

    def _act(self, effects: list[Effect]) -> None:
        touched: set[str] = set()
        ended: list[Ended] = []
        for effect in effects:
            if isinstance(effect, Arrived):
                self._arrived(effect)
            elif isinstance(effect, InvitationEnded):
                self._invitation_ended(effect)
            elif isinstance(effect, Fetch):
                self._enqueue_fetch(effect)
            else:
                touched.add(effect.key)
                if isinstance(effect, Ended):
                    ended.append(effect)
        for key in touched:
            conversation = self._conversations.get(key) or self._draining.get(key)
            if conversation is not None:
                conversation._changed()
                if key in self._draining and conversation._drained():
                    del self._draining[key]
                    self.book.unclaim(conversation._state)
        for effect in ended:
            self._ended(effect)
            if effect.reason in _CALLER_GONE:
                self._withdraw_invitations_of(effect.key)

    def _arrived(self, effect: Arrived) -> None:
        view = effect.view
        key = self.book.key(view.href)
        if key is None:  # pragma: no cover - the book keyed it already
            return
        invitation = IncomingInvitation(self, view, key)
        self._unindex(self._invitations.get(key))
        self._invitations[key] = invitation
        conversation_key = self._conversation_key(invitation)
        if conversation_key is not None:
            self._invitations_of.setdefault(conversation_key, {})[key] = invitation
        while len(self._invitations) > _MAX_OPEN_INVITATIONS:
            # Never ended by the server (no completed event): forget the oldest.
            oldest = self._invitations.pop(next(iter(self._invitations)))
            self._unindex(oldest)
            self._accepting.pop(oldest._key, None)  # (its accept() keeps its own timeout)
            self._release_unreturned(oldest)
        self._stats.incoming_invitations += 1
        if not self.inbox.push(invitation):
            self._stats.incoming_overflowed += 1
            log.warning(
                "incoming %s invitation from %s declined: the inbox is full",
                view.kind,
                view.sender.uri,
            )
            self._spawn(self._decline_quietly(invitation))

    def _invitation_ended(self, effect: InvitationEnded) -> None:
        invitation = self._invitations.pop(effect.key, None)
        self._unindex(invitation)
        waiter = self._accepting.pop(effect.key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(effect.accepted)
        if invitation is not None:
            invitation._server_ended()
        if invitation is None or (effect.accepted and waiter is not None):
            return  # our accept connected (or an invitation we no longer track)
        self._release_unreturned(invitation)
        if waiter is not None or invitation._answered is None:
            # Withdrawn by the caller, answered by another endpoint of this user, or
            # our accept failed: it can no longer be accepted.
            if waiter is not None:
                invitation._answered = None  # (an accept() still waiting says so too)
            invitation.withdrawn = True
            invitation.withdraw_reason = effect.reason
            self.inbox.drop(invitation)

    def _withdraw_invitations_of(self, key: str) -> None:
        """The conversation ``key`` ended before its incoming invitations were answered
        (deleted, the caller left, disconnected), their completed events merged away or
        not sent: they can no longer be accepted. An accept the server took ends too
        (its caller may have given up: nobody else would learn it); one still being
        POSTed learns it from the POST's answer (``_post_accept``)."""
        for invitation in self._invitations_of.get(key, {}).values():
            if invitation._answered is None:
                # Kept open: a completed event after the end still gives its reason.
                invitation.withdrawn = True
                invitation._server_ended()
                self.inbox.drop(invitation)
            elif invitation._answered == "accepted" and invitation._accept_posted is not None:
                # Once the events being delivered are in (a completed event among them
                # decides), as for an accept() waiting in _accept_outcome.
                asyncio.get_running_loop().call_soon(self._accept_ended, invitation)

    def _accept_ended(self, invitation: IncomingInvitation) -> None:
        """The conversation of an accept the server took ended with no outcome for it."""
        posted = invitation._accept_posted
        if (
            posted is not None
            and not posted.done()
            and self._invitations.get(invitation._key) is invitation
        ):
            self._invitation_ended(InvitationEnded(invitation._key, False, None))

    def _release_unreturned(self, invitation: IncomingInvitation) -> None:
        """``invitation`` will not be accepted (withdrawn, its accept refused, or no
        longer tracked): the Conversation an accept() made for it, never handed to
        anyone, leaves the table, its state unclaimed (evictable). Kept, it would stay
        claimed for as long as the server does not end that conversation, which it may
        never do for a caller who gave up (a daemon's table growing for months)."""
        key = self._conversation_key(invitation)
        conversation = self._conversations.get(key) if key is not None else None
        if conversation is None or conversation._returned:
            return
        for other in self._invitations_of.get(conversation._state.key, {}).values():
            if other is not invitation and (
                other._accept_posting is not None or other._accept_posted is not None
            ):
                return  # another invitation's accept into it is under way
        del self._conversations[conversation._state.key]
        self.book.unclaim(conversation._state)

    def _conversation_key(self, invitation: IncomingInvitation) -> str | None:
        """The book's key of the conversation ``invitation`` invites into (None: no href)."""
        return self.book.key(invitation._view.conversation_href or "")

    def _unindex(self, invitation: IncomingInvitation | None) -> None:
        """``invitation`` leaves ``_invitations``: out of ``_invitations_of`` too."""
        if invitation is None:
            return
        conversation_key = self._conversation_key(invitation)
        if conversation_key is None:
            return
        same = self._invitations_of.get(conversation_key)
        if same is not None and same.get(invitation._key) is invitation:
            del same[invitation._key]
            if not same:
                del self._invitations_of[conversation_key]

    def _ended(self, effect: Ended) -> None:
        """An ended conversation leaves the table (its object keeps its state and ends
        its streams); its state may be evicted from the book like any unclaimed one (and
        its messages emptied there, see ``ConversationBook``), once no message of it is
        still being read: until then its streams wait for that message, which the book
        logs in its state (so it stays claimed, in ``_draining``)."""
        conversation = self._conversations.pop(effect.key, None)
        if conversation is None:
            return
        if conversation._drained():
            self.book.unclaim(conversation._state)
        else:
            self._draining[effect.key] = conversation
        self.sent.end_conversation(conversation.href, conversation._ended_error())
        self._stats.conversations_ended += 1

    def resynced(self) -> None:
        """Events may have been lost: read each live conversation again (a deleted one
        ends, a disconnected one too)."""
        if not self._closed:
            self._act(list(self.book.resynced()))

    def application_lost(self) -> None:
        """The application is gone, and with it every conversation the server kept."""
        self._act(self.book.end_all(ConversationEndReason.APPLICATION_LOST))
        self._withdraw_all()

    def channel_failed(self, error: ChannelFailedError) -> None:
        """The event channel failed for good: nothing more can be heard. Every
        conversation ends (``CHANNEL_FAILED``: its ``messages()`` streams end), every
        message still waiting for its outcome and every inbox reader gets ``error``."""
        self.sent.fail_all(error)  # first: their conversations' end would say only that
        self._act(self.book.end_all(ConversationEndReason.CHANNEL_FAILED))
        self._withdraw_all()
        self.inbox.end(error)

    def close(self) -> None:
        """The session closes: every stream ends, every waiter learns it."""
        self._closed = True
        self._act(self.book.end_all(ConversationEndReason.SESSION_CLOSED))
        self._withdraw_all()
        self.sent.close_all(SessionClosedError("the session closed"))
        self.inbox.end()
        self._fetch_queue.clear()
        self._queued.clear()
        self._fetch_numbers.clear()
        self._reads.clear()
        for waiters in self._reads_waiters.values():
            for _, waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._reads_waiters.clear()
        for conversation in self._draining.values():
            conversation._abandon()
            self.book.unclaim(conversation._state)
        self._draining.clear()

    def _withdraw_all(self) -> None:
        """The application (or the session) is gone: no invitation can be accepted."""
        for invitation in self._invitations.values():
            invitation.withdrawn = True
            self.inbox.drop(invitation)
        self._invitations.clear()
        self._invitations_of.clear()
        for key in list(self._accepting):
            waiter = self._accepting.pop(key)
            if not waiter.done():
                waiter.set_result(False)

    # -- conversations -----------------------------------------------------------

    def conversation_for(self, href: str, kind: Literal["messaging", "phoneAudio"]) -> Conversation:
        """The one Conversation of ``href`` (created, and its state claimed, if new)."""
        if self._closed:  # nothing would ever end it
            raise SessionClosedError("the session is closed")
        url = self._app.resolve(href)
        state = self.book.claim(url)
        if state is None:
            raise UcwaError(f"not a usable conversation href: {href!r}")
        conversation = self._conversations.get(state.key)
        if conversation is None:
            # An ended one still waiting for a message being read is that Conversation,
            # and stays claimed until the read lands (see _ended).
            conversation = self._draining.get(state.key)
            if conversation is not None and conversation._state is not state:
                conversation = None  # opened again since (a new state)
        if conversation is None:
            conversation = Conversation(self, state, kind)
            if state.ended is None:  # an ended one needs no more events
                self._conversations[state.key] = conversation
            else:
                self.book.unclaim(state)
        return conversation

    def from_invitation(self, invitation: Invitation[Any], resource: Resource) -> Conversation:
        """``Invitation.conversation()``: the conversation a connected invitation joined."""
        href = resource.link("conversation")
        if href is None:
            raise UcwaError("the invitation names no conversation")
        conversation = self.conversation_for(href, invitation.modality)
        if resource.rel:  # what the final invitation says (participants, modality links)
            self._act(self.book.learn_invitation(conversation._state, resource))
        conversation._returned = True
        return conversation

    # -- incoming ----------------------------------------------------------------

    async def accept(self, invitation: IncomingInvitation, timeout: float | None) -> Conversation:
        self.ensure_usable()
        view = invitation._view
        declining = invitation._decline_posting
        if declining is not None:
            # The decline POST of a caller that gave up is under way: its answer decides.
            with contextlib.suppress(Exception):
                await shielded(declining)
            self.ensure_usable()
        if invitation._answered == "declined":
            # Said at once: the accept POST would only get the server's 409.
            raise InvitationWithdrawnError(
                "the invitation was declined: it can no longer be accepted", href=invitation.href
            )
        if invitation.kind == "phoneAudio":
            raise UnsupportedModalityError(
                "cannot accept a phoneAudio invitation: UCWA's phone audio rings a phone "
                "and carries no audio to this API (decline it, or answer on a phone)"
            )
        if invitation._connected and view.conversation_href is not None:
            conversation = self.conversation_for(view.conversation_href, "messaging")
            conversation._returned = True
            return conversation
        self._check_not_withdrawn(invitation)
        if view.accept_href is None or view.conversation_href is None:
            raise UcwaError("this invitation offers no accept link")
        accept_url = self._app.resolve_own(view.accept_href)
        conversation = self.conversation_for(view.conversation_href, "messaging")
        if invitation._accept_posted is None and invitation._accept_posting is None:
            conversation._state.skip_text = view.message
            conversation._state.skip_key = None
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[bool] = loop.create_future()
            self._accepting[invitation._key] = waiter
            # The POST runs in a task the session owns: a caller that gives up (cancelled,
            # an outer timeout) cannot leave an accept the server took unknown here (its
            # conversation connected on the server, the invitation "withdrawn" locally).
            invitation._accept_posting = self._in_session_task(
                self._post_accept(invitation, accept_url, waiter, conversation)
            )
            invitation._answered = "accepted"
        if invitation._accept_posting is not None:
            await shielded(invitation._accept_posting)
        # An accept the server took (now, or before an earlier caller gave up): wait for
        # its outcome (a second POST would be refused, 409: no longer ringing).
        posted = invitation._accept_posted
        assert posted is not None
        # One deadline (from the server's answer, as an invitation's timeout counts from
        # its 201) for the outcome and then the reads below.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self._invitation_timeout)
        try:
            async with asyncio.timeout_at(deadline):
                accepted = await self._accept_outcome(invitation, posted, conversation)
        except TimeoutError:
            raise InvitationTimeoutError(
                "the accepted invitation did not connect in time", href=invitation.href
            ) from None
        if not accepted:
            invitation._answered = None
            invitation.withdrawn = True
            self.ensure_usable()
            self._check_not_withdrawn(invitation)
        # The events before the invitation's completed one (the conversation and its
        # messaging Connected, ReceiveAnIM step 15) may be link-only, their GETs still
        # under way: the Conversation returned is the connected one.
        await conversation._settle(max(0.0, deadline - loop.time()))
        if not invitation._connected:
            invitation._connected = True
            self._stats.incoming_accepted += 1
        conversation._returned = True
        return conversation

    async def _post_accept(
        self,
        invitation: IncomingInvitation,
        url: str,
        waiter: asyncio.Future[bool],
        conversation: Conversation,
    ) -> None:
        """accept()'s POST, in a task of the session's; its 2xx makes ``waiter`` (settled
        by the invitation's end) the accept's outcome. A POST that got no answer (the
        connection dropped, timed out) may have been taken all the same: the invitation's
        end, on the event channel within ``_outcome.UNANSWERED_GRACE``, says it was."""
        try:
            try:
                await self._post_payload(url, None, None)
            except TransportError as exc:
                if exc.request_sent is False or not await self._ended_meanwhile(
                    waiter, conversation
                ):
                    raise
                log.info("accept POST %s got no answer, but the invitation has ended", url)
        except BaseException as exc:
            invitation._accept_posting = None
            invitation._answered = None  # not taken: a later accept() may try again
            if self._accepting.get(invitation._key) is waiter:
                del self._accepting[invitation._key]
            if conversation.ended in _CALLER_GONE and isinstance(exc, UcwaError):
                # The caller hung up while the POST was on its way (accept_ref.md's 409
                # then): withdrawn, as it would have been had the POST waited.
                invitation.withdrawn = True
                self.inbox.drop(invitation)
            if isinstance(exc, NotFoundError) or (
                invitation.withdrawn and isinstance(exc, UcwaError)
            ):
                # The invitation is gone (withdrawn; its events may be on their way).
                invitation.withdrawn = True
                # (Kept open, bounded: a completed event may still give its reason.)
                self._release_unreturned(invitation)
                raise InvitationWithdrawnError(
                    "the invitation is gone (withdrawn before it was accepted)",
                    reason=invitation.withdraw_reason,
                    href=invitation.href,
                ) from exc
            raise
        invitation._accept_posting = None
        invitation._accept_posted = waiter
        if conversation.ended in _CALLER_GONE:
            # Ended while the POST was on its way (its caller may have given up).
            self._accept_ended(invitation)

    async def _ended_meanwhile(
        self, waiter: asyncio.Future[bool], conversation: Conversation
    ) -> bool:
        """Whether, within ``_outcome.UNANSWERED_GRACE``, the invitation whose accept POST
        got no answer ended (``waiter``: its completed event; accept_ref.md, the outcome
        comes on the event channel) or its conversation did: the server took the accept,
        or it can no longer be taken; either way ``_accept_outcome`` tells which."""
        if not waiter.done() and conversation.ended is None:
            # asyncio.wait cancels neither (the waiter outlives this POST's task).
            await asyncio.wait(
                (waiter, conversation._ended),
                timeout=_outcome.UNANSWERED_GRACE,
                return_when=asyncio.FIRST_COMPLETED,
            )
        return waiter.done() or conversation.ended is not None

    async def _accept_outcome(
        self,
        invitation: IncomingInvitation,
        waiter: asyncio.Future[bool],
        conversation: Conversation,
    ) -> bool:
        """The invitation's outcome; False if its conversation ends first (deleted, or its
        messaging Disconnected) with no completed event for the invitation: the caller hung
        up, and an accept can no longer connect."""
        if not waiter.done() and conversation.ended is None:
            # asyncio.wait cancels neither: the waiter outlives a cancelled accept().
            await asyncio.wait((waiter, conversation._ended), return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            return waiter.result()
        self._invitation_ended(InvitationEnded(invitation._key, False, None))
        return False

    def _check_not_withdrawn(self, invitation: IncomingInvitation) -> None:
        if invitation.withdrawn:
            raise InvitationWithdrawnError(
                "the invitation was withdrawn before it was accepted",
                reason=invitation.withdraw_reason,
                href=invitation.href,
            )

    async def decline(self, invitation: IncomingInvitation) -> None:
        self.ensure_usable()
        accepting = invitation._accept_posting
        if accepting is not None:
            # The accept POST of a caller that gave up is under way: its answer decides.
            with contextlib.suppress(Exception):
                await shielded(accepting)
            self.ensure_usable()
        if invitation.withdrawn:
            return
        if invitation._answered == "accepted":
            # Not a silent no-op: the conversation goes on until it is left.
            raise ConversationError(
                "the invitation was accepted: leave() its conversation (accept() returns "
                "it) to end it",
                href=invitation.href,
            )
        if invitation._answered is not None:
            return
        declining = invitation._decline_posting
        if declining is None:
            decline_href = invitation._view.decline_href
            if decline_href is None:
                raise UcwaError("this invitation offers no decline link")
            decline_url = self._app.resolve_own(decline_href)
            payload, content_type = _wire.encode_input({"reason": "Local"}, self._wire_format)
            # In a task the session owns, as accept's POST: a caller that gives up cannot
            # leave a decline the server took unknown here.
            declining = self._in_session_task(
                self._post_decline(invitation, decline_url, payload, content_type)
            )
            invitation._decline_posting = declining
        await shielded(declining)

    async def _post_decline(
        self, invitation: IncomingInvitation, url: str, payload: bytes, content_type: str
    ) -> None:
        """decline()'s POST, in a task of the session's; its 2xx counts the decline. One
        that got no answer (the connection dropped, timed out) may have been taken all the
        same: the invitation's end on the event channel within
        ``_outcome.UNANSWERED_GRACE`` (decline_ref.md: the decline makes the invitation
        fail, declined) says it was, and it is declined and counted as if the 204 had
        come; otherwise the ``TransportError`` is raised (a later decline() tries again)."""
        try:
            try:
                await self._post_payload(url, payload, content_type)
            except TransportError as exc:
                if exc.request_sent is False or not await self._invitation_ended_meanwhile(
                    invitation
                ):
                    raise
                log.info("decline POST %s got no answer, but the invitation has ended", url)
        except NotFoundError:
            invitation.withdrawn = True  # gone meanwhile: nothing left to decline
            return
        except UcwaError:
            if invitation.withdrawn:
                return  # the caller hung up meanwhile (409 then): nothing left to decline
            raise
        finally:
            invitation._decline_posting = None
        invitation._answered = "declined"
        self._stats.incoming_declined += 1

    async def _invitation_ended_meanwhile(self, invitation: IncomingInvitation) -> bool:
        """Whether, within ``_outcome.UNANSWERED_GRACE``, the server ended ``invitation``
        (its completed event, or its conversation's end); a loss of the application or of
        the channel is no word of the server's on it."""
        if not invitation._ended_on_server:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            invitation._end_waiter = waiter
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_outcome.UNANSWERED_GRACE):
                        await waiter
            finally:
                invitation._end_waiter = None
        return invitation._ended_on_server

    async def _decline_quietly(self, invitation: IncomingInvitation) -> None:
        try:
            await self.decline(invitation)
        except UcwaError as exc:
            log.warning("could not decline the overflowing invitation: %s", exc)

    # -- requests in a conversation ----------------------------------------------

    async def send(
        self, conversation: Conversation, text: str, *, html: bool, timeout: float | None
    ) -> OutgoingMessage:
        self.ensure_usable()
        url = await self._link(conversation, "sendMessage", "messaging")
        self.ensure_usable()  # (closing meanwhile: no task it would not cancel)
        # The POST runs in a task the session owns, as accept's: a caller that gives up
        # (cancelled, an outer timeout) cannot leave a message the server took untracked
        # (delivered, uncounted, its outcome lost). It stays tracked: counted, settled
        # from its events; a failure of its POST is logged.
        behind = tuple(conversation._send_behind)
        posted = self._in_session_task(
            self._post_message(conversation, url, text, html, timeout, behind)
        )
        try:
            return await shielded(posted)
        except asyncio.CancelledError:
            posted.add_done_callback(
                functools.partial(_log_given_up, "sending in", conversation.href, "sendMessage")
            )
            if not posted.done():
                conversation._send_behind.add(posted)
                posted.add_done_callback(conversation._send_behind.discard)
            raise

    async def _post_message(
        self,
        conversation: Conversation,
        url: str,
        text: str,
        html: bool,
        timeout: float | None,
        behind: tuple[asyncio.Future[OutgoingMessage], ...],
    ) -> OutgoingMessage:
        if behind:
            # A send() whose caller gave up still POSTs: this message must not overtake
            # it (a caller's sends one after the other reach the server in order).
            # Bounded by those POSTs' request timeout; their outcome is not ours.
            await asyncio.wait(behind)
            if conversation.ended is not None:
                raise conversation._ended_error()  # over meanwhile: as _link would
        message = await self.sent.send(
            url,
            text,
            html=html,
            conversation_href=conversation.href,
            timeout=timeout or self._invitation_timeout,
        )
        if conversation.ended is not None:
            self.sent.end_conversation(conversation.href, conversation._ended_error())
        return message

    async def post_link(self, conversation: Conversation, rel: str) -> None:
        self.ensure_usable()
        url = await self._link(conversation, rel, "messaging")
        await self._post_payload(url, None, None)

    async def hang_up(self, conversation: Conversation) -> None:
        """POST stopPhoneAudio (in a task the session owns, as leave()'s); the conversation
        ends here too when it has no messaging."""
        self.ensure_usable()
        state = conversation._state
        if conversation.kind != "phoneAudio" and "stopPhoneAudio" not in state.links:
            raise ConversationError("this conversation has no phone call", href=conversation.href)
        await self._see_through(conversation, self._hang_up(conversation), "hanging up")

    async def _hang_up(self, conversation: Conversation) -> None:
        url = await self._link(conversation, "stopPhoneAudio", "phoneAudio")
        await self._post_stop(conversation, url, "phoneAudio")
        if conversation._state.links.get("sendMessage") is None:
            self._end_locally(conversation, ConversationEndReason.LEFT)

    async def leave(self, conversation: Conversation) -> None:
        """POST the stop links there are (best effort), then end the conversation here.

        The POSTs run in a task the session owns (see ``_see_through``)."""
        try:
            self.ensure_usable()
            await self._see_through(conversation, self._stop(conversation), "leaving")
        finally:
            self._end_locally(conversation, ConversationEndReason.LEFT)

    async def stopped(self, conversation: Conversation) -> None:
        """A later leave(): wait for the stop POSTs a cancelled leave() (or hang_up()) left
        running, and raise their error, which nobody was told yet (once)."""
        running = conversation._stopping
        if running is None:
            return
        try:
            await shielded(running)
        except SessionClosedError:
            # Cut short by the session's close, whose DELETE of the application ended the
            # conversation on the server: over, as any conversation the close ended.
            pass
        finally:
            if running.done() and conversation._stopping is running:
                conversation._stopping = None

    async def _see_through(
        self, conversation: Conversation, work: Coroutine[Any, Any, None], what: str
    ) -> None:
        """Run ``work`` (stop POSTs) in a task the session owns and wait for it: a caller
        that gives up (cancelled, an outer timeout) still stops the call on the server
        instead of leaving it Connected there, orphaned. The POSTs are bounded by the
        request timeout, cancelled by the session's close; if the caller gave up, their
        failure is logged and kept for the next leave() (``stopped``)."""
        done = self._in_session_task(work)
        try:
            await shielded(done)
        except asyncio.CancelledError:
            # (``done`` may have ended in the very turn the caller was cancelled: its
            # error is no less unreported.)
            done.add_done_callback(
                functools.partial(_log_given_up, what, conversation.href, "stop")
            )
            conversation._stopping = done
            raise

    async def _stop(self, conversation: Conversation) -> None:
        """leave()'s POSTs."""
        state = conversation._state
        for rel, modality in (("stopMessaging", "messaging"), ("stopPhoneAudio", "phoneAudio")):
            href = state.links.get(rel)
            # Not known from the events yet (announced link-only, or still being
            # read): read the modality the conversation was joined by. Not decided by
            # which modality links the conversation has: its resource links them all
            # (ReceiveAnIM step 15, SendAnIM step 6: messaging and phoneAudio).
            if href is None and conversation.kind == modality:
                href = await self._read_link(state, rel, modality)
            if href is not None:
                with contextlib.suppress(NotFoundError):  # already gone on the server
                    await self._post_stop(conversation, self._app.resolve_own(href), modality)

    async def _post_stop(self, conversation: Conversation, url: str, modality: str) -> None:
        """A stop POST (stopMessaging, stopPhoneAudio: they stop the modality, the
        reference's 204 says nothing more). While it is under way, an end the server says
        is this stop's (``ConversationState.leaving``: LEFT). One that got no answer (the
        connection dropped, timed out) may have been taken all the same: the modality's
        end (or the conversation's), on the event channel within
        ``_outcome.UNANSWERED_GRACE``, says it was, and the stop returns as if its 204
        had come; otherwise its ``TransportError`` is raised."""
        state = conversation._state
        was_disconnected = _modality_disconnected(state, modality)
        state.leaving += 1
        try:
            try:
                await self._post_payload(url, None, None)
            except TransportError as exc:
                if (
                    exc.request_sent is False
                    or was_disconnected
                    or not await self._stopped_meanwhile(conversation, modality)
                ):
                    raise
                log.info("stop POST %s got no answer, but the %s has ended", url, modality)
        finally:
            state.leaving -= 1

    async def _stopped_meanwhile(self, conversation: Conversation, modality: str) -> bool:
        """Whether, within ``_outcome.UNANSWERED_GRACE``, the server said the conversation
        ended or its ``modality`` Disconnected (a link-only event's GET included). Not
        its end here (a cancelled leave() ends it LEFT at once), nor a loss."""
        state = conversation._state

        def stopped() -> bool:
            return state.end_said or _modality_disconnected(state, modality)

        if not stopped():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_outcome.UNANSWERED_GRACE):
                    while not stopped():
                        await conversation._wait_change()
        return stopped()

    def _end_locally(self, conversation: Conversation, reason: ConversationEndReason) -> None:
        if conversation._state.end(reason):
            self._act([Ended(conversation._state.key, reason)])

    async def _link(self, conversation: Conversation, rel: str, modality: str) -> str:
        """The href of an operation link of the conversation.

        Known from the events: at once. Otherwise the modality is read (GET) when its
        state is unknown or connected; while it is connecting, the event that brings the
        link is awaited (a few seconds), then the modality is read once more.
        """
        state = conversation._state
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _FIRST_READ_AFTER
        reads = 0
        while True:
            if state.ended is not None:
                raise conversation._ended_error()
            href = state.links.get(rel)
            if href is not None:
                return self._app.resolve_own(href)
            status = state.messaging_state if modality == "messaging" else state.phone_audio_state
            connecting = (status or "").lower() == "connecting"
            remaining = deadline - loop.time()
            if not connecting or remaining <= 0:
                if reads == 2 or (reads == 1 and not connecting):
                    raise ConversationError(
                        f"the conversation offers no {rel} link (is {modality} connected?)",
                        href=conversation.href,
                    )
                reads += 1
                await self._read_link(state, rel, modality)
                deadline = loop.time() + _MODALITY_WAIT
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await conversation._wait_change()

    async def _read_link(self, state: ConversationState, rel: str, modality: str) -> str | None:
        href = state.links.get(modality)
        if href is None:
            return None
        try:
            url = self._app.resolve_own(href)
        except UnsafeHrefError as exc:
            log.info("not reading %s: %s", modality, exc)
            return None
        try:
            resource = parse_resource(await self._transport.get_json(url))
        except NotFoundError:
            return None
        self._act(self.book.read_modality(state, modality, resource))
        return state.links.get(rel)

    # -- GETs of what events announced without a resource -------------------------

    async def _read_message(self, href: str) -> Resource | None:
        """A sent message, read for its delivery status (None if it cannot be read)."""
        try:
            url = self._app.resolve_own(href)
            return parse_resource(await self._transport.get_json(url))
        except UcwaError as exc:
            log.info("could not read message %s: %s", href, exc)
            return None

    def _enqueue_fetch(self, fetch: Fetch) -> None:
        if self._closed:
            return
        if fetch.kind in _READ_AGAIN and (fetch.kind, fetch.href) in self._queued:
            return  # already to be read: one GET says the latest
        if len(self._fetch_queue) >= _MAX_FETCH_QUEUE:
            dropped = self._fetch_queue.popleft()
            number = self._fetch_numbers.popleft()
            self._queued.discard((dropped.kind, dropped.href))
            self._act(self.book.fetched(dropped, None))
            self._read_done(dropped.key, number)
        self._fetch_queue.append(fetch)
        number = next(self._read_numbers)
        self._fetch_numbers.append(number)
        self._reads.setdefault(fetch.key, set()).add(number)
        self._queued.add((fetch.kind, fetch.href))
        while self._fetchers < min(_FETCHERS, len(self._fetch_queue)):
            self._fetchers += 1
            self._spawn(self._fetcher())

    async def _fetcher(self) -> None:
        try:
            while self._fetch_queue:
                fetch = self._fetch_queue.popleft()
                number = self._fetch_numbers.popleft()
                self._queued.discard((fetch.kind, fetch.href))
                resource: Resource | None = None
                if fetch.kind in INVITATION_KINDS and self._owns_invitation(fetch.href):
                    # A link-only started of an invitation of ours (its 201 came
                    # meanwhile): the operations table has it, nothing is incoming.
                    self._act(self.book.fetched(fetch, None))
                    self._read_done(fetch.key, number)
                    continue
                try:
                    url = self._app.resolve_own(fetch.href)
                    resource = parse_resource(await self._transport.get_json(url))
                except NotFoundError:
                    self._act(self.book.gone(fetch))  # a conversation: deleted meanwhile
                except UcwaError as exc:
                    log.info("could not read %s %s: %s", fetch.kind, fetch.href, exc)
                except Exception:  # a bug must not leave a message's place held forever
                    log.exception("reading %s %s failed", fetch.kind, fetch.href)
                try:
                    self._act(self.book.fetched(fetch, resource))
                finally:
                    self._read_done(fetch.key, number)
        finally:
            self._fetchers -= 1

    def _read_done(self, key: str, number: int) -> None:
        numbers = self._reads.get(key)
        if numbers is None:
            return
        numbers.discard(number)
        oldest = min(numbers, default=None)
        if not numbers:
            del self._reads[key]
        waiters = self._reads_waiters.get(key)
        if not waiters:
            return
        left = []
        for upto, waiter in waiters:
            if oldest is None or oldest > upto:
                if not waiter.done():
                    waiter.set_result(None)
            elif not waiter.done():
                left.append((upto, waiter))
        if left:
            self._reads_waiters[key] = left
        else:
            del self._reads_waiters[key]

    def _in_session_task(self, work: Coroutine[Any, Any, _T]) -> asyncio.Future[_T]:
        """Run ``work`` (a POST that changes the server) in a task the session owns, so a
        caller that gives up cannot cut it short; the future returned gets its outcome
        (an error nobody reads is no "never retrieved" warning)."""
        done: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        done.add_done_callback(consume_exception)
        self._spawn(_settle_with(work, done))
        return done

    async def reads_landed(self, key: str, timeout: float | None) -> None:
        """Return once the GETs of the conversation ``key`` queued or under way now have
        landed (not those queued later), or after ``timeout`` (None: the invitation
        timeout; 0: at once) whatever is left."""
        numbers = self._reads.get(key)
        if not numbers:
            return
        if timeout is None:
            timeout = self._invitation_timeout
        if timeout <= 0:  # (was taken for "the default": a spent deadline waited it all)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reads_waiters.setdefault(key, []).append((max(numbers), waiter))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await waiter


def _modality_disconnected(state: ConversationState, modality: str) -> bool:
    status = state.messaging_state if modality == "messaging" else state.phone_audio_state
    return (status or "").lower() == "disconnected"


async def _settle_with(work: Coroutine[Any, Any, _T], done: asyncio.Future[_T]) -> None:
    """Run ``work`` in a task of the session; its outcome goes to ``done``."""
    try:
        result = await work
    except asyncio.CancelledError:
        # The session closes (its DELETE of the application ends the conversation).
        if not done.done():
            done.set_exception(SessionClosedError("the session closed"))
        raise
    except Exception as exc:  # the caller's to raise, or logged if it gave up
        if not done.done():
            done.set_exception(exc)
    else:
        if not done.done():
            done.set_result(result)


def _log_given_up(what: str, href: str, post: str, done: asyncio.Future[Any]) -> None:
    """The ``post`` POST (sendMessage, or the stops of a leave() or hang_up()) of a caller
    that gave up failed: nobody else knows yet."""
    error = None if done.cancelled() else done.exception()
    # (Cut short by the session's close: its DELETE of the application ends the
    # conversation on the server, nothing failed.)
    if error is not None and not isinstance(error, SessionClosedError):
        log.warning("%s %s: the %s POST failed: %s", what, href, post, error)
