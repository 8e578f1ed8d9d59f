"""``EventStream``: one subscriber's view of the event channel.

A bounded queue per subscriber. The channel never waits for a subscriber:
when a queue is full the *oldest* queued item is dropped and ``dropped`` counts
it (a slow consumer loses history, never blocks invitations or other
subscribers). The stream ends after the session closes, with a final
``ChannelClosed`` item.

One stream has one reader: a second task calling ``__anext__`` while another is
waiting on the same stream gets a ``RuntimeError`` at once (as asyncio's own
stream readers do), instead of silently stealing the first reader's wake-up.
For two consumers, subscribe twice: each ``session.events()`` gets every item.

The session holds its streams weakly: a stream dropped without ``close()`` (nobody
referencing it) is unsubscribed when collected, instead of being fed, its queue full,
for as long as the session lasts. While a task waits on a stream, the session holds it
(``reading``): so is that task, which nothing else may hold (a task asyncio only
references weakly while it waits).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from ucwa_async._core.models import Event
    from ucwa_async._events import ChannelSignal

__all__ = ["ClosingStream", "EventStream"]

_END = object()


class ClosingStream:
    """What every stream of the session shares: it is its own async iterator, and an
    ``async with`` block closes it (``close()``, each stream's own) on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self


class EventStream(ClosingStream):
    """Async iterator and async context manager over session events.

    Yields ``ucwa_async.Event`` items (what the server sent) and channel
    signals (``ChannelReconnecting``, ``ChannelReconnected``, ...), in order.

    Read it from one task at a time: a concurrent second reader raises
    ``RuntimeError`` (call ``session.events()`` again for a second subscriber).
    """

    def __init__(
        self,
        *,
        maxsize: int,
        on_close: Callable[[EventStream], None],
        reading: set[EventStream] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._reading = reading  # holds this stream while a task waits on it
        self._items: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        self._ended = False
        self._closed = False
        self.dropped = 0

    async def __anext__(self) -> Event | ChannelSignal:
        if self._waiter is not None:
            raise RuntimeError(
                "this EventStream is already being read by another task; "
                "call session.events() again for a second subscriber"
            )
        while not self._items:
            if self._ended or self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            if self._reading is not None:
                self._reading.add(self)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if self._reading is not None:
                    self._reading.discard(self)
        item: Event | ChannelSignal = self._items.popleft()
        if item is _END:
            self._ended = True
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Unsubscribe; iteration ends at once."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
        self._on_close(self)
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed or self._ended

    # -- used by the session ---------------------------------------------------------

    def _push(self, item: Any) -> None:
        if self._closed:
            return
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._wake()

    def _end(self, final: Any) -> None:
        if self._closed:
            return
        self._items.append(final)
        self._items.append(_END)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
