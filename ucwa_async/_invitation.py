"""``Invitation``: the handle a continue POST returns, an ``asyncio.Future``.

An ``asyncio.Future`` subclass, resolved exactly once by the session (event channel,
timeout, cancel or close), so ``asyncio.wait``, ``as_completed``, ``gather``, ``shield``
and ``wait_for`` take it as it is.

Two deliberate differences from a plain future:

- awaiting is shielded: cancelling the task that awaits (an ``asyncio.timeout`` around
  ``await invitation``) does not cancel the invitation, so another task or a later
  ``await`` still gets the outcome; ``cancel()`` is the explicit way to end it;
- ``cancel()`` behaves like ``Task.cancel()``: it *requests* the cancel (the session POSTs
  the invitation's ``cancel`` link in the background) and the invitation ends when the
  server has answered — cancelled, or with the outcome the server reported meanwhile.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ucwa_async._core.errors import InvitationTimeoutError, UcwaError
from ucwa_async._outcome import OutcomeFuture

if TYPE_CHECKING:
    from ucwa_async._conversation import Conversation

__all__ = ["Invitation"]

T = TypeVar("T")


class Invitation(OutcomeFuture[T]):
    """A pending ``messagingInvitation`` or ``phoneAudioInvitation``: an ``asyncio.Future``.

    ``resource`` is the final invitation resource once connected (None until then);
    ``state`` follows the events while it is pending (None until one says a state:
    link-only events say none before the end). ``kind`` is the invitation
    resource's rel (``"messagingInvitation"`` or ``"phoneAudioInvitation"``);
    ``modality`` says the same in the words of ``IncomingInvitation.kind`` and
    ``Conversation.kind``: ``"messaging"`` or ``"phoneAudio"``.

    ``await invitation`` (same as ``await invitation.wait()``) returns the final
    invitation resource when it connected, or raises ``InvitationFailedError``
    (``.reason`` is the server's reason), ``InvitationTimeoutError``,
    ``InvitationLostError``, ``SessionClosedError``, ``ChannelFailedError``, or
    ``asyncio.CancelledError`` once cancelled. ``done()``, ``result()``, ``exception()``,
    ``cancelled()`` and the done callbacks are the ``asyncio.Future`` ones; only the
    session sets the outcome (``set_result``/``set_exception`` raise, as on a Task).
    """

    __slots__ = (
        "_cancel_href",
        "_cancel_request",
        "_canceller",
        "_conversation_factory",
        "_deadline",
        "href",
        "kind",
        "operation_id",
        "resource",
        "state",
    )

    def __init__(
        self,
        *,
        operation_id: str,
        kind: str,
        loop: asyncio.AbstractEventLoop,
        canceller: Callable[[Invitation[Any], str | None], asyncio.Future[None] | None],
    ) -> None:
        super().__init__(loop=loop)
        self.operation_id = operation_id
        self.kind = kind
        self.href: str | None = None
        self.state: str | None = None
        self.resource: T | None = None
        self._cancel_href: str | None = None
        self._canceller = canceller
        # Set by the session: turns the connected resource into a Conversation.
        self._conversation_factory: Callable[[Invitation[Any], Any], Conversation] | None = None
        self._cancel_request: asyncio.Future[None] | None = None
        self._deadline: float | None = None  # loop time of its timeout (the session's heap)

    @property
    def modality(self) -> Literal["messaging", "phoneAudio"]:
        """``"messaging"`` or ``"phoneAudio"``: what the invitation is for, in the words of
        ``IncomingInvitation.kind`` and ``Conversation.kind`` (``kind`` is the rel)."""
        return "phoneAudio" if self.kind == "phoneAudioInvitation" else "messaging"

    def __repr__(self) -> str:
        return (
            f"<Invitation {self.kind} operation_id={self.operation_id!r} "
            f"href={self.href!r} state={self.state!r} done={self.done()}>"
        )

    def cancel(self, msg: Any | None = None) -> bool:
        """Request the cancel of the invitation, on the server too. Synchronous.

        Returns False if the invitation already has an outcome (or the session can no
        longer send the cancel), True if a cancel is under way. Like ``Task.cancel()``,
        the invitation ends when the server has answered: ``cancelled()`` is then True
        and awaiting raises ``asyncio.CancelledError`` — unless the server reported
        another outcome meanwhile (``Declined``, ``Connected``...), which is kept. If the
        cancel request fails, the invitation stays pending and a warning is logged;
        ``await cancel_outcome()`` tells which of these happened. Concurrent calls share
        one request.
        """
        if self.done():
            return False
        request = self._canceller(self, None if msg is None else str(msg))
        if request is None:
            return False
        self._cancel_request = request
        return True

    async def cancel_outcome(self) -> bool:
        """Wait for the cancel that ``cancel()`` requested: True if the invitation ended
        cancelled, False if it ended otherwise (or no cancel was requested while it was
        pending). Raises the error the cancel request failed with (a ``UcwaError``) if
        the invitation is still pending because of it."""
        request = self._cancel_request
        if request is not None:
            try:
                await asyncio.shield(request)
            except Exception:
                if not self.done():
                    raise
        return self.cancelled()

    def _wait_timed_out(self, timeout: float) -> BaseException:
        return InvitationTimeoutError(
            f"no outcome for invitation {self.operation_id} within this wait's {timeout:g} s;"
            " it is still pending (wait again, or cancel() it)",
            href=self.href,
            operation_id=self.operation_id,
        )

    async def conversation(self, timeout: float | None = None) -> Conversation:
        """Wait like ``await invitation``, then return the ``ucwa_async.Conversation`` it
        connected (the same object while it lasts).

        Raises what ``await invitation`` raises (``InvitationFailedError`` when declined,
        ...). ``timeout`` bounds the whole call, as ``wait(timeout)`` does: when it passes
        first, ``InvitationTimeoutError`` is raised and the invitation stays pending."""
        loop = self.get_loop()
        started = loop.time()
        resource = await self.wait(timeout)
        factory = self._conversation_factory
        if factory is None:
            raise UcwaError("this invitation is not attached to a session's conversations")
        conversation = factory(self, resource)
        # Its conversation's Connected may have come link-only just before the completed
        # event (SendAnIM step 6), its GET still under way: waited for in what is left of
        # the timeout (best effort: the conversation is returned all the same).
        left = None if timeout is None else max(0.0, started + timeout - loop.time())
        await conversation._settle(left)
        return conversation

    # -- used by the session only ----------------------------------------------------

    def _set_deadline(self, when: float) -> None:
        self._deadline = when

    def _cancel_target(self) -> str | None:
        """The cancel link an event gave ("" in ``_cancel_href``: this href + /cancel)."""
        if self._cancel_href == "" and self.href is not None:
            return self.href + "/cancel"
        return self._cancel_href or None

    def _progress(self, state: str | None, cancel_href: str | None = None) -> None:
        # Only the state and the cancel link are kept while pending, not the whole
        # resource: with 10 000 invitations in flight that is most of their memory.
        if self.done():
            return
        if state:
            self.state = sys.intern(state)  # a handful of values, 10 000 invitations
        if cancel_href is not None:
            self._cancel_href = cancel_href

    def _succeed(self, resource: T, state: str | None) -> bool:
        if self.done():
            return False
        self.resource = resource
        self.state = state or self.state
        self._stop_timer()
        self._resolve(resource)
        return True

    def _fail(self, error: BaseException, state: str | None = None) -> bool:
        if self.done():
            return False
        if state:
            self.state = state
        self._stop_timer()
        self._reject(error)
        return True

    def _cancel_local(self, msg: str | None = None) -> bool:
        if self.done():
            return False
        self.state = "Cancelled"
        self._stop_timer()
        return super().cancel(msg)

    def _stop_timer(self) -> None:
        self._deadline = None
