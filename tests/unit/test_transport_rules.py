"""Transport's rules without a server: no cleartext credentials, no https -> http
downgrade, no grant for a proxy's 401, sanitised errors (aioresponses or a stub client).

The simulator is plain http on loopback, where credentials are allowed: the refusals
need non-loopback hosts, hence mocked ones here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import random
import time
import types
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import ucwa_async
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.errors import ProxyResponseError
from ucwa_async._http import HttpClient, HttpResponse, _InFlight
from ucwa_async._transport import Transport, is_loopback

HTTPS_DISCOVERY = "https://lyncdiscover.contoso.com/Autodiscover/AutodiscoverService.svc/root"
HTTP_DISCOVERY = "http://lyncdiscover.contoso.com/Autodiscover/AutodiscoverService.svc/root"
USER_PATH = "/Autodiscover/AutodiscoverService.svc/root/oauth/user"
JSON = "application/json"


def root(**links: str) -> dict[str, Any]:
    return {"_links": {"self": {"href": "x"}, **{k: {"href": v} for k, v in links.items()}}}


def challenge(token_href: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'MsRtcOAuth href="{token_href}",grant_type="password"'}


def session(discovery: str, **options: Any) -> ucwa_async.Session:
    return ucwa_async.Session(
        discovery,
        auth=ucwa_async.PasswordAuth("bot@contoso.com", "hunter2"),
        keepalive_interval=None,
        connect_timeout=5.0,
        **options,
    )


def methods(mock: aioresponses) -> list[tuple[str, str]]:
    return [(method, str(url)) for method, url in mock.requests]


# -- https -> http downgrades: refused before anything is sent there ----------------------


async def test_https_discovery_to_an_http_user_link_is_refused(
    aioresponses_mock: aioresponses,
) -> None:
    user = "http://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(HTTPS_DISCOVERY, payload=root(user=user))
    with pytest.raises(ucwa_async.InsecureTransportError) as caught:
        await session(HTTPS_DISCOVERY).open()
    assert caught.value.url == user
    assert methods(aioresponses_mock) == [("GET", HTTPS_DISCOVERY)]


async def test_https_discovery_to_an_http_redirect_link_is_refused(
    aioresponses_mock: aioresponses,
) -> None:
    user = "https://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(HTTPS_DISCOVERY, payload=root(user=user))
    aioresponses_mock.get(user, status=401, headers=challenge("https://lyncweb.contoso.com/tok"))
    aioresponses_mock.post("https://lyncweb.contoso.com/tok", payload={"access_token": "cwt=A"})
    redirect = "http://pool2.contoso.com/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(user, payload=root(redirect=redirect))
    with pytest.raises(ucwa_async.InsecureTransportError):
        await session(HTTPS_DISCOVERY).open()
    assert all(url.startswith("https://") for _, url in methods(aioresponses_mock))


async def test_an_http_token_endpoint_in_an_https_challenge_gets_no_password(
    aioresponses_mock: aioresponses,
) -> None:
    user = "https://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(HTTPS_DISCOVERY, payload=root(user=user))
    aioresponses_mock.get(user, status=401, headers=challenge("http://lyncweb.contoso.com/tok"))
    with pytest.raises(ucwa_async.InsecureTransportError):
        await session(HTTPS_DISCOVERY).open()
    assert [m for m, _ in methods(aioresponses_mock)] == ["GET", "GET"]


async def test_plain_http_off_loopback_gets_no_password_without_opt_in(
    aioresponses_mock: aioresponses,
) -> None:
    user = "http://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(HTTP_DISCOVERY, payload=root(user=user))
    aioresponses_mock.get(user, status=401, headers=challenge("http://lyncweb.contoso.com/tok"))
    with pytest.raises(ucwa_async.InsecureTransportError, match="allow_insecure_http"):
        await session(HTTP_DISCOVERY).open()
    assert "POST" not in [m for m, _ in methods(aioresponses_mock)]


async def test_plain_http_with_opt_in_sends_the_password(aioresponses_mock: aioresponses) -> None:
    user = "http://lyncweb.contoso.com" + USER_PATH
    token_url = "http://lyncweb.contoso.com/tok"
    aioresponses_mock.get(HTTP_DISCOVERY, payload=root(user=user))
    aioresponses_mock.get(user, status=401, headers=challenge(token_url))
    aioresponses_mock.post(token_url, payload={"access_token": "cwt=A", "token_type": "Bearer"})
    aioresponses_mock.get(user, status=403)  # ends the sign-in here: enough for this test
    with pytest.raises(ucwa_async.ForbiddenError):
        await session(HTTP_DISCOVERY, allow_insecure_http=True).open()
    assert ("POST", token_url) in methods(aioresponses_mock)
    repeat = aioresponses_mock.requests[("GET", URL(user))][1]
    assert repeat.kwargs["headers"]["Authorization"] == "Bearer cwt=A"


# -- the transport itself, with a stub HTTP client -------------------------------------------


class StubHttp:
    """Records requests; answers each with the next queued response (default: 200 {})."""

    def __init__(self, *responses: HttpResponse) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self._responses = list(responses)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        timeout: float,
        reserved: bool = False,
        sent: asyncio.Future[None] | None = None,
    ) -> HttpResponse:
        self.sent.append((method, url, dict(headers)))
        if self._responses:
            return self._responses.pop(0)
        return HttpResponse(method=method, url=url, status=200, content_type=JSON, body=b"{}")


def transport(
    http: StubHttp, origin: str, *, allow_insecure_http: bool = False, **options: Any
) -> Transport:
    return Transport(
        http,  # type: ignore[arg-type]
        auth=ucwa_async.TokenAuth("cwt=TOKEN"),
        trusted_origins={origin},
        accept=JSON,
        user_agent="t",
        request_timeout=1.0,
        max_body=1 << 20,
        backoff=Backoff(base=0.0, cap=0.0, rng=random.Random(0)),
        retry_after_cap=0.1,
        is_closed=lambda: False,
        on_reauthenticated=lambda: None,
        allow_insecure_http=allow_insecure_http,
        **options,
    )


async def test_an_http_next_link_after_https_is_refused_unsent() -> None:
    http = StubHttp()
    t = transport(http, "https://fe.contoso.com")
    t.tokens["https://fe.contoso.com"] = "Bearer cwt=TOKEN"
    await t.poll("https://fe.contoso.com/ucwa/events?ack=1", 1.0)
    with pytest.raises(ucwa_async.InsecureTransportError):
        await t.poll("http://fe.contoso.com/ucwa/events?ack=2", 1.0)
    with pytest.raises(ucwa_async.InsecureTransportError):
        await t.send("GET", "http://fe.contoso.com/ucwa/x", authorize=False)
    assert [url for _, url, _ in http.sent] == ["https://fe.contoso.com/ucwa/events?ack=1"]
    assert http.sent[0][2]["Authorization"] == "Bearer cwt=TOKEN"


async def test_a_token_is_never_put_on_plain_http_off_loopback() -> None:
    origin = "http://fe.contoso.com"
    t = transport(StubHttp(), origin)
    t.tokens[origin] = "Bearer cwt=TOKEN"
    assert "Authorization" not in t.headers_for(origin + "/x", authorize=False)
    with pytest.raises(ucwa_async.InsecureTransportError):
        t.headers_for(origin + "/x")
    opted_in = transport(StubHttp(), origin, allow_insecure_http=True)
    opted_in.tokens[origin] = "Bearer cwt=TOKEN"
    assert opted_in.headers_for(origin + "/x")["Authorization"] == "Bearer cwt=TOKEN"
    loopback = transport(StubHttp(), "http://127.0.0.1:8080")
    loopback.tokens["http://127.0.0.1:8080"] = "Bearer cwt=TOKEN"
    assert "Authorization" in loopback.headers_for("http://127.0.0.1:8080/x")


async def test_a_proxy_401_on_the_channel_gets_no_grant() -> None:
    http = StubHttp()
    origin = "https://fe.contoso.com"
    t = transport(http, origin)
    t.tokens[origin] = "Bearer cwt=OLD"
    page = ProxyResponseError(status=401, message="not a UCWA error body (text/html)")
    with pytest.raises(ProxyResponseError):
        await t.reauthenticate(origin + "/ucwa/events?ack=3", page)
    assert t.tokens[origin] == "Bearer cwt=OLD"
    assert http.sent == []


async def test_channel_reauthentication_spends_the_same_budget() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"cwt={calls}"

    origin = "https://fe.contoso.com"
    t = Transport(
        StubHttp(),  # type: ignore[arg-type]
        auth=ucwa_async.TokenAuth(provider),
        trusted_origins={origin},
        accept=JSON,
        user_agent="t",
        request_timeout=1.0,
        max_body=1 << 20,
        backoff=Backoff(base=0.0, cap=0.0),
        retry_after_cap=0.1,
        is_closed=lambda: False,
        on_reauthenticated=lambda: None,
        max_reauthentications=2,
        reauthentication_window=60.0,
    )
    url = origin + "/ucwa/events?ack=1"
    await t.reauthenticate(url)  # the first token for this host: not a re-authentication
    await t.reauthenticate(url)
    await t.reauthenticate(url)
    with pytest.raises(ucwa_async.AuthenticationError, match="budget"):
        await t.reauthenticate(url)
    assert calls == 3
    assert t.tokens[origin] == "Bearer cwt=3"


async def test_a_401_from_an_html_proxy_on_a_request_gets_no_grant() -> None:
    origin = "https://fe.contoso.com"
    page = HttpResponse(
        method="GET", url=origin + "/x", status=401, content_type="text/html", body=b"<html/>"
    )
    http = StubHttp(page)
    t = transport(http, origin)
    with pytest.raises(ProxyResponseError):
        await t.send("GET", origin + "/x")
    assert len(http.sent) == 1
    assert t.tokens == {}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/x", True),
        ("http://127.9.8.7/x", True),
        ("http://localhost/x", True),
        ("http://LOCALHOST./x", True),
        ("http://[::1]:80/x", True),
        ("http://10.0.0.1/x", False),
        ("http://localhost.contoso.com/x", False),
        ("http://127.0.0.1.nip.io/x", False),
        ("http://[::2]/x", False),
        ("http:///x", False),
    ],
)
def test_is_loopback(url: str, expected: bool) -> None:
    assert is_loopback(url) is expected


# -- the HTTP shell's errors: no aiohttp object, no token -------------------------------------


async def test_a_client_response_error_is_sanitised(aioresponses_mock: aioresponses) -> None:
    url = "https://fe.contoso.com/ucwa/x"
    secret = "Bearer cwt=SECRET-TOKEN"
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": secret}))
    info = aiohttp.RequestInfo(URL(url), "GET", headers, URL(url))
    aioresponses_mock.get(
        url, exception=aiohttp.ClientResponseError(info, (), status=502, message="Bad Gateway")
    )
    async with aiohttp.ClientSession() as http:
        client = HttpClient(http, max_body=1024)
        with pytest.raises(ucwa_async.TransportError) as caught:
            await client.request("GET", url, headers={"Authorization": secret}, timeout=1.0)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None
    assert "502" in str(error)
    assert "SECRET" not in repr(error) + str(error) + repr(vars(error))


async def test_a_closed_http_session_is_a_transport_error() -> None:
    http = aiohttp.ClientSession()
    await http.close()
    client = HttpClient(http, max_body=1024)
    with pytest.raises(ucwa_async.TransportError, match="closed") as caught:
        await client.request("GET", "http://127.0.0.1:9/x", headers={}, timeout=1.0)
    assert caught.value.request_sent is False


async def test_transport_errors_say_whether_the_request_may_have_reached_the_server() -> None:
    # Connection refused: nothing sent. A connection closed before the answer: unknown.
    async def close_unanswered(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        raise ConnectionResetError

    app = web.Application()
    app.router.add_post("/drop", close_unanswered)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            client = HttpClient(http, max_body=1024)
            with pytest.raises(ucwa_async.TransportError) as dropped:
                await client.request("POST", f"http://127.0.0.1:{port}/drop", headers={}, timeout=5)
            assert dropped.value.request_sent is None
            await site.stop()
            with pytest.raises(ucwa_async.TransportError) as refused:
                await client.request("POST", f"http://127.0.0.1:{port}/drop", headers={}, timeout=5)
            assert refused.value.request_sent is False
    finally:
        await runner.cleanup()


async def test_a_channel_401_after_a_refresh_by_a_request_costs_no_second_grant() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"cwt={calls}"

    origin = "https://fe.contoso.com"
    url = origin + "/ucwa/events?ack=1"
    t = transport(StubHttp(), origin)
    t._auth = ucwa_async.TokenAuth(provider)
    await t.reauthenticate(url)  # signed in: version 1
    await t.poll(url, 1.0)  # the P-GET carries version 1 ...
    await t.authenticate(origin, url, None, 1)  # ... a request refreshes to version 2 ...
    await t.reauthenticate(url)  # ... then the P-GET's 401 arrives: nothing to do
    assert calls == 2
    assert t.tokens[origin] == "Bearer cwt=2"
    await t.poll(url, 1.0)
    await t.reauthenticate(url)  # a 401 on a P-GET that carried version 2: a refresh
    assert calls == 3


async def test_expiries_are_free_refusals_are_counted() -> None:
    """A token that worked and then got a 401 expired; a fresh one refused is futile."""
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"cwt={calls}"

    origin = "https://fe.contoso.com"
    url = origin + "/ucwa/events?ack=1"
    refused = HttpResponse(method="GET", url=url, status=401, content_type=None, body=b"")
    http = StubHttp()
    t = transport(http, origin, max_reauthentications=1)
    t._auth = ucwa_async.TokenAuth(provider)
    await t.reauthenticate(url)  # sign-in
    for _ in range(5):  # each token works once, then expires: never counted
        await t.poll(url, 1.0)
        await t.reauthenticate(url)
    assert calls == 6
    http._responses = [refused, refused]
    await t.poll(url, 1.0)  # refused at once: the re-authentication is futile (1 of 1)
    await t.reauthenticate(url)
    await t.poll(url, 1.0)
    with pytest.raises(ucwa_async.AuthenticationError, match="budget"):
        await t.reauthenticate(url)
    assert calls == 7


async def test_a_401_for_a_token_replaced_meanwhile_is_repeated_without_a_grant() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"cwt={calls}"

    origin = "https://fe.contoso.com"
    url = origin + "/ucwa/x"
    refused = HttpResponse(method="GET", url=url, status=401, content_type=None, body=b"")

    class RefreshedMeanwhile(StubHttp):
        async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
            response = await super().request(method, url, **kwargs)
            if len(self.sent) == 1:  # another task refreshes while this one is in flight
                await t.authenticate(origin, url, None, t.token_versions[origin])
            return response

    http = RefreshedMeanwhile(refused)
    t = transport(http, origin)
    t._auth = ucwa_async.TokenAuth(provider)
    await t.authenticate(origin, url, None, 0)  # signed in: cwt=1
    await t.send("GET", url)
    assert calls == 2  # the other task's refresh only
    assert [h["Authorization"] for _, _, h in http.sent] == ["Bearer cwt=1", "Bearer cwt=2"]


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "abc\x00", "caf\u00e9\u20ac"])
async def test_a_granted_token_with_illegal_characters_is_typed(token: str) -> None:
    import json

    origin = "https://fe.contoso.com"
    url = origin + "/ucwa/user"
    grant = HttpResponse(
        method="POST",
        url=origin + "/tok",
        status=200,
        content_type="application/json",
        body=json.dumps({"access_token": token, "token_type": "Bearer"}).encode(),
    )
    challenge_401 = HttpResponse(
        method="GET",
        url=url,
        status=401,
        content_type=None,
        body=b"",
        www_authenticate=(f'MsRtcOAuth href="{origin}/tok",grant_type="password"',),
    )
    t = transport(StubHttp(grant), origin)
    t._auth = ucwa_async.PasswordAuth("bot@contoso.com", "hunter2")
    with pytest.raises(ucwa_async.AuthenticationError) as caught:
        await t.authenticate(origin, url, challenge_401, 0)
    assert not isinstance(caught.value, ValueError)
    assert token not in str(caught.value) + repr(caught.value)
    assert t.tokens == {}


# -- the body cap: declared, inflated, chunked ------------------------------------------


@contextlib.asynccontextmanager
async def _bodies_server() -> AsyncIterator[str]:
    """Loopback server: /small (declared 10 B), /declared (declared 4 KiB), /gzip
    (a 4 KiB body sent gzip-compressed, declared as its compressed size), /chunked."""

    async def small(_request: web.Request) -> web.Response:
        return web.Response(body=b"0123456789", content_type="application/json")

    async def declared(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 4096, content_type="application/json")

    async def inflating(_request: web.Request) -> web.Response:
        packed = gzip.compress(b" " * 4096)
        return web.Response(
            body=packed,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(4):
            await response.write(b"y" * 1024)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/declared", declared)
    app.router.add_get("/gzip", inflating)
    app.router.add_get("/chunked", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_body_cap_holds_for_declared_inflated_and_chunked_bodies() -> None:
    async with _bodies_server() as base, aiohttp.ClientSession() as http:
        client = HttpClient(http, max_body=1024)
        small = await client.request("GET", f"{base}/small", headers={}, timeout=5.0)
        assert small.body == b"0123456789"
        for path in ("/declared", "/gzip", "/chunked"):
            with pytest.raises(ucwa_async.BodyTooLargeError):
                await client.request("GET", base + path, headers={}, timeout=5.0)
        # a compressed body within the cap once inflated is read whole
        roomy = HttpClient(http, max_body=8192)
        inflated = await roomy.request("GET", f"{base}/gzip", headers={}, timeout=5.0)
        assert inflated.body == b" " * 4096


# -- request deadlines: one heap for every request --------------------------------------


@contextlib.asynccontextmanager
async def _black_hole() -> AsyncIterator[str]:
    """A loopback server that accepts connections and never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def swallow(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/x"
    finally:
        server.close()
        for _ in range(5):
            await asyncio.sleep(0)
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()


async def test_time_queued_for_the_pool_counts_against_request_timeout() -> None:
    """Today: N calls on a pool of one take N x timeout; now all end within ~timeout."""
    timeout, calls = 0.5, 6
    async with _black_hole() as url:
        connector = aiohttp.TCPConnector(limit=3)  # 1 ordinary slot, 2 kept for the channel
        async with aiohttp.ClientSession(connector=connector) as http:
            client = HttpClient(http, max_body=1024)
            started = time.monotonic()

            async def one() -> float:
                with pytest.raises(ucwa_async.RequestTimeoutError):
                    await client.request("GET", url, headers={}, timeout=timeout)
                return time.monotonic() - started

            durations = await asyncio.gather(*(one() for _ in range(calls)))
    assert max(durations) < timeout + 0.5, durations  # not calls * timeout = 3 s


async def test_a_request_past_its_deadline_is_a_request_timeout() -> None:
    loop = asyncio.get_running_loop()
    async with _black_hole() as url, aiohttp.ClientSession() as http:
        client = HttpClient(http, max_body=1024)
        started = loop.time()
        with pytest.raises(ucwa_async.RequestTimeoutError, match=r"timed out after 0\.2 s"):
            await client.request("GET", url, headers={}, timeout=0.2)
        assert 0.19 <= loop.time() - started < 1.5
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0  # the deadline's cancel was taken back
        assert len(client._deadlines) == 0  # nothing in flight: no heap, no timer
        await asyncio.sleep(0.01)  # and this task is not cancelled at its next await


async def test_a_cancel_during_a_request_stays_a_cancel() -> None:
    async with _black_hole() as url, aiohttp.ClientSession() as http:
        client = HttpClient(http, max_body=1024)
        request = asyncio.create_task(client.request("GET", url, headers={}, timeout=5.0))
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        # cancelled at the very moment its deadline passed: still a cancel
        request = asyncio.create_task(client.request("GET", url, headers={}, timeout=5.0))
        await asyncio.sleep(0.05)
        (token,) = client._in_flight
        client._deadline_passed(token, 0.0)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert not client._in_flight


async def test_an_outer_timeout_shorter_than_the_request_s_is_the_caller_s() -> None:
    async with _black_hole() as url, aiohttp.ClientSession() as http:
        client = HttpClient(http, max_body=1024)
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.1):
                await client.request("GET", url, headers={}, timeout=5.0)
        assert not isinstance(caught.value, ucwa_async.RequestTimeoutError)


