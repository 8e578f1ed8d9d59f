"""401s in the reference's own shape (CreateAnApplication.md, step 4): two
``WWW-Authenticate`` headers (Bearer, then MsRtcOAuth) and a ``text/html`` body, the IIS
"401 - Unauthorized: Access is denied" page. It is UCWA's challenge, not a proxy's page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from multidict import CIMultiDict

import ucwa_async

from ._server import HostileServer, Recorder

# CreateAnApplication.md step 4: "The response body contains an HTML document (not shown
# here) with the following text".
IIS_401 = (
    b"<html><head><title>401 - Unauthorized: Access is denied due to invalid credentials."
    b"</title></head><body><h2>Server Error</h2><h2>401 - Unauthorized: Access is denied due"
    b" to invalid credentials.</h2><h3>You do not have permission to view this directory or"
    b" page using the credentials that you supplied.</h3></body></html>"
)
FRESH_TOKEN = "cwt=hostile-fresh-token-after-expiry"


def reference_401(server: HostileServer) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add(
        "WWW-Authenticate",
        'Bearer trusted_issuers="00000002-0000-0ff1-ce00-000000000000@contoso.com", '
        'client_id="00000004-0000-0ff1-ce00-000000000000"',
    )
    headers.add(
        "WWW-Authenticate",
        f'MsRtcOAuth href="{server.origin}/token",'
        'grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"',
    )
    headers["Content-Type"] = "text/html"
    return web.Response(status=401, body=IIS_401, headers=headers)


async def test_an_expired_token_on_the_event_channel_gets_a_new_one(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    # The token expires while the session is open: the next P-GET is answered with the
    # reference's 401. The channel must get a new token (one grant) and poll with it; it
    # is the only request in flight (no keep-alive) to refresh the token otherwise.
    grants = 0
    expired = asyncio.Event()
    refreshed = asyncio.Event()

    async def token(request: web.Request) -> web.StreamResponse | None:
        nonlocal grants
        grants += 1
        if grants == 1:
            return None  # the sign-in's grant: TOKEN
        return server.json({"access_token": FRESH_TOKEN, "token_type": "Bearer"})

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Authorization") == f"Bearer {FRESH_TOKEN}":
            refreshed.set()
            return None
        if expired.is_set():
            return reference_401(server)
        return None

    server.hooks["token"] = token
    server.hooks["pget"] = pget
    async with make_session() as session:
        expired.set()
        async with asyncio.timeout(5.0):
            await refreshed.wait()
        await session.wait_connected(timeout=5.0)
        assert grants == 2
        assert session.stats.reauthentications == 1


async def test_a_refused_fresh_token_is_an_authentication_error(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    # The user resource answers the reference's 401 even to the token just granted: one
    # grant, one repeat, then the server's refusal - an AuthenticationError (its challenge
    # says it is UCWA's), not a ProxyResponseError because its body is the IIS page.
    async def user(request: web.Request) -> web.StreamResponse | None:
        return reference_401(server)

    server.hooks["user"] = user
    with pytest.raises(ucwa_async.AuthenticationError) as caught:
        async with make_session():
            pass  # pragma: no cover
    assert not isinstance(caught.value, ucwa_async.ProxyResponseError)
    assert caught.value.status == 401
    assert [s.url.removeprefix(server.origin) for s in server.seen] == [
        "/autodiscover",
        "/user",
        "/token",
        "/user",
    ]


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("route", ["token", "logs"])
async def test_a_method_keeping_redirect_to_another_host_is_not_followed(
    server: HostileServer,
    recorder: Recorder,
    make_session: Callable[..., ucwa_async.Session],
    route: str,
    status: int,
) -> None:
    # Followed, a 307/308 would repeat the request there with its body: the password
    # form for the token POST (aiohttp drops only the Authorization header on the way).
    async def elsewhere(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=status, headers={"Location": recorder.origin + "/moved"})

    server.hooks[route] = elsewhere
    with pytest.raises(ucwa_async.UnexpectedRedirectError) as caught:
        async with make_session() as session:
            await session.conversation_logs()
    assert caught.value.status == status
    assert recorder.seen == []


async def test_the_reference_401_on_application_creation_is_retried(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    # The intermittent "Access is denied" on POST applications (protocol doc, section 7)
    # in the reference's shape, twice in a row: the fresh token is refused as well, and
    # the creation is retried with backoff (as for a proxy's page), not given up.
    refusals = 0

    async def applications(request: web.Request) -> web.StreamResponse | None:
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            return reference_401(server)
        return None

    server.hooks["applications"] = applications
    async with make_session() as session:
        assert session.application_url is not None
    assert refusals == 2
