"""Fixtures: a hostile UCWA server, a recording second origin, and a secret-leak guard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import ucwa_async
from ucwa_async._core.backoff import Backoff

from ._server import PASSWORD, TOKEN, USER, HostileServer, Recorder


@pytest.fixture
def hostile_wire() -> str:
    """The wire of the ``server`` fixture and of ``make_session``: JSON unless a test
    parametrizes ``hostile_wire`` (``["json", "xml"]``)."""
    return "json"


@pytest.fixture
async def server(hostile_wire: str) -> AsyncIterator[HostileServer]:
    srv = HostileServer(wire=hostile_wire)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    await rec.start()
    yield rec
    await rec.stop()
    # Whatever a test did: the other origin never saw our token.
    assert [s for s in rec.seen if s.authorization] == []


@pytest.fixture
def make_session(server: HostileServer) -> Callable[..., ucwa_async.Session]:
    def factory(**overrides: Any) -> ucwa_async.Session:
        options: dict[str, Any] = {
            "wire_format": server.wire,
            "invitation_timeout": 5.0,
            "request_timeout": 3.0,
            "connect_timeout": 5.0,
            "keepalive_interval": None,
            "backoff": Backoff(base=0.01, cap=0.05),
            "retry_after_cap": 0.05,
        }
        options.update(overrides)
        return ucwa_async.Session(
            server.discovery_url, auth=ucwa_async.PasswordAuth(USER, PASSWORD), **options
        )

    return factory


class _AllRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[_AllRecords]:
    """Every record at every level (tracebacks included) is free of the token and password."""
    handler = _AllRecords()
    root, library = logging.getLogger(), logging.getLogger("ucwa_async")
    saved = root.level, library.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    library.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(saved[0])
    library.setLevel(saved[1])
    for text in handler.texts:
        for secret in (TOKEN, TOKEN.removeprefix("cwt="), PASSWORD, "hostile-P%40ss"):
            assert secret not in text, text


@pytest.fixture
def no_leftover_tasks() -> Callable[[], None]:
    def check() -> None:
        # The test's own servers still run (their handler tasks are theirs): every
        # other task would belong to the client and must be gone.
        current = asyncio.current_task()
        others = [
            t
            for t in asyncio.all_tasks()
            if t is not current and not t.done() and "aiohttp/web_" not in repr(t)
        ]
        assert others == [], f"tasks left behind: {others}"

    return check
