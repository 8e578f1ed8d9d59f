"""``Invitation``: the awaitable handle a continue POST returns.

One ``asyncio.Future`` per invitation, resolved exactly once by the session
(event channel, timeout, cancel or close). Awaiting is shielded: cancelling the
task that awaits does not cancel the invitation itself, so another task (or a
later ``await``) still gets the outcome. ``cancel()`` is the explicit way to
end it, on the server too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ucwa_async._core.errors import InvitationTimeoutError, UcwaError

if TYPE_CHECKING:
    from ucwa_async._conversation import Conversation

__all__ = ["Invitation"]

T = TypeVar("T")


class Invitation(Generic[T]):
    """A pending ``messagingInvitation`` or ``phoneAudioInvitation``.

    ``resource`` is the final invitation resource once connected (None until then);
    ``state`` follows the events while it is pending.

    ``await invitation`` (same as ``await invitation.result()``) returns the
    final invitation resource when it connected, or raises
    ``InvitationFailedError`` (``.reason`` is the server's reason),
    ``InvitationTimeoutError``, ``InvitationLostError``, ``SessionClosedError``,
    or ``asyncio.CancelledError`` after ``cancel()``.
    """

    __slots__ = (
        "_cancel_href",
        "_canceller",
        "_conversation_factory",
        "_future",
        "_timer",
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
        canceller: Callable[[Invitation[Any]], Awaitable[object]],
    ) -> None:
        self.operation_id = operation_id
        self.kind = kind
        self.href: str | None = None
        self.state: str | None = None
        self.resource: T | None = None
        self._cancel_href: str | None = None
        self._canceller = canceller
        # Set by the session: turns the connected resource into a Conversation.
        self._conversation_factory: Callable[[Invitation[Any], Any], Conversation] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._future: asyncio.Future[T] = loop.create_future()
        # Mark the outcome as retrieved: a bot that never awaits a failed
        # invitation must not get "exception was never retrieved" noise.
        self._future.add_done_callback(_consume_exception)

    def __repr__(self) -> str:
        return (
            f"<Invitation {self.kind} operation_id={self.operation_id!r} "
            f"href={self.href!r} state={self.state!r} done={self.done()}>"
        )

    def __await__(self) -> Generator[Any, None, T]:
        return self.result().__await__()

    def done(self) -> bool:
        """True once the invitation has an outcome (of any kind)."""
        return self._future.done()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    async def result(self, timeout: float | None = None) -> T:
        """Wait for the outcome; ``timeout`` bounds this wait only.

        If ``timeout`` passes first, ``InvitationTimeoutError`` is raised and
        the invitation stays pending (its own ``invitation_timeout`` still runs).
        """
        if timeout is None:
            return await asyncio.shield(self._future)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._future)
        except TimeoutError:
            if self._future.done():
                return self._future.result()
            raise InvitationTimeoutError(
                f"no outcome for invitation {self.operation_id} within {timeout:g} s",
                href=self.href,
                operation_id=self.operation_id,
            ) from None

    async def conversation(self, timeout: float | None = None) -> Conversation:
        """Wait like ``await invitation`` (``timeout`` as for ``result``), then return the
        ``ucwa_async.Conversation`` it connected (the same object while it lasts)."""
        resource = await self.result(timeout)
        factory = self._conversation_factory
        if factory is None:
            raise UcwaError("this invitation is not attached to a session's conversations")
        return factory(self, resource)

    async def cancel(self) -> bool:
        """Cancel the invitation on the server (POST its ``cancel`` link).

        Returns False if it had already ended (or the server's own outcome arrived
        before the cancel took effect: that outcome is kept). After a successful
        cancel, awaiting the invitation raises ``asyncio.CancelledError``. Concurrent
        calls share one cancel request and return the same answer.
        """
        if self._future.done():
            return False
        await self._canceller(self)
        # The session may have ended it already (a cancel shared by several callers).
        return self._cancel_local() or self._future.cancelled()

    # -- used by the session only -------------------------------------------------

    def _set_timer(self, handle: asyncio.TimerHandle) -> None:
        self._timer = handle

    def _progress(self, state: str | None, cancel_href: str | None = None) -> None:
        # Only the state and the cancel link are kept while pending, not the whole
        # resource: with 10 000 invitations in flight that is most of their memory.
        if self._future.done():
            return
        if state:
            self.state = state
        if cancel_href is not None:
            self._cancel_href = cancel_href

    def _succeed(self, resource: T, state: str | None) -> bool:
        if self._future.done():
            return False
        self.resource = resource
        self.state = state or self.state
        self._stop_timer()
        self._future.set_result(resource)
        return True

    def _fail(self, error: BaseException, state: str | None = None) -> bool:
        if self._future.done():
            return False
        if state:
            self.state = state
        self._stop_timer()
        self._future.set_exception(error)
        return True

    def _cancel_local(self) -> bool:
        if self._future.done():
            return False
        self.state = "Cancelled"
        self._stop_timer()
        return self._future.cancel()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
