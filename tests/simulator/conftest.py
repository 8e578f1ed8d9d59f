"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import Client, MakeClient


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_client(http: aiohttp.ClientSession) -> AsyncIterator[MakeClient]:
    """``await make_client(config=..., wire=..., signed_in=True)`` -> Client on a fresh sim."""
    sims: list[UcwaSimulator] = []

    async def make(
        config: SimulatorConfig | None = None,
        *,
        wire: str = "json",
        signed_in: bool = True,
        seed: int = 0,
    ) -> Client:
        sim = UcwaSimulator(config=config or SimulatorConfig(pget_timeout_cap=0.3), seed=seed)
        await sim.start()
        sims.append(sim)
        client = Client(http, sim, wire)
        if signed_in:
            await client.sign_in()
        return client

    try:
        yield make
    finally:
        for sim in sims:
            await sim.stop()
