"""Incoming invitations: ``IncomingInvitation``, the session's ``Inbox`` and its streams.

The inbox exists from the moment the session is open (none lost before the first
``incoming()``) and is bounded: an invitation arriving when it is full is declined
(reason ``Local``), counted in ``SessionStats.incoming_overflowed`` and logged. Several
``incoming()`` streams share it: each invitation goes to exactly one of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import TYPE_CHECKING, Literal

from ucwa_async._core.chat import IncomingInvitationView, Participant
from ucwa_async._core.errors import ChannelFailedError
from ucwa_async._core.models import Reason
from ucwa_async._stream import ClosingStream

if TYPE_CHECKING:
    from ucwa_async._conversation import Conversation
    from ucwa_async._conversations import ConversationTable

__all__ = ["Inbox", "IncomingInvitation", "InvitationStream"]


class IncomingInvitation:
    """Someone invites this session: ``kind`` (``"messaging"`` or ``"phoneAudio"``),
    ``href``, ``sender`` (a ``Participant``), ``subject`` and ``message`` (the text of
    the first message, or None).

    ``await accept()`` returns the ``Conversation`` (messaging; a phoneAudio invitation
    raises ``UnsupportedModalityError``: the API cannot carry the audio); ``await
    decline()`` declines it (reason ``Local``). If the caller withdrew it first, both
    know at once: ``accept()`` raises ``InvitationWithdrawnError``, ``decline()`` returns.
    Once declined, ``accept()`` raises ``InvitationWithdrawnError`` (a second
    ``decline()`` returns); once accepted, ``decline()`` raises ``ConversationError``
    (``leave()`` the conversation instead). An ``accept()`` whose caller gives up
    (cancelled, an outer timeout, its ``timeout``) once the accept request is sent
    still accepts: the session finishes the request, a later ``accept()`` waits for
    the same outcome (without a second request) and returns the conversation. A
    ``decline()`` whose caller gives up still declines, in the same way.
    """

    def __init__(self, table: ConversationTable, view: IncomingInvitationView, key: str) -> None:
        self._table = table
        self._view = view
        self._key = key
        self.href = view.href
        self.withdrawn = False
        """True once the caller withdrew it (or it ended elsewhere) before an accept."""
        self.withdraw_reason: Reason | None = None
        # What the server was told: "accepted" from the accept POST on (unless it failed,
        # or the invitation ended without connecting).
        self._answered: Literal["accepted", "declined"] | None = None
        # The accept POST under way (in a task of the session's; see accept).
        self._accept_posting: asyncio.Future[None] | None = None
        # The outcome of an accept the server took (set after its 2xx; see accept).
        self._accept_posted: asyncio.Future[bool] | None = None
        self._connected = False  # an accept() returned its conversation
        self._decline_posting: asyncio.Future[None] | None = None  # as _accept_posting
        # The server ended it (its completed event, or its conversation's end), and who
        # waits for that (a decline whose answer was lost; see the table's decline).
        self._ended_on_server = False
        self._end_waiter: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<IncomingInvitation {self.kind} from {self.sender.uri!r} href={self.href!r}>"

    @property
    def kind(self) -> Literal["messaging", "phoneAudio"]:
        return self._view.kind

    @property
    def sender(self) -> Participant:
        return self._view.sender

    @property
    def subject(self) -> str | None:
        return self._view.subject

    @property
    def message(self) -> str | None:
        return self._view.message

    async def accept(self, timeout: float | None = None) -> Conversation:
        """Accept; returns the conversation once the server says it connected.

        ``timeout`` (default: the session's ``invitation_timeout``), counted from the
        server's answer to the accept request as an invitation's is from its 201, passing
        first raises ``InvitationTimeoutError``; the accept stays posted, and a later
        ``accept()`` waits for its outcome without a second POST."""
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0
        ):
            # Before the accept POST: 0 silently meant the default, a negative one gave up
            # on a conversation the server had just connected.
            raise ValueError(f"timeout must be a positive number or None, got {timeout!r}")
        async with self._lock:
            return await self._table.accept(self, timeout)

    async def decline(self) -> None:
        """Decline (reason ``Local``: this application only).

        A request whose answer is lost (``TransportError`` with ``request_sent`` not
        False) may have been taken: ``decline()`` waits up to 2 s for the invitation's
        end on the event channel (decline_ref.md: the invitation fails, declined) and
        then counts it declined (``stats.incoming_declined``) as if the answer had come;
        otherwise it raises the ``TransportError``, and a later ``decline()`` sends the
        request again."""
        async with self._lock:
            await self._table.decline(self)

    def _server_ended(self) -> None:
        """Its completed event came, or its conversation ended: the server's word."""
        self._ended_on_server = True
        if self._end_waiter is not None and not self._end_waiter.done():
            self._end_waiter.set_result(None)


class Inbox:
    """Invitations not yet taken by a stream; bounded; handed out first come, first served."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("the inbox size must be at least 1")
        self._items: collections.deque[IncomingInvitation] = collections.deque()
        self._maxsize = maxsize
        self._getters: collections.deque[asyncio.Future[IncomingInvitation | None]] = (
            collections.deque()
        )
        self._ended = False
        self.error: ChannelFailedError | None = None  # why it ended, if not a close

    def _hand(self, invitation: IncomingInvitation) -> bool:
        """Give ``invitation`` to the first waiting reader; False if none waits."""
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(invitation)
                return True
        return False

    def __len__(self) -> int:
        return len(self._items)

    def push(self, invitation: IncomingInvitation) -> bool:
        """Hand ``invitation`` to a waiting stream or queue it; False when full."""
        if self._hand(invitation):
            return True
        if len(self._items) >= self._maxsize:
            return False
        self._items.append(invitation)
        return True

    def drop(self, invitation: IncomingInvitation) -> None:
        """Remove a queued invitation (it was withdrawn before anyone took it)."""
        with contextlib.suppress(ValueError):
            self._items.remove(invitation)

    def give_back(self, invitation: IncomingInvitation) -> None:
        """An invitation taken but not used (its reader went away): the next reader
        gets it first."""
        if not self._hand(invitation):
            self._items.appendleft(invitation)

    async def get(
        self, waiting: set[asyncio.Future[IncomingInvitation | None]] | None = None
    ) -> IncomingInvitation | None:
        """The next invitation; None once the inbox has ended (or the wait was woken,
        see ``wake``). ``waiting`` holds the wait while it lasts, for ``wake``."""
        if self._items:
            return self._items.popleft()
        if self._ended:
            return None
        getter: asyncio.Future[IncomingInvitation | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._getters.append(getter)
        if waiting is not None:
            waiting.add(getter)
        try:
            return await getter
        except asyncio.CancelledError:
            if getter.done() and not getter.cancelled():
                handed = getter.result()
                if handed is not None:
                    self.give_back(handed)  # not lost: the next reader gets it
            raise
        finally:
            if waiting is not None:
                waiting.discard(getter)
            if not getter.done() or getter.cancelled() or getter.result() is None:
                # A wait that timed out (a daemon polling a quiet inbox) or was woken:
                # out of the queue now, not when the next invitation comes.
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)

    @staticmethod
    def wake(waiting: set[asyncio.Future[IncomingInvitation | None]]) -> None:
        """End these waits with None (their stream closed)."""
        for getter in waiting:
            if not getter.done():
                getter.set_result(None)

    def end(self, error: ChannelFailedError | None = None) -> None:
        """No more invitations: readers get None, and stop (``error``: with it; the
        session's close after a failure ends them quietly)."""
        if error is None or not self._ended:
            self.error = error
        self._ended = True
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)


class InvitationStream(ClosingStream):
    """``async with session.incoming() as invitations: async for invite in invitations``.

    Ends when the session closes (or this stream is closed); raises
    ``ChannelFailedError`` when the event channel has failed for good."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._closed = False
        self._waiting: set[asyncio.Future[IncomingInvitation | None]] = set()

    async def __anext__(self) -> IncomingInvitation:
        while not self._closed:
            invitation = await self._inbox.get(self._waiting)
            if invitation is None:
                failed = self._inbox.error
                if failed is not None and not self._closed:
                    raise failed.renewed() from failed.cause
                break
            if self.closed:  # closed meanwhile (another task): another stream takes it
                self._inbox.give_back(invitation)
                break
            if invitation.withdrawn:
                continue  # withdrawn while queued: nothing to answer
            return invitation
        raise StopAsyncIteration

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop taking invitations (those queued stay for other streams); a reader
        waiting on this stream (in another task) stops at once."""
        self._closed = True
        self._inbox.wake(self._waiting)
