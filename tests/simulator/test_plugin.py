"""The pytest plugin's fixture, as a user testing their own bot would use it."""

from __future__ import annotations

import aiohttp
import pytest

from ucwa_async.testing import UcwaSimulator


async def test_fixture_serves_discovery(ucwa_simulator: UcwaSimulator) -> None:
    assert ucwa_simulator.base_url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(ucwa_simulator.discovery_url) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["_links"]["user"]["href"].endswith("/oauth/user")
    assert ucwa_simulator.counters.requests == 1


@pytest.mark.ucwa_simulator(location_style="v1", conversation_logs=7, seed=5)
async def test_marker_configures_the_fixture(ucwa_simulator: UcwaSimulator) -> None:
    assert ucwa_simulator.config.location_style == "v1"
    assert ucwa_simulator.config.conversation_logs == 7
    assert ucwa_simulator.seed == 5
