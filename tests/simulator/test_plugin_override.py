"""Overriding ``ucwa_simulator_config`` configures the fixture for a whole module."""

from __future__ import annotations

import pytest

from ucwa_async.testing import SimulatorConfig, UcwaSimulator


@pytest.fixture
def ucwa_simulator_config() -> SimulatorConfig:
    return SimulatorConfig(embed_resources=False, users={"bot@contoso.com": "s3cret"})


async def test_override_applies(ucwa_simulator: UcwaSimulator) -> None:
    assert ucwa_simulator.config.embed_resources is False
    assert (ucwa_simulator.username, ucwa_simulator.password) == ("bot@contoso.com", "s3cret")
