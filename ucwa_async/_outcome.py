"""``OutcomeFuture``: what an invitation and a sent message share as handles.

An ``asyncio.Future`` resolved exactly once by the session, so ``asyncio.wait``,
``as_completed``, ``gather`` and ``shield`` take it as it is; awaiting it is shielded (the
awaiting task's cancellation never reaches the operation); ``result()`` without an
argument is ``Future.result()``; only the session sets the outcome.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from typing import Any, TypeVar, overload

__all__ = [
    "MAX_LOOKUPS",
    "UNANSWERED_GRACE",
    "OutcomeFuture",
    "check_wait_timeout",
    "consume_exception",
    "look_up_unclaimed",
    "shielded",
]

T = TypeVar("T")

UNANSWERED_GRACE = 2.0
"""How long an operation whose POST got no answer (the connection dropped, timed out)
waits for the event channel to name its operationId before its call raises: if the
channel does, the server acted, and the call returns its handle as if the 201 had come."""

MAX_LOOKUPS = 8
"""At most this many unclaimed resources are read (GET) while one operation waits for
the channel to name it."""
_LOOKUP_STEP = 0.05  # seconds between two looks at what the channel brought meanwhile


async def look_up_unclaimed(
    named: asyncio.Future[None],
    candidates: Callable[[], Iterable[str]],
    is_ours: Callable[[str], Awaitable[bool]],
    found: Callable[[str], None],
    stop: Callable[[], bool] = lambda: False,
    others: Callable[[], Iterable[str]] = lambda: (),
) -> None:
    """Until ``named`` is done (or ``stop()``): read the hrefs ``candidates()`` gives
    (link-only events nobody claimed carry no operationId), each once and
    ``MAX_LOOKUPS`` at most; ``found`` the one ``is_ours``. ``candidates()`` is asked
    again after each read (what others read meanwhile is not read twice), and every
    ``_LOOKUP_STEP`` when there is nothing to read; the caller bounds the whole wait
    (``UNANSWERED_GRACE``). ``others()``: hrefs that cannot be the caller's but may be
    another's (its reader binds them), read first, with ``MAX_LOOKUPS`` of their own:
    they never spend the caller's."""
    read: set[str] = set()
    own = spare = 0
    while not named.done() and not stop():
        href = None
        if spare < MAX_LOOKUPS:
            href = next((h for h in others() if h not in read), None)
            spare += href is not None
        if href is None and own < MAX_LOOKUPS:
            href = next((h for h in candidates() if h not in read), None)
            own += href is not None
        if href is not None:
            read.add(href)
            if await is_ours(href):
                found(href)
            continue
        await asyncio.wait([named], timeout=_LOOKUP_STEP)


_NO_TIMEOUT: Any = object()  # result() without an argument: the synchronous Future form


def check_wait_timeout(timeout: object) -> None:
    """A wait's ``timeout``: None or a number of seconds (0 or less: no wait, as
    ``asyncio.timeout``); anything else would fail inside asyncio with an operator error."""
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")


def consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark an outcome as retrieved: a future nobody awaits must not log "never retrieved"."""
    if not future.cancelled():
        future.exception()


def _until_done(future: asyncio.Future[Any]) -> Generator[Any, None, None]:
    """Wait for ``future`` without holding it: the awaiting task waits on a future of its
    own, so cancelling the task leaves ``future`` alone (``asyncio.shield``'s effect,
    without its outer future and callback pair: this runs for every awaited operation)."""
    waiter = future.get_loop().create_future()

    def wake(_done: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    try:
        yield from waiter
    finally:
        if not future.done():
            future.remove_done_callback(wake)


@types.coroutine
def shielded(future: asyncio.Future[T]) -> Generator[Any, None, T]:
    """``await shielded(future)``: ``await asyncio.shield(future)``, cheaper (see
    ``_until_done``); the future's result or exception."""
    if not future.done():
        yield from _until_done(future)
    return future.result()


class OutcomeFuture(asyncio.Future[T]):
    """Base of ``Invitation`` and ``OutgoingMessage`` (see the module docstring)."""

    __slots__ = ()

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)

    def __await__(self) -> Generator[Any, None, T]:
        # Shielded: the awaiting task never holds the future itself, so cancelling that
        # task (asyncio.timeout around the await) does not cancel the operation.
        if not self.done():
            yield from _until_done(self)
        return asyncio.Future.result(self)

    __iter__ = __await__

    @overload
    def result(self) -> T: ...

    @overload
    def result(self, timeout: float | None) -> Coroutine[Any, Any, T]: ...

    def result(self, timeout: float | None = _NO_TIMEOUT) -> T | Coroutine[Any, Any, T]:
        """The outcome, now (``Future.result()``), or raises the operation's error,
        ``asyncio.CancelledError``, or ``asyncio.InvalidStateError`` while it is pending.

        ``result(timeout)`` *with* an argument is the awaitable of earlier versions, kept
        for compatibility: ``await handle.result(timeout=5)`` is ``await handle.wait(5)``.
        """
        if timeout is _NO_TIMEOUT:
            return super().result()
        return self.wait(timeout)

    async def wait(self, timeout: float | None = None) -> T:
        """Wait for the outcome; ``timeout`` bounds this wait only.

        If ``timeout`` passes first, the handle's timeout error is raised and the operation
        stays pending (its own timeout still runs). Cancelling the waiting task does not
        cancel the operation.
        """
        check_wait_timeout(timeout)
        if self.done():
            return super().result()
        if timeout is None:
            return await self
        try:
            async with asyncio.timeout(timeout):
                return await self
        except TimeoutError:
            if self.done():
                return super().result()
            raise self._wait_timed_out(timeout) from None

    def set_result(self, result: T, /) -> None:
        raise RuntimeError(f"the outcome of {type(self).__name__} is set by its session only")

    def set_exception(self, exception: type | BaseException, /) -> None:
        raise RuntimeError(f"the outcome of {type(self).__name__} is set by its session only")

    # -- used by the session only ----------------------------------------------------

    def _resolve(self, result: T) -> None:
        asyncio.Future.set_result(self, result)

    def _reject(self, error: BaseException) -> None:
        asyncio.Future.set_exception(self, error)
        # An outcome nobody awaits must not log "exception was never retrieved"; this
        # instead of a done-callback per future (10 000 pending: a list, a tuple and a
        # context copy each).
        self._log_traceback = False

    def _wait_timed_out(self, timeout: float) -> BaseException:
        """The error ``wait(timeout)`` raises when ``timeout`` passes first."""
        raise NotImplementedError
