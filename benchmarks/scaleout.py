"""Section: many sessions in one process (default 100 sessions, 100 simulator accounts).

One simulator process with N accounts; the benchmark process opens one
``ucwa_async.Session`` per account (sign-in, application, event channel,
makeMeAvailable; at most 20 opening at once) and measures:

- memory per session: tracemalloc's traced bytes after all N are open and connected,
  minus those before, divided by N (``gc.collect()`` first);
- idle CPU per session: the process's CPU time over an idle window (every session
  holding its P-GET, keep-alive off) divided by the window and N;
- one continue (continueMessaging) on every session at once, each awaited to its
  outcome: how many connected and how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc
from typing import Any

import ucwa_async
from benchmarks.ours import pick_logs
from benchmarks.sim import SimProcess

_IDLE_WINDOW = 5.0
_OPENING = 20


async def _run(sim: SimProcess, sessions: int, idle_window: float) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    limit = asyncio.Semaphore(_OPENING)
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(user: str, password: str) -> ucwa_async.Session:
            async with limit:
                session = ucwa_async.Session(
                    sim.discovery_url,
                    auth=ucwa_async.PasswordAuth(user, password),
                    keepalive_interval=None,
                )
                return await stack.enter_async_context(session)

        started = time.perf_counter()
        opened = await asyncio.gather(*(open_one(u, p) for u, p in sim.accounts()[:sessions]))
        open_seconds = time.perf_counter() - started
        await asyncio.gather(*(s.wait_connected(timeout=30) for s in opened))
        await asyncio.sleep(0.5)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        connected = sum(1 for s in opened if s.channel_state is ucwa_async.ChannelStatus.CONNECTED)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle_window)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        logs = await asyncio.gather(*(pick_logs(s) for s in opened))

        async def one(session: ucwa_async.Session, im_log: Any) -> str:
            invitation = await session.continue_messaging(im_log, message="scale-out")
            return str((await invitation.wait(timeout=60)).state)

        started = time.perf_counter()
        states = await asyncio.gather(*(one(s, lg[0]) for s, lg in zip(opened, logs, strict=True)))
        continue_seconds = time.perf_counter() - started
    return {
        "sessions": sessions,
        "open_seconds": open_seconds,
        "connected": connected,
        "bytes_per_session": (after - before) / sessions,
        "idle_cpu_percent_per_session": 100 * cpu / wall / sessions,
        "idle_window_s": wall,
        "continues_connected": sum(1 for s in states if s == "Connected"),
        "continue_all_seconds": continue_seconds,
    }


def measure(*, sessions: int, idle_window: float = _IDLE_WINDOW) -> dict[str, Any]:
    with SimProcess(users=sessions, max_events_per_batch=500) as sim:
        return asyncio.run(_run(sim, sessions, idle_window))
