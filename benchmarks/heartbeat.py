"""A 1 ms heartbeat task that measures how late the event loop lets it run.

``async with Heartbeat() as beat:`` runs a task that sleeps ``period`` and records, on
every wake-up, how much later than asked it woke (``lateness``, seconds). Whatever the
library does on the loop in one go (decode, parse, correlate, a GC pass it triggers)
shows up as one late beat. It also records the CPU time of the loop's thread between
two beats (``busy``): the loop's own work, which another process taking the core (on a
shared 2-core machine) does not inflate, while it does inflate the wall-clock lateness.
And it records the garbage collector's passes in the window (``gc.callbacks``): their
generation and duration. A full (generation 2) pass walks every tracked object of the
process, so its length is the heap's, not the batch's: whether one falls in the window
decides the lateness maximum.
"""

from __future__ import annotations

import asyncio
import gc
import time
from types import TracebackType
from typing import Any

_MAX_BEATS = 2_000_000  # bounded: ~30 min at 1 ms


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Heartbeat:
    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.lateness: list[float] = []
        self.busy: list[float] = []
        self.gc_passes: list[tuple[int, float]] = []  # (generation, seconds)
        self.gc_counts: tuple[int, int, int] | None = None  # gc.get_count() at the end
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif len(self.gc_passes) < _MAX_BEATS:
            self.gc_passes.append((info["generation"], time.perf_counter() - self._gc_started))

    async def _run(self) -> None:
        period = self.period
        record, record_busy = self.lateness.append, self.busy.append
        for _ in range(_MAX_BEATS):
            before, cpu_before = time.perf_counter(), time.thread_time()
            await asyncio.sleep(period)
            record(time.perf_counter() - before - period)
            record_busy(time.thread_time() - cpu_before)

    async def __aenter__(self) -> Heartbeat:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
            self.gc_counts = gc.get_count()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        ms = [v * 1000 for v in self.lateness]
        if not ms:
            return {"beats": 0}
        busy = [v * 1000 for v in self.busy]
        gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        for generation, seconds in self.gc_passes:
            gc_ms[generation].append(seconds * 1000)
        return {
            # passes per generation, the longest of each, and how far generation 2's
            # trigger had come (a full pass is considered after 10 generation-1 passes)
            "gc_passes": [len(gc_ms[g]) for g in (0, 1, 2)],
            "gc_longest_ms": [max(gc_ms[g], default=0.0) for g in (0, 1, 2)],
            "gc_counts_at_end": list(self.gc_counts) if self.gc_counts else None,
            "busy_p99_ms": percentile(busy, 99),
            "busy_max_ms": max(busy),
            "beats": len(ms),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms),
            "over_5ms": sum(1 for v in ms if v > 5),
            "over_20ms": sum(1 for v in ms if v > 20),
        }
