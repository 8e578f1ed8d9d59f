"""Section 2: N invitations pending at once on one session (default 10 000).

The simulator holds every invitation ``Connecting`` (``--hold``) until told to release
them all in one push (:mod:`benchmarks.simproc`). Measured in the client process:

- memory: ``tracemalloc`` traced bytes after all N POSTs got their 201 and all N
  ``started`` events were processed, minus the traced bytes before the first POST,
  divided by N (``gc.collect()`` first; the benchmark's own list of N handles,
  8 bytes each, is included);
- dispatch latency, after the release: for each invitation, the time from the client
  receiving the batch that completed it (the P-GET's response read: the channel host's ``poll``
  returned) to its future's done-callback, and the same from the channel host's ``deliver``
  being called (the batch decoded and parsed). The probes wrap ``poll`` / ``deliver``
  on the session instance and add a done-callback to each invitation's future; the
  library is not changed for them.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from typing import Any

import ucwa_async
from benchmarks.floor import PHONE_NUMBER
from benchmarks.heartbeat import Heartbeat, percentile
from benchmarks.ours import open_session, pick_logs
from benchmarks.sim import SimProcess

_WAIT_STEP = 0.05


async def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    for _ in range(int(timeout / _WAIT_STEP) + 1):
        if predicate():
            return
        await asyncio.sleep(_WAIT_STEP)
    raise RuntimeError(f"timed out waiting for {what}")


async def _run(sim: SimProcess, total: int, concurrency: int) -> dict[str, Any]:
    async with open_session(
        sim.discovery_url, sim.username, sim.password, invitation_timeout=900.0
    ) as session:
        im_log, phone_log = await pick_logs(session)
        handles: list[ucwa_async.Invitation[Any]] = []
        counter = iter(range(total))

        async def worker() -> None:
            for n in counter:
                if n % 2 == 0:
                    handles.append(await session.continue_messaging(im_log, message="scale"))
                else:
                    handles.append(await session.continue_phone_audio(phone_log, PHONE_NUMBER))

        # Probe: when each P-GET's response has been read (installed before any POST, so
        # every P-GET that can carry a release goes through it).
        received: list[float] = [0.0]
        host = session._host  # the private channel-host adapter the runner calls
        assert host is not None
        orig_poll = host.poll

        async def poll(url: str, sent: Any = None) -> Any:
            response = await orig_poll(url, sent)
            received[0] = time.perf_counter()
            return response

        host.poll = poll  # type: ignore[method-assign]
        await asyncio.sleep(0)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            post_seconds = time.perf_counter() - started
            await _wait_until(
                lambda: session.stats.events_received >= total, 120, "the started events"
            )
            await asyncio.sleep(0.2)  # let the last P-GET's buffers go
            gc.collect()
            after, peak = tracemalloc.get_traced_memory()
            snapshot = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        stats = snapshot.statistics("lineno")
        top = [
            {"where": str(stat.traceback), "bytes": stat.size, "count": stat.count}
            for stat in stats[:12]
        ]
        del snapshot, stats
        if session.pending_invitations != total:
            raise RuntimeError(f"{session.pending_invitations} pending, expected {total}")

        # --- dispatch latency probes -------------------------------------------------
        arrival: dict[str, tuple[float, float]] = {}
        done_at: dict[str, float] = {}
        orig_deliver = host.deliver

        def deliver(batch: Any) -> None:
            now = time.perf_counter()
            for event in batch.events:
                if event.type == "completed" and event.operation_id:
                    arrival[event.operation_id] = (received[0], now)
            orig_deliver(batch)

        host.deliver = deliver  # type: ignore[method-assign]

        def finished(operation_id: str) -> Any:
            return lambda _future: done_at.__setitem__(operation_id, time.perf_counter())

        for handle in handles:
            handle.add_done_callback(finished(handle.operation_id))
        async with Heartbeat() as beat:
            answer = await sim.acommand("release")
            if answer != f"released {total}":
                raise RuntimeError(f"simulator answered {answer!r} to release")
            await _wait_until(lambda: len(done_at) >= total, 300, "the released invitations")
        ok = sum(1 for h in handles if not h.cancelled() and h.state == "Connected")
        from_receipt = [
            (done_at[op] - arrival[op][0]) * 1000
            for op in done_at
            if op in arrival and arrival[op][0] > 0
        ]
        from_deliver = [(done_at[op] - arrival[op][1]) * 1000 for op in done_at if op in arrival]
        batches = len(set(arrival.values()))
    return {
        "pending": total,
        "concurrency": concurrency,
        "post_seconds": post_seconds,
        "memory_bytes": after - before,
        "memory_peak_bytes": peak - before,
        "bytes_per_invitation": (after - before) / total,
        "memory_top": top,
        "connected": ok,
        "batches": batches,
        "dispatch_ms_from_receipt": _summary(from_receipt),
        "dispatch_ms_from_deliver": _summary(from_deliver),
        "heartbeat": beat.summary(),
    }


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def measure(*, total: int, concurrency: int) -> dict[str, Any]:
    with SimProcess(hold=True) as sim:
        return asyncio.run(_run(sim, total, concurrency))
