"""Section 4: reconnect cost, from a CallbackChannelError to the retried POST's 201.

The simulator is told to answer the next continue POST with 500
ServiceFailure/CallbackChannelError; the session then abandons its P-GET, opens a
fresh one and re-POSTs as soon as that P-GET is on the wire (its headers sent: the
library's ``TraceConfig``, which a session's own ``ClientSession`` has; without it,
after ``reconnect_settle``, 0.1 s by default). Timestamps come from aiohttp's public
``TraceConfig`` hooks on a borrowed ``ClientSession`` created with ours and the
library's trace configs, so the library is not touched. The peer figure is a plain
continue POST's round trip.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Any

import aiohttp

from benchmarks.ours import open_session, pick_logs
from benchmarks.sim import SimProcess
from ucwa_async._http import sent_signal_trace


async def _run(sim: SimProcess, rounds: int) -> dict[str, Any]:
    ends: list[tuple[float, str, int]] = []
    starts: list[tuple[float, str]] = []

    async def on_start(_s: Any, _ctx: SimpleNamespace, params: Any) -> None:
        starts.append((time.perf_counter(), params.method))

    async def on_end(_s: Any, _ctx: SimpleNamespace, params: Any) -> None:
        ends.append((time.perf_counter(), params.method, params.response.status))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    costs: list[float] = []
    plain: list[float] = []
    async with (
        aiohttp.ClientSession(trace_configs=[trace, sent_signal_trace()]) as http,
        open_session(sim.discovery_url, sim.username, sim.password, http_session=http) as session,
    ):
        im_log, _phone = await pick_logs(session)
        for _ in range(rounds):
            # A plain POST first: the peer figure.
            await session.wait_connected(timeout=10)
            await asyncio.sleep(0.05)
            starts.clear()
            ends.clear()
            t0 = time.perf_counter()
            await (await session.continue_messaging(im_log, message="plain"))
            posts = [e for e in ends if e[1] == "POST"]
            plain.append(posts[0][0] - t0 if posts else float("nan"))
            # Then one that meets a CallbackChannelError.
            await session.wait_connected(timeout=10)
            await asyncio.sleep(0.05)
            await sim.acommand("callback_channel_error 1")
            ends.clear()
            await (await session.continue_messaging(im_log, message="after reconnect"))
            posts = [e for e in ends if e[1] == "POST"]
            failed = next(e[0] for e in posts if e[2] == 500)
            retried = next(e[0] for e in posts if e[2] == 201 and e[0] > failed)
            costs.append(retried - failed)
        retries = session.stats.callback_channel_retries
    return {
        "rounds": rounds,
        "callback_channel_retries": retries,
        "reconnect_settle_s": 0.1,
        "cost_ms": _ms(costs),
        "plain_post_ms": _ms(plain),
    }


def _ms(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"median": statistics.median(ms), "min": ms[0], "max": ms[-1]}


def measure(*, rounds: int) -> dict[str, Any]:
    with SimProcess() as sim:
        return asyncio.run(_run(sim, rounds))