async def test_concurrent_requests_each_keep_their_own_deadline() -> None:
    loop = asyncio.get_running_loop()
    async with _black_hole() as url, aiohttp.ClientSession() as http:
        client = HttpClient(http, max_body=1024)
        started = loop.time()

        async def one(timeout: float) -> float:
            with pytest.raises(ucwa_async.RequestTimeoutError):
                await client.request("GET", url, headers={}, timeout=timeout)
            return loop.time() - started

        short, long_ = await asyncio.gather(one(0.1), one(0.4))
        assert short < long_
        assert 0.09 <= short < 0.35
        assert 0.39 <= long_ < 1.5


def test_a_client_used_from_a_new_loop_keeps_its_deadlines() -> None:
    # A loop given up with a request still in flight must not leave the deadline timer tied
    # to it: on the next loop, a request still times out.
    async def never(*_args: Any, **_kwargs: Any) -> HttpResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    stub = types.SimpleNamespace(closed=False, connector=None, trace_configs=[])
    client = HttpClient(cast(aiohttp.ClientSession, stub), max_body=1024)
    client._request = never  # type: ignore[method-assign]

    async def stranded() -> None:
        # What a loop closed under a request leaves: an entry in flight, a timer armed.
        task = asyncio.current_task()
        assert task is not None
        client._deadline_loop = asyncio.get_running_loop()
        client._in_flight[-1] = _InFlight(task)
        client._deadlines.add(-1, asyncio.get_running_loop().time() + 3600)

    asyncio.run(stranded())

    async def again() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ucwa_async.RequestTimeoutError):
            await client.request("GET", "http://127.0.0.1:9/x", headers={}, timeout=0.1)
        return loop.time() - started

    assert asyncio.run(again()) < 1.5
    assert not client._in_flight


