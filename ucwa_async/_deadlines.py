"""``Deadlines``: many deadlines, one loop timer.

10 000 pending invitations with a ``call_later`` handle each cost 10 000 timer handles
(and the loop's heap entries); here each costs one ``(when, key)`` tuple in a heap, and
one ``TimerHandle`` waits for the earliest. A deadline that no longer matters (the
invitation ended) is not removed: the owner's ``live`` says so when it comes up, and
the heap is compacted when such entries outnumber the live ones.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

_MIN_COMPACT = 64

K = TypeVar("K", str, int)


class Deadlines(Generic[K]):
    """Calls ``expire(key, when)`` once ``when`` (loop time) has passed, for every deadline
    added and still ``live(key, when)``."""

    __slots__ = ("_compact_at", "_expire", "_heap", "_live", "_timer", "_timer_at")

    def __init__(
        self, expire: Callable[[K, float], None], live: Callable[[K, float], bool]
    ) -> None:
        self._expire: Callable[[K, float], None] = expire
        self._live: Callable[[K, float], bool] = live
        self._heap: list[tuple[float, K]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._compact_at = _MIN_COMPACT

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, key: K, when: float) -> None:
        if len(self._heap) >= self._compact_at:
            self._heap = [entry for entry in self._heap if self._live(entry[1], entry[0])]
            heapq.heapify(self._heap)
            self._compact_at = max(_MIN_COMPACT, 2 * len(self._heap))
        heapq.heappush(self._heap, (when, key))
        if self._timer is None or when < self._timer_at:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap:
            self._timer_at = self._heap[0][0]
            self._timer = asyncio.get_running_loop().call_at(self._timer_at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        heap = self._heap
        due: list[tuple[float, K]] = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap))
        self._arm()
        for when, key in due:
            if self._live(key, when):
                self._expire(key, when)
