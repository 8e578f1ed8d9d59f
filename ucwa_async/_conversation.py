"""``Conversation``: a live conversation of the session, and ``MessageStream``.

A thin shell over ``_core.conversation.ConversationState`` (what the events said)
and the session's ``ConversationTable`` (which does the requests). Incoming messages
are logged by the state from the moment it exists (``MessageLog``: exactly once, in
server order, bounded); each ``messages()`` stream is a reader of that log, so several
streams each see every message.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Literal

from ucwa_async._core.chat import Message, Participant
from ucwa_async._core.conversation import FINAL_ENDS, ConversationEndReason, ConversationState
from ucwa_async._core.errors import ConversationEndedError
from ucwa_async._core.message_log import MessageLog, Reader
from ucwa_async._outcome import check_wait_timeout
from ucwa_async._outgoing import OutgoingMessage
from ucwa_async._stream import ClosingStream

if TYPE_CHECKING:
    from ucwa_async._conversations import ConversationTable

__all__ = ["Conversation", "MessageStream"]


class Conversation:
    """A conversation this session takes part in.

    ``href``, ``kind`` (``"messaging"`` or ``"phoneAudio"``: how it was joined),
    ``subject``, ``state`` (``"Connecting"``, ``"Connected"``, ``"Disconnected"``...),
    ``participants`` (the remote ones, kept up to date by the event channel), ``ended``
    (None, or why it ended).
    """

    def __init__(
        self,
        table: ConversationTable,
        state: ConversationState,
        kind: Literal["messaging", "phoneAudio"],
    ) -> None:
        self._table = table
        self._state = state
        self.kind: Literal["messaging", "phoneAudio"] = kind
        """``"messaging"`` or ``"phoneAudio"``: how the conversation was joined."""
        self._waiters: set[asyncio.Future[None]] = set()
        self._ended: asyncio.Future[ConversationEndReason] = (
            asyncio.get_running_loop().create_future()
        )
        self._leave_lock = asyncio.Lock()
        # The stop POSTs a cancelled leave() or hang_up() left running (see leave()).
        self._stopping: asyncio.Future[None] | None = None
        # The sendMessage POSTs of send()s whose callers gave up, still running: a later
        # send's POST waits for them (see the table's send()).
        self._send_behind: set[asyncio.Future[OutgoingMessage]] = set()
        self._abandoned = False
        # Handed to a caller (accept() or Invitation.conversation() returned it): until
        # then, an accept that ends without returning it releases it (see the table).
        self._returned = False
        if state.ended is not None:
            self._ended.set_result(state.ended)

    def __repr__(self) -> str:
        return f"<Conversation {self.href!r} state={self.state!r} ended={self.ended}>"

    @property
    def href(self) -> str:
        return self._state.href

    @property
    def subject(self) -> str | None:
        return self._state.subject

    @property
    def state(self) -> str | None:
        if self._state.ended is not None and self._state.state != "Disconnected":
            return "Disconnected"
        return self._state.state

    @property
    def participants(self) -> list[Participant]:
        return list(self._state.participants.values())

    @property
    def typing(self) -> list[Participant]:
        """Remote participants typing now (typingParticipants events)."""
        state = self._state
        return [state.participants[k] for k in state.typing if k in state.participants]

    @property
    def ended(self) -> ConversationEndReason | None:
        return self._state.ended

    @property
    def messages_dropped(self) -> int:
        """Incoming messages lost to the buffer's bound (see ``MessageStream``)."""
        return self._state.messages.dropped

    async def send(
        self, text: str, html: bool = False, *, timeout: float | None = None
    ) -> OutgoingMessage:
        """Send a message (``html=True``: ``text`` is HTML); returns after the server's
        201. Await the result for its delivery (``MessageFailedError``,
        ``MessageTimeoutError`` after ``timeout`` seconds from the 201, by default the
        session's ``invitation_timeout``). Raises ``ConversationEndedError`` once it is
        over. A CallbackChannelError reconnects the event channel and sends again with
        the same operationId (bounded by ``Retries.callback_channel``).

        A caller that gives up during the POST (cancelled, an outer timeout) gets its
        ``CancelledError`` (or the timeout's ``TimeoutError``), never a handle, but the
        message is not lost track of: the session finishes the POST (bounded by the
        request timeout, cut short by the session's close), and a message the server
        took is tracked as any other (``stats.messages_sent``, settled from its events:
        ``messages_delivered`` / ``messages_failed`` / ``messages_timed_out``, ended
        with its conversation). If that POST fails, the failure is logged (WARNING). A
        later send() in the conversation POSTs after it has its answer (in order).

        A POST whose answer is lost (``TransportError`` with ``request_sent`` not False)
        waits up to 2 s for the event channel to name the message, and returns it if it
        does; otherwise the ``TransportError`` is raised: the message may still have
        been said, so a retry may say it twice. Once the event channel has failed for
        good, a message still waiting for its outcome raises ``ChannelFailedError``."""
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        if timeout is not None and not _positive(timeout):
            # Before the POST: 0 meant the default, a negative one expired at once, a str
            # raised after the message had gone out.
            raise ValueError(f"timeout must be a positive number or None, got {timeout!r}")
        return await self._table.send(self, text, html=html, timeout=timeout)

    def messages(self) -> MessageStream:
        """Incoming messages, in server order, each once: an async iterator and async
        context manager that ends when the conversation ends."""
        self._raise_if_unusable()
        return MessageStream(self)

    async def set_typing(self) -> None:
        """Tell the others that this user is typing (setIsTyping)."""
        await self._table.post_link(self, "setIsTyping")

    async def hang_up(self) -> None:
        """End the phone call (stopPhoneAudio). Unlike ``leave()`` it is not idempotent:
        ``ConversationError`` if there is no call, ``ConversationEndedError`` once over.
        As for ``leave()``, a caller that gives up (cancelled, an outer timeout) does not
        leave the call connected on the server: the session finishes the request, and a
        request whose answer is lost returns if the event channel shows the call ended
        within 2 s (else its ``TransportError`` is raised and the call goes on here)."""
        await self._table.hang_up(self)

    async def leave(self) -> None:
        """Leave the conversation (stopMessaging, stopPhoneAudio); idempotent.

        The conversation is over here once this returns or raises: if the server does not
        answer in time (the session's request timeout) or refuses, the typed error is
        raised, and its streams have ended all the same. A caller that gives up
        (cancelled, an outer timeout) does not leave the conversation connected on the
        server: the session finishes the requests (and logs their failure). A later
        ``leave()`` then waits for them, as a repeated close waits for the first one, and
        raises their error if they failed; after that, ``leave()`` returns at once.

        A request whose answer is lost (``TransportError`` with ``request_sent`` not False:
        the connection dropped, or it timed out) may have been taken: ``leave()`` waits up
        to 2 s for the event channel to show the conversation (or the modality) ended,
        and returns if it does; otherwise it raises the ``TransportError``. Either way the
        conversation ends ``LEFT`` (an end the server says while the request is under way
        is this leave's)."""
        async with self._leave_lock:
            if self._state.ended is None:
                await self._table.leave(self)
            else:
                await self._table.stopped(self)

    async def wait_ended(self, timeout: float | None = None) -> ConversationEndReason:
        """Wait until the conversation is over; returns why (a ``ConversationEndReason``).

        If ``timeout`` seconds pass first, the builtin ``TimeoutError`` is raised (as
        ``asyncio.timeout``) and the conversation goes on."""
        check_wait_timeout(timeout)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._ended)

    # -- used by the session only -------------------------------------------------

    async def _settle(self, timeout: float | None = None) -> None:
        """Wait (bounded) for the GETs of this conversation's link-only events still under
        way: an invitation's completed event may come after them in the batch."""
        await self._table.reads_landed(self._state.key, timeout)

    def _raise_if_unusable(self) -> None:
        self._table.ensure_usable()

    def _changed(self) -> None:
        for waiter in tuple(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        if self._state.ended is not None and not self._ended.done():
            self._ended.set_result(self._state.ended)

    async def _wait_change(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)

    def _drained(self) -> bool:
        """Over, and no message announced before the end still being read (a link-only
        message's GET): the streams may end. A closed session, a lost application or a
        failed channel ends them at once (nothing more will be read)."""
        if self._abandoned or self._state.ended in FINAL_ENDS:
            return True
        return not self._state.messages.holding

    def _abandon(self) -> None:
        """The session closed: nothing more will be read; the streams end now."""
        self._abandoned = True
        self._changed()

    def _ended_error(self) -> ConversationEndedError:
        reason = self._state.ended or ConversationEndReason.DISCONNECTED
        return ConversationEndedError(
            f"the conversation is over ({reason.value})", reason=reason.value, href=self.href
        )


def _close_reader(log: MessageLog[Message], reader: Reader, ready: list[Message]) -> None:
    """A stream's close (or its collection): what it had not yielded is left for the
    next stream."""
    if not reader.closed:
        reader.next_seq -= len(ready)
    log.close_reader(reader)


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


class MessageStream(ClosingStream):
    """``async with conversation.messages() as messages: async for message in messages``.

    Yields :class:`ucwa_async.Message` in server order, each once; ends when the
    conversation ends (remote left, deleted, ``leave()``, application lost, session
    closed). The conversation buffers what arrives from the moment it exists, bounded:
    past ``Limits``' message buffer, the oldest is dropped and counted (``missed`` on
    the stream, ``messages_dropped`` on the conversation). A stream opened after
    another one was closed starts where the closed one stopped.
    """

    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation
        self._log = conversation._state.messages
        self._reader: Reader = self._log.open_reader()
        self._ready: list[Message] = []  # changed in place: the finalizer holds it
        self._reading = False
        # A stream dropped without close() (``await anext(conversation.messages())``)
        # is closed when collected: else it stays a reader of the log for as long as the
        # conversation lasts (one more per such call), and the next stream starts over.
        self._finalizer = weakref.finalize(
            self, _close_reader, self._log, self._reader, self._ready
        )

    @property
    def missed(self) -> int:
        """Messages this stream skipped because the buffer had dropped them."""
        return self._reader.missed

    async def __anext__(self) -> Message:
        if self._reading:
            raise RuntimeError("this MessageStream is already being read by another task")
        self._reading = True
        try:
            while not self._ready:
                if self._reader.closed:
                    raise StopAsyncIteration
                self._ready.extend(self._log.read(self._reader))
                if self._ready:
                    break
                if self._conversation._state.ended is not None and self._conversation._drained():
                    self.close()
                    raise StopAsyncIteration
                await self._conversation._wait_change()
            return self._ready.pop(0)
        finally:
            self._reading = False

    def close(self) -> None:
        """Stop reading; iteration ends (what it had not yielded is left for the next
        stream)."""
        self._finalizer()
        self._ready.clear()
        if self._reading:
            self._conversation._changed()  # a reader in another task stops at once
