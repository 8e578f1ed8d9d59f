"""Section: loop responsiveness while one giant batch (default 60 000 events) is processed.

The simulator (its own process) answers one P-GET with a single batch of N valid
``added`` events (its ``giant_batch`` fault, ~8 MB of JSON) after one invitation's events end
the P-GET it holds; a 1 ms heartbeat task (:mod:`benchmarks.heartbeat`) measures its
lateness from the fault being armed until the session has counted all N events. The
release of 10 000 held invitations in 500-event batches is measured the same way in
:mod:`benchmarks.scale`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.heartbeat import Heartbeat
from benchmarks.ours import open_session, pick_logs
from benchmarks.sim import SimProcess


async def _run(sim: SimProcess, events: int) -> dict[str, Any]:
    async with open_session(sim.discovery_url, sim.username, sim.password) as session:
        await session.wait_connected(timeout=30)
        im_log, _phone = await pick_logs(session)
        received = session.stats.events_received
        async with Heartbeat() as beat:
            started = time.perf_counter()
            answer = await sim.acommand(f"giant_batch {events}")
            if answer != "armed":
                raise RuntimeError(f"simulator answered {answer!r} to giant_batch")
            # The held P-GET takes the fault only when it is answered: an invitation's
            # events end it, and the next P-GET gets the giant batch.
            invitation = await session.continue_messaging(im_log, message="wake")
            for _ in range(12_000):  # 120 s
                if session.stats.events_received >= received + events:
                    break
                await asyncio.sleep(0.01)
            else:
                raise RuntimeError("the giant batch was not processed within 120 s")
            seconds = time.perf_counter() - started
        await invitation
    return {"events": events, "seconds": seconds, "heartbeat": beat.summary()}


def measure(*, events: int) -> dict[str, Any]:
    with SimProcess() as sim:
        return asyncio.run(_run(sim, events))
