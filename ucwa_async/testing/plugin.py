"""pytest plugin: the ``ucwa_simulator`` fixture.

Opt in from a project's top-level conftest.py (with the ``testing`` extra installed;
pytest-asyncio required, any asyncio mode; in strict mode mark the tests ``asyncio``)::

    pytest_plugins = ["ucwa_async.testing.plugin"]

then::

    async def test_my_bot_follows_up(ucwa_simulator):
        bot = MyBot(ucwa_simulator.discovery_url,
                    ucwa_simulator.username, ucwa_simulator.password)
        await bot.follow_up_everyone()
        assert ucwa_simulator.counters.invitations_by_state["Connected"] == 3

Configure it per test with the ``ucwa_simulator`` marker (keyword arguments of
:class:`~ucwa_async.testing.SimulatorConfig`, plus ``seed``)::

    @pytest.mark.ucwa_simulator(fail_rate=0.5, completion_delay=0.05, seed=7)
    async def test_my_bot_reports_failures(ucwa_simulator): ...

or for a whole module/conftest by overriding the ``ucwa_simulator_config`` fixture::

    @pytest.fixture
    def ucwa_simulator_config():
        return SimulatorConfig(location_style="v1", embed_resources=False)

Faults are scripted through ``ucwa_simulator.faults`` (see
:class:`~ucwa_async.testing.FaultInjector`), and every one that fired is counted in
``ucwa_simulator.counters.faults_injected``. The server binds 127.0.0.1 on a free
port and is stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar, cast

import pytest

from ucwa_async.testing._config import SimulatorConfig
from ucwa_async.testing._simulator import UcwaSimulator

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture() -> Callable[[_F], _F]:
    """pytest-asyncio's fixture decorator; without it, pytest's own (which then
    reports that an async fixture needs an async plugin) so loading never fails."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover
        return cast("Callable[[_F], _F]", pytest.fixture)
    return cast("Callable[[_F], _F]", pytest_asyncio.fixture)


__all__ = ["pytest_configure", "ucwa_simulator", "ucwa_simulator_config"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ucwa_simulator(seed=0, **config): SimulatorConfig fields for the ucwa_simulator fixture",
    )


@pytest.fixture
def ucwa_simulator_config() -> SimulatorConfig:
    """The :class:`SimulatorConfig` the ``ucwa_simulator`` fixture starts from."""
    return SimulatorConfig()


def _marked(request: pytest.FixtureRequest, base: SimulatorConfig) -> tuple[SimulatorConfig, int]:
    marker = request.node.get_closest_marker("ucwa_simulator")
    if marker is None:
        return base, 0
    options: dict[str, Any] = dict(marker.kwargs)
    seed = int(options.pop("seed", 0))
    return (replace(base, **options) if options else base), seed


@_async_fixture()
async def ucwa_simulator(
    request: pytest.FixtureRequest, ucwa_simulator_config: SimulatorConfig
) -> AsyncIterator[UcwaSimulator]:
    """A started :class:`~ucwa_async.testing.UcwaSimulator`, stopped after the test."""
    config, seed = _marked(request, ucwa_simulator_config)
    async with UcwaSimulator(config=config, seed=seed) as sim:
        yield sim