async def test_an_http_discovery_redirected_to_https_then_an_http_user_link_is_refused(
    aioresponses_mock: aioresponses,
) -> None:
    # RootURL.md: an http discovery is answered with a 3xx to https. From there on the
    # chain is https: an http user link is a downgrade, even though that https discovery
    # hop carries no token.
    aioresponses_mock.get(HTTP_DISCOVERY, status=302, headers={"Location": HTTPS_DISCOVERY})
    user = "http://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(HTTPS_DISCOVERY, payload=root(user=user))
    with pytest.raises(ucwa_async.InsecureTransportError):
        await session(HTTP_DISCOVERY, allow_insecure_http=True).open()
    assert methods(aioresponses_mock) == [("GET", HTTP_DISCOVERY), ("GET", HTTPS_DISCOVERY)]


async def test_an_https_request_off_the_chain_is_no_downgrade_of_it() -> None:
    # The session's origin is plain http (loopback): a request to an https URL elsewhere
    # (the escape hatch, a server's link to another host) leaves its own rule as it was.
    http = StubHttp()
    t = transport(http, "http://127.0.0.1:8080")
    await t.send("GET", "https://elsewhere.contoso.com/x")
    await t.send("GET", "http://127.0.0.1:8080/ucwa/x")
    assert [url for _, url, _ in http.sent][-1] == "http://127.0.0.1:8080/ucwa/x"


