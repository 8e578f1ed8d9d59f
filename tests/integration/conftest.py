"""Fixtures for integration tests: the Session against the real simulator, in both wires.

Every integration test takes ``wire_format`` and so runs once per wire.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import ucwa_async
from ucwa_async import Backoff
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import EVENT_SHAPES, SessionFactory


class _UnreadTaskErrors(logging.Handler):
    """asyncio's reports of a task collected with its exception never read, or destroyed
    while still pending (each would mean a task without an owner who awaits it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "never retrieved" in message or "destroyed but it is pending" in message:
            self.reports.append(message[:500])


@pytest.fixture(autouse=True)
def no_unread_task_errors() -> Iterator[None]:
    """Every integration test ends with no task left unread: asyncio logs those only when
    the task is collected (a traceback cycle may keep it until a GC pass), so collect."""
    reports = _UnreadTaskErrors()
    logger = logging.getLogger("asyncio")
    logger.addHandler(reports)
    try:
        yield
        gc.collect()
    finally:
        logger.removeHandler(reports)
    assert not reports.reports, reports.reports


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
            # A fresh P-GET held this long counts as connected (default 0.1 s): every
            # open and every reconnection waits it once. The simulator answers a P-GET it
            # refuses in a millisecond or two, so 0.05 s still tells the two apart;
            # tests/integration/test_fast_reconnect.py pins the settle itself.
            "reconnect_settle": 0.05,
        }
        options.update(overrides)
        return ucwa_async.Session(
            sim.discovery_url,
            auth=ucwa_async.PasswordAuth(sim.username, sim.password),
            **options,
        )

    return factory


@pytest.fixture
def shape() -> str:
    """The event shape of ``EVENT_SHAPES`` the simulators of a test use: "embedded" unless
    the test is parametrized with ``BOTH_SHAPES``."""
    return "embedded"


@pytest.fixture
def shaped(shape: str) -> Callable[..., SimulatorConfig]:
    """``SimulatorConfig(**settings)`` in the test's event shape."""

    def config(**settings: Any) -> SimulatorConfig:
        return SimulatorConfig(**{**EVENT_SHAPES[shape], **settings})

    return config


@pytest.fixture
async def simulator(shaped: Callable[..., SimulatorConfig]) -> AsyncIterator[UcwaSimulator]:
    """A default simulator (fast completions), in the test's event shape."""
    async with UcwaSimulator(config=shaped(completion_delay=0.01), seed=0) as sim:
        yield sim


@pytest.fixture
def no_leftover_tasks() -> Callable[[], None]:
    """Call at the end of a test: asserts no task but the current one is alive."""

    def check() -> None:
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert others == [], f"tasks left behind: {others}"

    return check
