"""The OAuth token's life against the reference (AuthenticationInUCWA.md): the grant
request's shape, the grant types a challenge offers, expiry, a failing token endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from aiohttp import web

import ucwa_async

from ._server import TOKEN, HostileServer

# AuthenticationInUCWA.md: "The service responds with a challenge containing the OAuth
# token issuer's URL and the types of authorization code grants it supports."
GRANTS = 'grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"'
NO_PASSWORD_GRANT = 'grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting"'


def _challenge_401(server: HostileServer, grants: str | None) -> web.Response:
    challenge = f'MsRtcOAuth href="{server.origin}/token"'
    if grants is not None:
        challenge += f",{grants}"
    return web.Response(status=401, headers={"WWW-Authenticate": challenge})


async def test_the_token_request_names_its_charset_as_the_reference_does(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    # Every request sample of AuthenticationInUCWA.md ("Password grant type"...):
    # Content-Type: application/x-www-form-urlencoded;charset=UTF-8
    content_types: list[str | None] = []

    async def token(request: web.Request) -> web.StreamResponse | None:
        content_types.append(request.headers.get("Content-Type"))
        return None

    server.hooks["token"] = token
    async with make_session():
        pass
    assert content_types == ["application/x-www-form-urlencoded;charset=UTF-8"]


async def test_no_password_goes_to_an_endpoint_that_does_not_offer_the_password_grant(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    async def user(request: web.Request) -> web.StreamResponse | None:
        return _challenge_401(server, NO_PASSWORD_GRANT)

    server.hooks["user"] = user
    with pytest.raises(ucwa_async.AuthenticationError, match="password grant") as caught:
        await make_session().open()
    assert "urn:microsoft.rtc:windows" in str(caught.value)
    assert [s for s in server.seen if s.url.endswith("/token")] == []


@pytest.mark.parametrize(
    "grants",
    [
        None,  # no grant_type at all: nothing says the password grant is not offered
        'grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"',
        "grant_type=urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password",
    ],
)
async def test_a_challenge_offering_the_password_grant_or_naming_none_gets_it(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session], grants: str | None
) -> None:
    async def user(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Authorization") is None:
            return _challenge_401(server, grants)
        return None

    server.hooks["user"] = user
    async with make_session():
        pass
    assert len([s for s in server.seen if s.url.endswith("/token")]) == 1


@pytest.mark.parametrize("status", [500, 400], ids=["500", "reference-400"])
async def test_the_event_channel_outlives_a_failing_token_endpoint(
    server: HostileServer,
    make_session: Callable[..., ucwa_async.Session],
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    # The token expires (the P-GET gets the reference's 401) while the token endpoint
    # answers "server_error" (AuthenticationInUCWA.md's error list; a 400, as the
    # reference's "Error conditions" answers every failed token request, or a 500): the channel
    # keeps trying - a blip must not end the session - ever more slowly (it was a POST
    # per re-authentication spacing, forever), and gets a token once the endpoint is back.
    fresh = "cwt=hostile-token-after-the-outage"
    posts = 0
    failing = True
    expired = asyncio.Event()
    refreshed = asyncio.Event()

    async def token(request: web.Request) -> web.StreamResponse | None:
        nonlocal posts
        posts += 1
        if posts == 1:
            return None  # the sign-in's grant
        if failing:
            return server.json({"error": "server_error"}, status=status)
        return server.json({"access_token": fresh, "token_type": "Bearer", "expires_in": 3600})

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Authorization") == f"Bearer {fresh}":
            refreshed.set()
            return None
        if expired.is_set() and request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return _challenge_401(server, GRANTS)
        return None

    server.hooks["token"] = token
    server.hooks["pget"] = pget
    async with make_session() as session:  # backoff 0.01..0.05 s
        caplog.clear()
        expired.set()
        await asyncio.sleep(1.5)
        during = posts - 1
        assert 3 <= during <= 12  # gaps of 0.01, 0.02, 0.04... s; it was 25 and more
        # Aggregated: about a line per POST, not one per P-GET answered 401 (dozens).
        lines = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert len(lines) <= during + 6
        assert not refreshed.is_set()
        failing = False
        async with asyncio.timeout(8.0):
            await refreshed.wait()
        await session.wait_connected(timeout=5.0)
        assert posts == during + 2