# -- RootURL.md's "security check": a discovery answer that came over plain http ----------

# RootURL.md, step 5, the reference's redirect answer (its href, on the sign-in domain).
REFERENCE_REDIRECT = "https://contoso.com/Autodiscover/AutodiscoverService.svc/root"


@pytest.mark.parametrize("rel", ["redirect", "user"])
async def test_an_http_discovery_answer_cannot_send_the_chain_to_another_domain(
    aioresponses_mock: aioresponses, rel: str
) -> None:
    # RootURL.md step 6 and its "Security check" chart: a redirect in a response NOT
    # received over https is followed only if its domain is the sign-in address's domain
    # (else a spoofed plain-http answer would send the password to any https host).
    elsewhere = "https://lyncdiscover.fabrikam.com/Autodiscover/AutodiscoverService.svc/root"
    if rel == "user":
        elsewhere += "/oauth/user"
    aioresponses_mock.get(HTTP_DISCOVERY, payload=root(**{rel: elsewhere}))
    with pytest.raises(ucwa_async.InsecureTransportError, match="security check") as caught:
        await session(HTTP_DISCOVERY).open()
    assert caught.value.url == elsewhere
    assert methods(aioresponses_mock) == [("GET", HTTP_DISCOVERY)]


async def test_an_http_discovery_answer_may_redirect_within_the_sign_in_domain(
    aioresponses_mock: aioresponses,
) -> None:
    # The chart's first "yes": the redirect's domain is the sign-in address's domain.
    aioresponses_mock.get(HTTP_DISCOVERY, payload=root(redirect=REFERENCE_REDIRECT))
    user = "https://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(REFERENCE_REDIRECT, payload=root(user=user))
    aioresponses_mock.get(user, status=403)  # ends the sign-in here: enough for this test
    with pytest.raises(ucwa_async.ForbiddenError):
        await session(HTTP_DISCOVERY).open()
    assert [url for _, url in methods(aioresponses_mock)] == [
        HTTP_DISCOVERY,
        REFERENCE_REDIRECT,
        user,
    ]


