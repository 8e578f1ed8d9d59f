"""Fixtures for integration tests: the Session against the real simulator, in both wires.

Every integration test takes ``wire_format`` and so runs once per wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import ucwa_async
from ucwa_async import Backoff
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import SessionFactory


@pytest.fixture(params=["json", "xml"])
def wire_format(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_session(wire_format: str) -> SessionFactory:
    """Build (not open) a Session for a simulator, with test-friendly defaults."""

    def factory(sim: UcwaSimulator, **overrides: Any) -> ucwa_async.Session:
        options: dict[str, Any] = {
            "wire_format": wire_format,
            "invitation_timeout": 10.0,
            "request_timeout": 5.0,
            "connect_timeout": 10.0,
            "keepalive_interval": None,
            "backoff": Backoff(base=0.01, cap=0.2),
        }
        options.update(overrides)
        return ucwa_async.Session(
            sim.discovery_url,
            auth=ucwa_async.PasswordAuth(sim.username, sim.password),
            **options,
        )

    return factory


@pytest.fixture
async def simulator() -> AsyncIterator[UcwaSimulator]:
    """A default simulator (fast completions)."""
    async with UcwaSimulator(config=SimulatorConfig(completion_delay=0.01), seed=0) as sim:
        yield sim


@pytest.fixture
def no_leftover_tasks() -> Callable[[], None]:
    """Call at the end of a test: asserts no task but the current one is alive."""

    def check() -> None:
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert others == [], f"tasks left behind: {others}"

    return check
