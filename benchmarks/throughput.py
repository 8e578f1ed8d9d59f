"""Section 1: invitations/s of ucwa_async vs the raw-aiohttp floor vs a synchronous client.

Each contender runs against its own fresh simulator process; contenders are
interleaved round by round (ours, floor, sync, ours, floor, sync, ...) so that
machine noise hits them alike, and each figure is the median of its rounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from benchmarks import floor, ours, syncclient
from benchmarks.rounds import rate_summary
from benchmarks.sim import SimProcess

Runner = Callable[[SimProcess, int, int], dict[str, float]]


def _ours(sim: SimProcess, total: int, concurrency: int) -> dict[str, float]:
    return asyncio.run(
        ours.run(
            sim.discovery_url, sim.username, sim.password, total=total, concurrency=concurrency
        )
    )


def _floor(sim: SimProcess, total: int, concurrency: int) -> dict[str, float]:
    return asyncio.run(
        floor.run(
            sim.discovery_url, sim.username, sim.password, total=total, concurrency=concurrency
        )
    )


def _sync(sim: SimProcess, total: int, concurrency: int) -> dict[str, float]:
    return syncclient.run(sim.discovery_url, sim.username, sim.password, total=total)


CONTENDERS: dict[str, Runner] = {"ours": _ours, "floor": _floor, "sync": _sync}


def measure(
    *,
    latency: float,
    total: int,
    concurrency: int,
    sync_total: int,
    rounds: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Figures for one latency: per contender the median invitations/s and every round."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    for round_no in range(rounds):
        for name, runner in CONTENDERS.items():
            n = sync_total if name == "sync" else total
            with SimProcess(latency=latency) as sim:
                result = runner(sim, n, concurrency)
            runs[name].append(result)
            log(
                f"  latency {latency * 1000:.0f} ms, round {round_no + 1}/{rounds}: "
                f"{name:5s} {result['per_second']:8.1f} invitations/s "
                f"({int(result['invitations'])} in {result['seconds']:.2f} s)"
            )
    rates = rate_summary(runs)
    medians = rates["per_second"]
    return {
        "latency_ms": latency * 1000,
        "invitations": total,
        "sync_invitations": sync_total,
        "concurrency": concurrency,
        "rounds": rounds,
        **rates,
        "ratio_ours_sync": medians["ours"] / medians["sync"],
        "ratio_floor_sync": medians["floor"] / medians["sync"],
        "runs": runs,
    }