async def test_an_https_discovery_answer_may_redirect_anywhere(
    aioresponses_mock: aioresponses,
) -> None:
    # The chart's "Response received in HTTPS? yes": no domain check.
    elsewhere = "https://lyncdiscover.fabrikam.com/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(HTTPS_DISCOVERY, payload=root(redirect=elsewhere))
    aioresponses_mock.get(elsewhere, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await session(HTTPS_DISCOVERY).open()
    assert [url for _, url in methods(aioresponses_mock)] == [HTTPS_DISCOVERY, elsewhere]


async def test_the_discovery_url_s_domain_is_the_sign_in_domain_of_a_token(
    aioresponses_mock: aioresponses,
) -> None:
    # TokenAuth has no sign-in address: the domain the caller's discovery URL names
    # (https://lyncdiscover.<domain>, RootURL.md's table) stands for it on every hop.
    second = "http://contoso.com/Autodiscover/AutodiscoverService.svc/root"
    user = "https://lyncweb.contoso.com" + USER_PATH
    aioresponses_mock.get(HTTP_DISCOVERY, payload=root(redirect=second))
    aioresponses_mock.get(second, payload=root(user=user))
    aioresponses_mock.get(user, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await ucwa_async.Session(
            HTTP_DISCOVERY,
            auth=ucwa_async.TokenAuth("cwt=A"),
            keepalive_interval=None,
            connect_timeout=5.0,
        ).open()
    assert [url for _, url in methods(aioresponses_mock)] == [HTTP_DISCOVERY, second, user]


# A discovery URL's parent domain is "the domain of the autodiscovery service" only when
# the host is named as RootURL.md's table names one (LyncDiscover[Internal].<domain>):
# the parent of any other host may be a public suffix (co.uk, github.io) that anyone
# can hold a name under.
PUBLIC_SUFFIX_DISCOVERIES = pytest.mark.parametrize(
    ("discovery", "elsewhere"),
    [
        (
            "http://contoso.co.uk/Autodiscover/AutodiscoverService.svc/root",
            "https://evil.co.uk/Autodiscover/AutodiscoverService.svc/root",
        ),
        ("http://foo.github.io/root", "https://bar.github.io/root"),
    ],
    ids=["co.uk", "github.io"],
)


def _token_session(discovery: str) -> ucwa_async.Session:
    # No sign-in address: only the discovery URL's domain stands for the sign-in domain.
    return ucwa_async.Session(
        discovery,
        auth=ucwa_async.TokenAuth("cwt=A"),
        keepalive_interval=None,
        connect_timeout=5.0,
    )


@PUBLIC_SUFFIX_DISCOVERIES
@pytest.mark.parametrize("rel", ["redirect", "user"])
async def test_an_http_answer_cannot_send_the_chain_to_a_sibling_under_a_public_suffix(
    aioresponses_mock: aioresponses, discovery: str, elsewhere: str, rel: str
) -> None:
    aioresponses_mock.get(discovery, payload=root(**{rel: elsewhere}))
    with pytest.raises(ucwa_async.InsecureTransportError, match="security check") as caught:
        await _token_session(discovery).open()
    assert caught.value.url == elsewhere
    assert methods(aioresponses_mock) == [("GET", discovery)]


@PUBLIC_SUFFIX_DISCOVERIES
async def test_an_http_discovery_3xx_to_a_sibling_under_a_public_suffix_is_refused(
    aioresponses_mock: aioresponses, discovery: str, elsewhere: str
) -> None:
    aioresponses_mock.get(discovery, status=302, headers={"Location": elsewhere})
    with pytest.raises(ucwa_async.UnexpectedRedirectError):
        await session(discovery).open()
    assert methods(aioresponses_mock) == [("GET", discovery)]


async def test_a_lyncdiscover_host_under_a_public_suffix_stands_for_its_own_domain(
    aioresponses_mock: aioresponses,
) -> None:
    # LyncDiscover.contoso.co.uk: the domain is contoso.co.uk, not co.uk.
    discovery = "http://lyncdiscover.contoso.co.uk/Autodiscover/AutodiscoverService.svc/root"
    pool = "https://lyncweb.contoso.co.uk/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(discovery, payload=root(redirect=pool))
    aioresponses_mock.get(pool, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await _token_session(discovery).open()
    evil = "https://evil.co.uk/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(discovery, payload=root(redirect=evil))
    with pytest.raises(ucwa_async.InsecureTransportError, match="security check"):
        await _token_session(discovery).open()
    assert [url for _, url in methods(aioresponses_mock)] == [discovery, pool]


async def test_a_pool_s_3xx_within_the_discovery_url_s_domain_is_followed(
    aioresponses_mock: aioresponses,
) -> None:
    # The chain left LyncDiscover.contoso.com for a pool host (an https redirect link,
    # RootURL.md step 5); that host's 3xx to another host of contoso.com stays within
    # "the domain of the autodiscovery service" (step 3), though not within its own.
    pool = "https://lyncweb.contoso.com/Autodiscover/AutodiscoverService.svc/root"
    pool2 = "https://pool2.contoso.com/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(HTTPS_DISCOVERY, payload=root(redirect=pool))
    aioresponses_mock.get(pool, status=302, headers={"Location": pool2})
    aioresponses_mock.get(pool2, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await session(HTTPS_DISCOVERY).open()
    assert [url for _, url in methods(aioresponses_mock)] == [HTTPS_DISCOVERY, pool, pool2]


async def test_a_3xx_within_the_sign_in_domain_is_followed_whatever_the_discovery_host(
    aioresponses_mock: aioresponses,
) -> None:
    # A discovery URL named by the caller (a pool's FQDN, not LyncDiscover.<domain>):
    # its domain is itself, but a 3xx to another host of the sign-in address's domain
    # (bot@contoso.com) stays in "the domain of the autodiscovery service" (RootURL.md
    # step 3: LyncDiscover.<domain>, the domain of user@domain, step 1), as a plain-http
    # answer's links may (_checked_link). Before 94dc993 its parent domain allowed it.
    discovery = "https://lyncweb.contoso.com/Autodiscover/AutodiscoverService.svc/root"
    pool2 = "https://pool2.contoso.com/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(discovery, status=302, headers={"Location": pool2})
    aioresponses_mock.get(pool2, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await session(discovery).open()
    assert [url for _, url in methods(aioresponses_mock)] == [discovery, pool2]


async def test_a_3xx_outside_the_sign_in_domain_is_still_refused(
    aioresponses_mock: aioresponses,
) -> None:
    discovery = "https://lyncweb.contoso.com/Autodiscover/AutodiscoverService.svc/root"
    evil = "https://evil.com/Autodiscover/AutodiscoverService.svc/root"
    aioresponses_mock.get(discovery, status=302, headers={"Location": evil}, repeat=True)
    with pytest.raises(ucwa_async.UnexpectedRedirectError):
        await session(discovery).open()
    with pytest.raises(ucwa_async.UnexpectedRedirectError):
        await _token_session(discovery).open()  # no sign-in address: its own domain only
    assert [url for _, url in methods(aioresponses_mock)] == [discovery]


IDN_FORMS = pytest.mark.parametrize(
    ("typed", "served"),
    [("bücher.de", "xn--bcher-kva.de"), ("xn--bcher-kva.de", "BÜCHER.de")],
    ids=["typed-unicode", "typed-ascii"],
)


def _open(discovery: str, address: str) -> Any:
    return ucwa_async.Session(
        discovery,
        auth=ucwa_async.PasswordAuth(address, "hunter2"),
        keepalive_interval=None,
        connect_timeout=5.0,
    ).open()


# An international domain is one name in two spellings (IDNA: bücher.de is xn--bcher-kva.de
# on the wire). The caller types the sign-in address and the discovery URL one way, the
# server may write its links the other way: the same domain for RootURL.md's rules.


@IDN_FORMS
async def test_an_http_first_hop_redirected_to_https_in_the_other_spelling_of_its_domain(
    aioresponses_mock: aioresponses, typed: str, served: str
) -> None:
    # RootURL.md step 2: "In such cases Lync will always respond with a redirect to HTTPS";
    # step 3 fails only a "redirect to a domain different from the domain of the
    # autodiscovery service".
    discovery = f"http://lyncdiscover.{typed}/Autodiscover/AutodiscoverService.svc/root"
    secure = f"https://lyncdiscover.{served}/Autodiscover/AutodiscoverService.svc/root"
    user = f"https://lyncdiscover.{served}" + USER_PATH
    aioresponses_mock.get(discovery, status=302, headers={"Location": secure})
    aioresponses_mock.get(secure, payload=root(user=user))
    aioresponses_mock.get(user, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await _open(discovery, f"bot@{typed}")
    assert len(methods(aioresponses_mock)) == 3


@IDN_FORMS
async def test_the_security_check_s_sign_in_domain_in_the_other_spelling(
    aioresponses_mock: aioresponses, typed: str, served: str
) -> None:
    # The security check's "same domain as the sign-in address": an http answer (of a
    # discovery service in another domain) linking into the sign-in address's domain.
    discovery = "http://lyncdiscover.example.org/Autodiscover/AutodiscoverService.svc/root"
    user = f"https://lyncweb.{served}" + USER_PATH
    aioresponses_mock.get(discovery, payload=root(user=user))
    aioresponses_mock.get(user, status=403)
    with pytest.raises(ucwa_async.ForbiddenError):
        await _open(discovery, f"bot@{typed}")
    assert len(methods(aioresponses_mock)) == 2


@IDN_FORMS
async def test_the_security_check_still_refuses_another_international_domain(
    aioresponses_mock: aioresponses, typed: str, served: str
) -> None:
    discovery = "http://lyncdiscover.example.org/Autodiscover/AutodiscoverService.svc/root"
    user = "https://lyncweb.xn--bcher-kva.com" + USER_PATH  # bücher.com: not bücher.de
    aioresponses_mock.get(discovery, payload=root(user=user))
    with pytest.raises(ucwa_async.InsecureTransportError, match="security check"):
        await _open(discovery, f"bot@{typed}")
    assert len(methods(aioresponses_mock)) == 1
