"""410 Gone answers that refuse every application, not just the current one.

ApplicationDashboard.md, Application lifetime: "410 Gone | TooManyApplications | The total
number of all applications created by the user exceeded the limit", "410 Gone |
UserAgentNotAllowed | The UserAgent for the application is no longer supported", and "If
410 Gone is received it is best to display an error message to the user including the
UCWA 2.0 error subcode, and then wait for the user to explicitly restart the client."
Re-creating the application cannot help: the channel fails at once, naming the subcode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

import ucwa_async

from ._server import BOTH_WIRES, HostileServer


def _gone(server: HostileServer, subcode: str) -> web.Response:
    # ErrorsAndInformationalMessages.md, "Error sample - JSON": code, subcode, message.
    return server.answer({"code": "Gone", "subcode": subcode, "message": "refused"}, status=410)


async def _channel_failure(stream: ucwa_async.EventStream) -> ucwa_async.ChannelFailedError:
    async with asyncio.timeout(3):
        async for item in stream:
            if isinstance(item, ucwa_async.ChannelFailed):
                return item.error
    raise AssertionError("the event stream ended without ChannelFailed")


def _creations(server: HostileServer) -> int:
    return len([s for s in server.seen if s.method == "POST" and s.url.endswith("/applications")])


@BOTH_WIRES
@pytest.mark.parametrize("subcode", ["TooManyApplications", "UserAgentNotAllowed"])
async def test_event_channel_gone_for_every_application_fails_without_recreating(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session], subcode: str
) -> None:
    refuse = False

    async def pget(request: web.Request) -> web.StreamResponse | None:
        return _gone(server, subcode) if refuse else None

    server.hooks["pget"] = pget
    async with make_session() as session, session.events() as stream:
        refuse = True
        failure = await _channel_failure(stream)
        assert isinstance(failure.cause, ucwa_async.ResponseError)
        assert (failure.cause.status, failure.cause.subcode) == (410, subcode)
        assert subcode in str(failure)
        assert _creations(server) == 1  # no re-creation was attempted


@BOTH_WIRES
@pytest.mark.parametrize("subcode", ["TooManyApplications", "UserAgentNotAllowed"])
async def test_recreation_refused_for_every_application_stops_at_once(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session], subcode: str
) -> None:
    """The application is lost (404 ApplicationNotFound: re-create it), and the new one's
    POST is refused with such a 410: no more attempts, the channel fails naming it."""
    lost = False

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if lost:
            return server.answer({"code": "NotFound", "subcode": "ApplicationNotFound"}, status=404)
        return None

    async def create(request: web.Request) -> web.StreamResponse | None:
        return _gone(server, subcode) if lost else None

    server.hooks["pget"] = pget
    server.hooks["applications"] = create
    async with make_session() as session, session.events() as stream:
        lost = True
        failure = await _channel_failure(stream)
        assert isinstance(failure.cause, ucwa_async.ResponseError)
        assert (failure.cause.status, failure.cause.subcode) == (410, subcode)
        assert subcode in str(failure)
        assert _creations(server) == 2  # the first one, and one refused re-creation


@BOTH_WIRES
async def test_creation_refused_at_open_raises_the_subcode_once(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    async def create(request: web.Request) -> web.StreamResponse | None:
        return _gone(server, "TooManyApplications")

    server.hooks["applications"] = create
    session = make_session()
    with pytest.raises(ucwa_async.ResponseError) as caught:
        await session.open()
    await session.aclose()
    assert (caught.value.status, caught.value.subcode) == (410, "TooManyApplications")
    assert _creations(server) == 1
