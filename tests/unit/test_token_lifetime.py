"""The token's life on a fake clock: a password token is re-granted before the expiry its
grant announced (AuthenticationInUCWA.md, "Refreshing an OAuth token": "The client
application should monitor the expiration time and refresh the token as required"),
within bounds, and a failing token endpoint is retried ever more slowly."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

import ucwa_async
from ucwa_async._core.backoff import Backoff
from ucwa_async._http import HttpResponse
from ucwa_async._transport import Transport

ORIGIN = "https://lyncweb.contoso.com"
TOKEN_URL = ORIGIN + "/WebTicket/oauthtoken"
URL = ORIGIN + "/ucwa/oauth/v1/applications/1/people/contacts"
EVENTS = ORIGIN + "/ucwa/oauth/v1/applications/1/events?ack=1"
JSON = "application/json"
# CreateAnApplication.md, step 4 (the challenge of the first 401).
CHALLENGE = HttpResponse(
    method="GET",
    url=URL,
    status=401,
    content_type="text/html",
    body=b"<html>401 - Unauthorized</html>",
    www_authenticate=(
        f'MsRtcOAuth href="{TOKEN_URL}",'
        'grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"',
    ),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """Grants tokens (``expires_in`` as set); answers everything else 200 {}."""

    def __init__(self, expires_in: object = 3600) -> None:
        self.expires_in = expires_in
        self.token_status = 200
        self.sent: list[tuple[str, str, str | None]] = []
        self.issued = 0

    @property
    def grants(self) -> int:
        return sum(1 for method, _, _ in self.sent if method == "POST")

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
        self.sent.append((method, url, headers.get("Authorization")))
        if url != TOKEN_URL:
            return HttpResponse(method=method, url=url, status=200, content_type=JSON, body=b"{}")
        if self.token_status != 200:
            body = json.dumps({"error": "server_error"}).encode()
            return HttpResponse(
                method=method, url=url, status=self.token_status, content_type=JSON, body=body
            )
        self.issued += 1
        grant: dict[str, Any] = {"access_token": f"cwt={self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            grant["expires_in"] = self.expires_in
        return HttpResponse(
            method=method, url=url, status=200, content_type=JSON, body=json.dumps(grant).encode()
        )


def transport(
    server: Server,
    clock: Clock,
    auth: ucwa_async.PasswordAuth | ucwa_async.TokenAuth | None = None,
    backoff: Backoff | None = None,
) -> tuple[Transport, list[int]]:
    renewed: list[int] = []
    t = Transport(
        server,  # type: ignore[arg-type]
        auth=auth or ucwa_async.PasswordAuth("bot@contoso.com", "hunter2"),
        trusted_origins={ORIGIN},
        accept=JSON,
        user_agent="t",
        request_timeout=1.0,
        max_body=1 << 20,
        backoff=backoff or Backoff(base=0.5, cap=10.0, rng=random.Random(0)),
        retry_after_cap=0.1,
        is_closed=lambda: False,
        on_reauthenticated=lambda: renewed.append(1),
        clock=clock,
    )
    return t, renewed


async def signed_in(server: Server, clock: Clock) -> tuple[Transport, list[int]]:
    t, renewed = transport(server, clock)
    await t.authenticate(ORIGIN, URL, CHALLENGE, 0)
    assert server.grants == 1
    return t, renewed


async def test_a_password_token_is_granted_again_before_it_expires() -> None:
    server, clock = Server(expires_in=3600), Clock()
    t, renewed = await signed_in(server, clock)
    clock.now += 3000  # well within its hour
    await t.send("GET", URL)
    await t.poll(EVENTS, 1.0)
    assert server.grants == 1
    clock.now += 301  # less than five minutes left: the next request renews it first
    await t.send("GET", URL)
    assert [m for m, _, _ in server.sent[-2:]] == ["POST", "GET"]
    assert server.sent[-1][2] == "Bearer cwt=2"
    assert renewed == [1]
    await t.send("GET", URL)
    await t.poll(EVENTS, 1.0)
    assert server.grants == 2  # the new token has its own hour
    assert server.sent[-1][2] == "Bearer cwt=2"


async def test_the_event_channel_renews_a_token_due_too() -> None:
    server, clock = Server(expires_in=28289), Clock()  # CreateAnApplication.md's grant
    t, _ = await signed_in(server, clock)
    clock.now += 28289 - 299
    await t.poll(EVENTS, 1.0)
    assert [(m, a) for m, _, a in server.sent[-2:]] == [("POST", None), ("GET", "Bearer cwt=2")]


@pytest.mark.parametrize("expires_in", [0, 1, 2, 59])
async def test_a_tiny_expires_in_costs_at_most_one_grant_a_minute(expires_in: int) -> None:
    server, clock = Server(expires_in=expires_in), Clock()
    t, _ = await signed_in(server, clock)
    for _ in range(600):  # ten minutes of a request a second
        await t.send("GET", URL)
        clock.now += 1.0
    assert server.grants <= 1 + 10
    # ... and never more than one per request either, whatever the clock.
    before = server.grants
    for _ in range(50):
        await t.send("GET", URL)
    assert server.grants <= before + 1


@pytest.mark.parametrize("expires_in", [None, -5, "soon", True, [3600], 10**400])
async def test_no_usable_expires_in_means_no_renewal(expires_in: object) -> None:
    server, clock = Server(expires_in=expires_in), Clock()
    t, _ = await signed_in(server, clock)
    clock.now += 10 * 86400.0
    await t.send("GET", URL)
    assert server.grants == 1


async def test_expires_in_as_text_is_understood() -> None:
    server, clock = Server(expires_in="3600"), Clock()
    t, _ = await signed_in(server, clock)
    clock.now += 3400
    await t.send("GET", URL)
    assert server.grants == 2


async def test_a_token_auth_token_is_never_renewed_unasked() -> None:
    # TokenAuth gives no lifetime: its provider is asked again only after a 401.
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"cwt=mine{calls}"

    server, clock = Server(), Clock()
    t, _ = transport(server, clock, ucwa_async.TokenAuth(provider))
    await t.authenticate(ORIGIN, URL, CHALLENGE, 0)
    clock.now += 10 * 86400.0
    await t.send("GET", URL)
    await t.poll(EVENTS, 1.0)
    assert calls == 1
    assert server.grants == 0


async def test_a_failing_token_endpoint_is_retried_ever_more_slowly_never_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The token expired (the event channel's P-GET gets 401) while the token endpoint
    # answers 500: the channel asks for a new token at its backoff's pace (a second
    # here). The password POSTs come ever further apart, up to five minutes; the
    # session is never given up for it; the log has a line per doubling, not per try.
    server, clock = Server(expires_in=None), Clock()
    # No ordinary spacing (cap 0): a request sleeps that out (real time, not this clock).
    t, _ = transport(server, clock, backoff=Backoff(base=0.5, cap=0.0))
    await t.authenticate(ORIGIN, URL, CHALLENGE, 0)
    await t.poll(EVENTS, 1.0)  # the token worked: its 401 is an expiry
    server.token_status = 500
    posts: list[float] = []
    caplog.set_level("DEBUG", logger="ucwa_async")
    start = clock.now
    for _ in range(2 * 3600):
        before = server.grants
        with pytest.raises(ucwa_async.UcwaError) as caught:
            await t.reauthenticate(EVENTS)
        assert not isinstance(caught.value, ucwa_async.AuthenticationError)
        if server.grants > before:
            posts.append(clock.now - start)
            assert isinstance(caught.value, ucwa_async.ServiceFailureError)
        else:  # no POST: told when the next one may go
            assert isinstance(caught.value, ucwa_async.RetryLaterError)
            assert caught.value.retry_after is not None
            assert 0 < caught.value.retry_after <= 300
        clock.now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(posts)]
    assert len([p for p in posts if p < 150]) <= 9  # was 11, then every 11-27 s forever
    assert gaps == sorted(gaps)
    assert 300 <= max(gaps) <= 301
    assert len(posts) <= 8 + 2 * 3600 // 300 + 1
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert 1 <= len(warnings) <= 6  # at the 1st, 2nd, 4th, 8th... failure
    assert "hunter2" not in caplog.text
    # The endpoint works again: the next try gets a token, and the spacing starts over.
    server.token_status = 200
    while True:
        try:
            await t.reauthenticate(EVENTS)
            break
        except ucwa_async.RetryLaterError:
            clock.now += 1.0
    assert t.tokens[ORIGIN] == "Bearer cwt=2"
    assert "works again" in caplog.records[-2].getMessage() + caplog.records[-1].getMessage()
    await t.poll(EVENTS, 1.0)
    server.token_status = 500
    with pytest.raises(ucwa_async.ServiceFailureError):
        await t.reauthenticate(EVENTS)
    clock.now += 1.0  # base (0.5 s) has passed: not minutes
    with pytest.raises(ucwa_async.ServiceFailureError):
        await t.reauthenticate(EVENTS)
    assert server.grants == len(posts) + 4


async def test_a_failed_renewal_keeps_the_current_token_and_waits_its_spacing() -> None:
    server, clock = Server(expires_in=3600), Clock()
    t, _ = await signed_in(server, clock)
    clock.now += 3400
    server.token_status = 500
    await t.send("GET", URL)  # the renewal failed: the request went with the valid token
    assert [m for m, _, _ in server.sent[-2:]] == ["POST", "GET"]
    assert server.sent[-1][2] == "Bearer cwt=1"
    for _ in range(20):  # not one POST per request
        await t.send("GET", URL)
    assert server.grants == 2
    server.token_status = 200
    clock.now += 1.0
    await t.send("GET", URL)
    assert server.grants == 3
    assert server.sent[-1][2] == "Bearer cwt=2"


async def test_a_throttled_renewal_does_not_hold_the_request() -> None:
    # The token is still valid: a 503 from the token endpoint is not waited out (up to
    # retry_after_cap, three times) by the request that happened to find it due.
    server, clock = Server(expires_in=3600), Clock()
    t, _ = await signed_in(server, clock)
    clock.now += 3400
    server.token_status = 503
    await t.send("GET", URL)
    assert [m for m, _, _ in server.sent[-2:]] == ["POST", "GET"]
    assert server.grants == 2
    assert server.sent[-1][2] == "Bearer cwt=1"


async def test_the_reference_s_400_server_error_is_a_failing_endpoint_not_a_refusal() -> None:
    # AuthenticationInUCWA.md, "Error conditions": a failed token request gets "a 400
    # response and an error body", server_error ("an unexpected error on the server") one
    # of its values. The event channel retries it as a failing endpoint (an
    # AuthenticationError would end the channel for good), and a renewal it failed is
    # tried again once the endpoint works (a refused one is not).
    server, clock = Server(expires_in=3600), Clock()
    t, _ = await signed_in(server, clock)
    await t.poll(EVENTS, 1.0)
    server.token_status = 400  # {"error": "server_error"}
    with pytest.raises(ucwa_async.UcwaError) as caught:
        await t.reauthenticate(EVENTS)
    assert not isinstance(caught.value, ucwa_async.AuthenticationError)
    assert isinstance(caught.value, ucwa_async.ServiceFailureError)
    assert (caught.value.status, caught.value.code) == (400, "server_error")
    assert server.grants == 2

    server, clock = Server(expires_in=3600), Clock()
    t, _ = await signed_in(server, clock)
    clock.now += 3400
    server.token_status = 400
    await t.send("GET", URL)  # the renewal failed: the request went with the valid token
    assert server.grants == 2
    assert server.sent[-1][2] == "Bearer cwt=1"
    server.token_status = 200
    clock.now += 1.0
    await t.send("GET", URL)
    assert server.grants == 3
    assert server.sent[-1][2] == "Bearer cwt=2"


async def test_a_renewal_throttled_with_retry_after_is_not_tried_again_before_it() -> None:
    # A renewal that met a 503 with Retry-After does not wait it out (the token is still
    # valid), but the next renewal does not go before it either: it went 0.5 s later,
    # then 1 s, 2 s... a password POST every few seconds at an endpoint that asked for two
    # minutes' rest.
    class Throttled(Server):
        async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
            response = await super().request(method, url, **kwargs)
            if url == TOKEN_URL and response.status == 503:
                return attrs.evolve(response, retry_after="120")
            return response

    server, clock = Throttled(expires_in=3600), Clock()
    t, _ = await signed_in(server, clock)
    clock.now += 3400
    server.token_status = 503
    await t.send("GET", URL)
    assert server.grants == 2
    server.token_status = 200
    for _ in range(11):  # 110 s of requests: none of them renews yet
        clock.now += 10.0
        await t.send("GET", URL)
    assert server.grants == 2
    assert server.sent[-1][2] == "Bearer cwt=1"
    clock.now += 15.0
    await t.send("GET", URL)
    assert server.grants == 3
    assert server.sent[-1][2] == "Bearer cwt=2"


# -- one endpoint refusing every token, the rest of the API taking it ---------------------

KEEPALIVE = ORIGIN + "/ucwa/oauth/v1/applications/1/me/reportMyActivity"


class Refusing(Server):
    """Refuses every token at the URLs in ``refusing`` (401 with the challenge), and any
    token granted before number ``valid_from`` everywhere (an expiry); grants forever."""

    def __init__(self, expires_in: object = None) -> None:
        super().__init__(expires_in)
        self.refusing = {KEEPALIVE}
        self.valid_from = 0

    @property
    def grants(self) -> int:
        return sum(1 for method, url, _ in self.sent if (method, url) == ("POST", TOKEN_URL))

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        if url != TOKEN_URL:
            token = kwargs["headers"].get("Authorization") or "Bearer cwt=-1"
            if url in self.refusing or int(token.rpartition("=")[2]) < self.valid_from:
                self.sent.append((method, url, kwargs["headers"].get("Authorization")))
                return attrs.evolve(CHALLENGE, method=method, url=url)
        return await super().request(method, url, **kwargs)


async def test_an_endpoint_refusing_every_token_gets_no_password_grant_per_keepalive() -> None:
    # The keep-alive's reportMyActivity POST answers 401 to every token while the rest of
    # the API (requests and the event channel) takes the same tokens. Each 401 was a
    # re-authentication (the token had worked elsewhere: an expiry, free in the budget,
    # whose window slides within the 180 s period): a password grant every keep-alive,
    # for as long as the client ran.
    server, clock = Refusing(), Clock()
    t, _ = await signed_in(server, clock)
    grants_at: list[float] = []
    start = clock.now
    for _ in range(7 * 86400 // 180):  # a week of keep-alives
        clock.now += 180.0
        await t.send("GET", URL)
        await t.poll(EVENTS, 1.0)
        before = server.grants
        with pytest.raises(ucwa_async.AuthenticationError) as caught:
            await t.send("POST", KEEPALIVE)
        assert caught.value.status == 401
        if server.grants > before:
            grants_at.append(clock.now - start)
    # The refusals a budget window allows (an expiry and three fresh tokens), then ever
    # longer holds: 1, 2, 4... minutes up to a day.
    assert len(grants_at) <= 4 + 12 + 7, grants_at
    gaps = [b - a for a, b in itertools.pairwise(grants_at)]
    assert gaps[3:] == sorted(gaps[3:])
    assert 86400 <= gaps[-1] <= 86400 + 180
    held = caught.value
    assert "reportMyActivity" in str(held)
    assert held.retry_after is not None
    assert server.sent[-1] == ("POST", KEEPALIVE, t.tokens[ORIGIN])  # still tried, no grant
    # The rest of the API still gets a new token when its own expires.
    server.valid_from = server.issued + 1
    before = server.grants
    await t.send("GET", URL)
    assert server.grants == before + 1
    assert server.sent[-1] == ("GET", URL, f"Bearer cwt={server.issued}")


async def test_an_endpoint_that_takes_a_token_again_is_forgotten() -> None:
    server, clock = Refusing(), Clock()
    t, _ = await signed_in(server, clock)
    for _ in range(6):
        clock.now += 180.0
        await t.send("GET", URL)
        with pytest.raises(ucwa_async.AuthenticationError):
            await t.send("POST", KEEPALIVE)
    clock.now += 1.0
    before = server.grants
    with pytest.raises(ucwa_async.AuthenticationError):  # held: no grant
        await t.send("POST", KEEPALIVE)
    assert server.grants == before
    server.refusing.clear()  # fixed: the current token works there (no grant needed)
    await t.send("POST", KEEPALIVE)
    assert server.grants == before
    # A genuine expiry found by that endpoint is then re-granted at once, as anywhere.
    server.valid_from = server.issued + 1
    await t.send("POST", KEEPALIVE)
    assert server.grants == before + 1
    assert server.sent[-1] == ("POST", KEEPALIVE, f"Bearer cwt={server.issued}")


async def test_a_fresh_token_refused_once_by_an_endpoint_costs_no_hold() -> None:
    # A front end that has not seen a fresh token yet (the application POST's retries):
    # the refusals a budget window allows hold nothing.
    server, clock = Refusing(), Clock()
    t, _ = await signed_in(server, clock)
    await t.send("GET", URL)
    with pytest.raises(ucwa_async.AuthenticationError):
        await t.send("POST", KEEPALIVE)
    assert server.grants == 2
    server.refusing.clear()
    server.valid_from = server.issued + 1  # and the current token expires
    clock.now += 1.0
    await t.send("POST", KEEPALIVE)
    assert server.grants == 3
