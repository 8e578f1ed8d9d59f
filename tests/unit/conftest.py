"""Unit-test fixtures: ``aioresponses_mock``, aioresponses made to work on aiohttp >= 3.14.

aioresponses 0.7.9 builds its fake ``ClientResponse`` without the ``stream_writer``
keyword that aiohttp 3.14 made required, so every mocked request raises
``TypeError: ClientResponse.__init__() missing 1 required keyword-only argument:
'stream_writer'``. Upstream: https://github.com/pnuckowski/aioresponses/issues/289
(fix proposed in https://github.com/pnuckowski/aioresponses/pull/288).

The shim below is applied only while that is actually the case: the signature says
``stream_writer`` is a required keyword AND aioresponses' response builder fails for
want of it. Once either side is fixed it does nothing; then delete it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aioresponses import aioresponses
from yarl import URL


class _SentStreamWriter:
    """Stands in for the writer of a request that was already sent (nothing to track).

    ``ClientResponse.__init__`` only reads ``output_size`` from it when ``writer`` is None,
    which is what aioresponses passes.
    """

    output_size = 0


def stream_writer_required(response_class: type[Any]) -> bool:
    """True if ``response_class.__init__`` has a required keyword-only ``stream_writer``."""
    parameter = inspect.signature(response_class.__init__).parameters.get("stream_writer")
    return (
        parameter is not None
        and parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and parameter.default is inspect.Parameter.empty
    )


def aioresponses_omits_stream_writer(build: Callable[[URL], Any] | None = None) -> bool:
    """True if aioresponses' response builder fails for want of ``stream_writer``."""
    if build is None:
        probe = aioresponses_core.RequestMatch("http://127.0.0.1/probe")
        build = probe._build_response
    try:
        build(URL("http://127.0.0.1/probe"))
    except TypeError as exc:
        return "stream_writer" in str(exc)
    return False


def needs_stream_writer_shim(
    response_class: type[Any] = aiohttp.ClientResponse,
    build: Callable[[URL], Any] | None = None,
) -> bool:
    return stream_writer_required(response_class) and aioresponses_omits_stream_writer(build)


def _compat_response_class(base: type[aiohttp.ClientResponse]) -> type[aiohttp.ClientResponse]:
    class CompatClientResponse(base):  # type: ignore[valid-type,misc]
        def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", _SentStreamWriter())
            super().__init__(method, url, **kwargs)

    return CompatClientResponse


def install_stream_writer_shim(monkeypatch: pytest.MonkeyPatch, *, needed: bool) -> bool:
    """Apply the shim if ``needed``; return whether it was applied."""
    if not needed:
        return False
    # aioresponses looks ClientResponse up in its own module when it builds a response,
    # so replacing that one name is enough (monkeypatch undoes it after the test).
    monkeypatch.setattr(
        aioresponses_core,
        "ClientResponse",
        _compat_response_class(aioresponses_core.ClientResponse),
    )
    return True


@pytest.fixture
def aioresponses_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """An active :class:`aioresponses` mock, working on aiohttp >= 3.14."""
    install_stream_writer_shim(monkeypatch, needed=needs_stream_writer_shim())
    with aioresponses() as mocked:
        yield mocked


@pytest.fixture
def aioresponses_compat() -> ModuleType:
    """This module, for the tests of the shim itself (conftest is not importable)."""
    return sys.modules[__name__]
