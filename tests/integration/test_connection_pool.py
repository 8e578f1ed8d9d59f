"""The event channel's P-GET never queues behind ordinary requests in the connection pool.

If it did, the server would see no pending P-GET while a burst of POSTs waits for a
connection, and answer CallbackChannelError to them (a self-inflicted reconnect storm).
"""

from __future__ import annotations

import asyncio

import aiohttp

from ucwa_async._http import _ordinary_slots
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import SessionFactory


async def test_burst_larger_than_pool_never_starves_the_channel(
    make_session: SessionFactory,
) -> None:
    config = SimulatorConfig(completion_delay=0.01, channel_grace=0.2)
    async with UcwaSimulator(config=config) as sim:
        connector = aiohttp.TCPConnector(limit=6)
        async with (
            aiohttp.ClientSession(connector=connector) as borrowed,
            make_session(sim, http_session=borrowed) as session,
        ):
            logs = await session.conversation_logs()
            # Slow continue POSTs: 40 of them through 4 free connections take
            # ~2 s, far longer than the simulator's 0.2 s channel grace.
            sim.faults.latency(0.2, target="continue")
            invitations = await asyncio.gather(
                *(
                    session.continue_messaging(logs[i % len(logs)], message=f"m{i}")
                    for i in range(40)
                )
            )
            results = await asyncio.gather(*invitations)
            assert len(results) == 40
            assert all(r.state == "Connected" for r in results)
            assert session.stats.callback_channel_retries == 0
            assert sim.counters.callback_channel_errors == 0


async def test_ordinary_slots_follow_the_connector_limits() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as unlimited:
        assert _ordinary_slots(unlimited) is None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as ten:
        slots = _ordinary_slots(ten)
        assert slots is not None
        assert slots._value == 8
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=5)
    async with aiohttp.ClientSession(connector=connector) as per_host:
        slots = _ordinary_slots(per_host)
        assert slots is not None
        assert slots._value == 3
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as tiny:
        slots = _ordinary_slots(tiny)
        assert slots is not None
        assert slots._value == 1
