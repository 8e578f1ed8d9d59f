"""Helpers shared by the integration tests (import them from here, not from conftest).

A conftest is pytest's to import: importing it by dotted path (``tests.integration.conftest``)
only works when the repository root happens to be on ``sys.path`` (``python -m pytest``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import ucwa_async

SessionFactory = Callable[..., ucwa_async.Session]

EVENT_SHAPES: dict[str, dict[str, Any]] = {
    "embedded": {},
    # messagingInvitation_ref.md and message_ref.md write their events link-only, with
    # absolute hrefs: the client reads what they name; the 201s' Location absolute too.
    "link-only-absolute": {
        "embed_resources": False,
        "event_href_style": "absolute",
        "location_style": "absolute",
    },
}
"""Simulator settings per event shape (the ``shape`` fixture): a test parametrized with
``@BOTH_SHAPES`` runs with each, in each wire."""


async def until(predicate: Callable[[], bool], within: float = 5.0, step: float = 0.01) -> None:
    """Wait until ``predicate()`` holds, checking every ``step`` seconds; AssertionError
    after ``within`` seconds (every wait of a test is bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within:g} s")
        await asyncio.sleep(step)


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "aiohttp" in code.co_filename and "web_" in code.co_filename


async def assert_no_leftover_tasks(check: Callable[[], None]) -> None:
    """Run ``no_leftover_tasks`` once the simulator's connection handlers have wound down.

    The simulator runs in the test's loop: a connection the client just closed leaves
    an aiohttp *server* task finishing its cancellation for a tick or two. Only those
    are waited for (bounded); any client task still alive fails the check.
    """
    for _ in range(100):
        current = asyncio.current_task()
        if not [
            t
            for t in asyncio.all_tasks()
            if t is not current and not t.done() and _is_server_task(t)
        ]:
            break
        await asyncio.sleep(0.01)
    check()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Heartbeat:
    """A task that sleeps ``period`` again and again and measures the loop's stalls.

    ``max_busy`` is the CPU time of the loop's thread between two beats: a stall of ours,
    which another process taking the core (xdist workers on 2 cores) does not inflate;
    ``max_late`` is the wall-clock lateness of a wake-up; ``rss_growth`` the peak RSS
    over the one at the start.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self.max_late = 0.0
        self.max_busy = 0.0
        self.beats = 0
        self.rss_base = _rss()
        self.rss_peak = self.rss_base

    async def run(self) -> None:
        for _ in range(1_000_000):  # bounded: minutes at most
            before, cpu_before = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.period)
            self.max_late = max(self.max_late, time.perf_counter() - before - self.period)
            self.max_busy = max(self.max_busy, time.thread_time() - cpu_before)
            self.beats += 1
            if self.beats % 10 == 0:
                self.rss_peak = max(self.rss_peak, _rss())

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_base


@asynccontextmanager
async def heartbeat(period: float) -> AsyncIterator[Heartbeat]:
    """A ``Heartbeat`` running for the block (cancelled and awaited at its end)."""
    beat = Heartbeat(period)
    task = asyncio.create_task(beat.run())
    try:
        yield beat
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


BOTH_SHAPES = pytest.mark.parametrize("shape", list(EVENT_SHAPES))
"""Runs a test with each of :data:`EVENT_SHAPES` (the ``shape`` fixture is "embedded")."""
