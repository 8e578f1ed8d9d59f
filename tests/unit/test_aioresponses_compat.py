"""The aioresponses compatibility fixture: mocked requests work on this aiohttp."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aioresponses import aioresponses
from yarl import URL

URL_EVENTS = "http://127.0.0.1:8080/ucwa/oauth/v1/applications/833/events?ack=1"


async def test_mocked_get(aioresponses_mock: aioresponses) -> None:
    aioresponses_mock.get(
        URL_EVENTS,
        status=200,
        body=json.dumps({"_links": {"next": {"href": "events?ack=2"}}}),
        content_type="application/json",
        headers={"X-Test": "1"},
    )
    async with aiohttp.ClientSession() as session, session.get(URL_EVENTS) as response:
        assert response.status == 200
        assert response.headers["X-Test"] == "1"
        assert response.content_type == "application/json"
        assert await response.json() == {"_links": {"next": {"href": "events?ack=2"}}}
    aioresponses_mock.assert_called_once_with(URL_EVENTS)


async def test_mocked_post_and_error_status(aioresponses_mock: aioresponses) -> None:
    url = "http://127.0.0.1:8080/ucwa/oauth/v1/applications/833/continueMessaging"
    aioresponses_mock.post(
        url, status=201, headers={"Location": "//v1/applications/833/communication/invitations/7"}
    )
    aioresponses_mock.post(
        url, status=409, payload={"code": "Conflict", "subcode": "AlreadyExists"}
    )
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"operationId": "op1"}) as created:
            assert created.status == 201
            assert created.headers["Location"].endswith("/invitations/7")
            assert await created.read() == b""
        async with session.post(url, json={"operationId": "op2"}) as conflict:
            assert conflict.status == 409
            assert (await conflict.json())["subcode"] == "AlreadyExists"
    calls = aioresponses_mock.requests[("POST", URL(url))]
    assert [call.kwargs["json"] for call in calls] == [
        {"operationId": "op1"},
        {"operationId": "op2"},
    ]


async def test_mocked_transport_error(aioresponses_mock: aioresponses) -> None:
    aioresponses_mock.get(URL_EVENTS, exception=aiohttp.ClientConnectionError("reset"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError, match="reset"):
            await session.get(URL_EVENTS)


async def test_fixture_undoes_its_patch(aioresponses_mock: aioresponses) -> None:
    # Within the test the name may be replaced; the original is restored by monkeypatch.
    assert issubclass(aioresponses_core.ClientResponse, aiohttp.ClientResponse)


def test_patch_is_gone_after_the_test() -> None:
    assert aioresponses_core.ClientResponse is aiohttp.ClientResponse


def test_shim_decision_matches_reality(aioresponses_compat: ModuleType) -> None:
    compat = aioresponses_compat
    required = compat.stream_writer_required(aiohttp.ClientResponse)
    omitted = compat.aioresponses_omits_stream_writer()
    assert compat.needs_stream_writer_shim() == (required and omitted)
    # Without the shim, a mocked response really cannot be built exactly when the
    # shim is deemed needed: the decision is not a guess.
    probe = aioresponses_core.RequestMatch(URL_EVENTS)
    if compat.needs_stream_writer_shim():
        with pytest.raises(TypeError, match="stream_writer"):
            probe._build_response(URL(URL_EVENTS))
    else:
        assert isinstance(probe._build_response(URL(URL_EVENTS)), aiohttp.ClientResponse)


class _FixedUpstreamResponse:
    """What ClientResponse looks like if stream_writer becomes optional again."""

    def __init__(self, method: str, url: URL, *, stream_writer: Any = None) -> None:
        self.method = method


class _OldResponse:
    """aiohttp < 3.14: no stream_writer at all."""

    def __init__(self, method: str, url: URL, *, writer: Any = None) -> None:
        self.method = method


class _RequiredResponse:
    def __init__(self, method: str, url: URL, *, stream_writer: Any) -> None:
        self.method = method


def _builder_passing_it(url: URL) -> Any:
    return _RequiredResponse("GET", url, stream_writer=object())


def _builder_omitting_it(url: URL) -> Any:
    return _RequiredResponse("GET", url)  # type: ignore[call-arg]


def test_shim_is_a_no_op_when_not_needed(aioresponses_compat: ModuleType) -> None:
    compat = aioresponses_compat
    assert not compat.stream_writer_required(_FixedUpstreamResponse)
    assert not compat.stream_writer_required(_OldResponse)
    assert compat.stream_writer_required(_RequiredResponse)
    # A fixed aioresponses (passes the keyword) needs no shim even on aiohttp 3.14.
    assert not compat.needs_stream_writer_shim(_RequiredResponse, _builder_passing_it)
    # A fixed aiohttp needs no shim whatever aioresponses does.
    assert not compat.needs_stream_writer_shim(_FixedUpstreamResponse, _builder_omitting_it)
    # The broken combination is detected.
    assert compat.needs_stream_writer_shim(_RequiredResponse, _builder_omitting_it)


def test_probe_ignores_unrelated_type_errors(aioresponses_compat: ModuleType) -> None:
    def unrelated(url: URL) -> Any:
        raise TypeError("something else entirely")

    assert not aioresponses_compat.aioresponses_omits_stream_writer(unrelated)


def test_install_does_nothing_when_not_needed(
    aioresponses_compat: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert aioresponses_compat.install_stream_writer_shim(monkeypatch, needed=False) is False
    assert aioresponses_core.ClientResponse is aiohttp.ClientResponse
    assert aioresponses_compat.install_stream_writer_shim(monkeypatch, needed=True) is True
    assert aioresponses_core.ClientResponse is not aiohttp.ClientResponse
    assert issubclass(aioresponses_core.ClientResponse, aiohttp.ClientResponse)
