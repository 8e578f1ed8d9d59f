"""Every fault kind, observed from the client side, and counted by the simulator."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest

from ucwa_async.testing import (
    ALL_FAULT_KINDS,
    InvitationRequest,
    Outcome,
    SimulatorConfig,
    UcwaSimulator,
)

from ._support import JSON, Client, MakeClient, events_of, next_href


async def test_callback_channel_error_on_next_n_posts(make_client: MakeClient) -> None:
    client = await make_client()
    pget = await client.start_pget()
    target = await client.continue_link()
    client.sim.faults.callback_channel_error(next_n=2)
    for op in ("a", "b"):
        reply = await client.post_json(target, {"operationId": op})
        assert reply.status == 500
        assert reply.json()["subcode"] == "CallbackChannelError"
    assert (await client.post_json(target, {"operationId": "c"})).status == 201
    counters = client.sim.counters
    assert counters.faults_injected["callback_channel_error"] == 2
    assert counters.reconnect_faults == 2
    assert [r.fault for r in client.sim.request_log if r.kind == "continue"] == [
        "callback_channel_error",
        "callback_channel_error",
        None,
    ]
    await pget


async def test_conflict_fault(make_client: MakeClient) -> None:
    client = await make_client()
    pget = await client.start_pget()
    client.sim.faults.conflict(subcode=None)
    reply = await client.post_json(await client.continue_link(), {"operationId": "a"})
    assert reply.status == 409
    assert reply.json()["code"] == "Conflict"
    assert "subcode" not in reply.json()
    await pget


async def test_drop_pget_then_redelivery(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=1.0))
    # Two: aiohttp re-sends a dropped idempotent GET once by itself.
    client.sim.faults.drop_pget(next_n=2)
    pget = await client.start_pget()
    await client.post_json(await client.continue_link(), {"operationId": "d"})
    with pytest.raises(aiohttp.ClientError):
        await pget
    assert client.sim.counters.faults_injected["drop_pget"] == 2
    # The dropped poll's batch was never acknowledged: the same URL delivers it.
    again = await client.request("GET", client.events_href)
    assert [e["type"] for e in events_of(again)] == ["started", "completed"]
    assert client.sim.counters.redeliveries >= 1


async def test_service_unavailable_and_too_many_requests(make_client: MakeClient) -> None:
    client = await make_client()
    faults = client.sim.faults
    faults.service_unavailable(retry_after=2, target="pget")
    faults.too_many_requests(retry_after=0.5, target="application")
    unavailable = await client.request("GET", client.events_href)
    assert unavailable.status == 503
    assert unavailable.headers["Retry-After"] == "2"
    assert unavailable.json()["code"] == "ServiceFailure"
    throttled = await client.request("GET", client.app_href)
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "1"  # whole seconds, rounded up (RFC 9110)
    assert (await client.request("GET", client.app_href)).status == 200
    assert client.sim.counters.faults_injected["service_unavailable"] == 1
    assert client.sim.counters.faults_injected["too_many_requests"] == 1


async def test_expire_tokens(make_client: MakeClient) -> None:
    client = await make_client()
    client.sim.faults.expire_tokens()
    assert (await client.request("GET", client.events_href)).status == 401
    assert client.sim.counters.faults_injected["expire_tokens"] == 1


async def test_duplicate_and_reordered_events(make_client: MakeClient) -> None:
    client = await make_client()
    target = await client.continue_link()
    client.sim.faults.duplicate_events()
    pget = await client.start_pget()
    await client.post_json(target, {"operationId": "dup"})
    first = await pget
    assert [e["type"] for e in events_of(first)] == ["started", "started", "completed", "completed"]
    # A redelivery repeats the faulty batch exactly.
    assert (await client.request("GET", client.events_href)).body == first.body

    client.sim.faults.reorder_events()
    pget = await client.start_pget(next_href(first))
    await client.post_json(target, {"operationId": "reo"})
    second = await pget
    assert [e["type"] for e in events_of(second)] == ["completed", "started"]
    injected = client.sim.counters.faults_injected
    assert injected["duplicate_events"] == 1
    assert injected["reorder_events"] == 1


async def test_events_before_201(make_client: MakeClient) -> None:
    client = await make_client()
    client.sim.faults.events_before_201()
    order: list[str] = []

    async def poll() -> None:
        reply = await client.request("GET", client.events_href)
        assert events_of(reply)[0]["type"] == "started"
        order.append("events")

    async def post() -> None:
        reply = await client.post_json(await client.continue_link(), {"operationId": "race"})
        assert reply.status == 201
        order.append("201")

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.05)
    await asyncio.gather(post(), poller)
    assert order == ["events", "201"]
    assert client.sim.counters.faults_injected["events_before_201"] == 1


@pytest.mark.parametrize("discard", [False, True])
async def test_resync_fault(make_client: MakeClient, discard: bool) -> None:
    client = await make_client(SimulatorConfig(completion_delay=0.0, pget_timeout_cap=0.2))
    pget = await client.start_pget()
    await client.post_json(await client.continue_link(), {"operationId": "rs"})
    await pget  # batch 1 formed, not acknowledged
    client.sim.faults.resync(discard_events=discard)
    reply = await client.request("GET", client.events_href)
    assert set(reply.json()["_links"]) == {"resync"}
    follow = await client.request("GET", reply.json()["_links"]["resync"]["href"])
    assert follow.status == 200
    assert len(events_of(follow)) == (0 if discard else 2)
    assert client.sim.counters.faults_injected["resync"] == 1


async def test_delete_application_fault(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(pget_timeout_cap=2.0))
    pget = await client.start_pget()
    assert client.sim.faults.delete_application() == 1
    gone = await pget
    assert gone.status == 404
    assert (gone.json()["code"], gone.json()["subcode"]) == ("NotFound", "ApplicationNotFound")
    assert client.sim.counters.faults_injected["delete_application"] == 1


@pytest.mark.parametrize("wire", ["json", "xml"])
async def test_malformed_body(make_client: MakeClient, wire: str) -> None:
    client = await make_client(wire=wire)
    client.sim.faults.malformed_body(target="pget")
    broken = await client.request("GET", client.events_href)
    assert broken.status == 200
    assert "json" in broken.content_type if wire == "json" else "xml" in broken.content_type
    with pytest.raises(Exception):  # noqa: B017, PT011 - either parser's own error
        broken.json() if wire == "json" else broken.xml()
    fine = await client.request("GET", client.events_href)
    assert fine.json() if wire == "json" else fine.xml()
    assert client.sim.counters.faults_injected["malformed_body"] == 1


async def test_malformed_application_body(make_client: MakeClient) -> None:
    client = await make_client(signed_in=False)
    await client.get_token()
    client.sim.faults.malformed_body(target="applications")
    reply = await client.request(
        "POST",
        client.sim.url("/ucwa/oauth/v1/applications"),
        body=b'{"UserAgent": "t", "EndpointId": "e"}',
        content_type=JSON,
    )
    assert reply.status == 201
    with pytest.raises(json.JSONDecodeError):
        reply.json()


async def test_latency(make_client: MakeClient) -> None:
    client = await make_client()
    client.sim.faults.latency(0.2, target="application")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await client.request("GET", client.app_href)).status == 200
    assert loop.time() - started >= 0.19
    client.sim.faults.latency(0, target="application")
    assert client.sim.counters.faults_injected["latency"] == 1


async def test_html_access_denied_fault(make_client: MakeClient) -> None:
    client = await make_client(signed_in=False)
    await client.get_token()
    client.sim.faults.html_access_denied(status=401)
    reply = await client.request(
        "POST",
        client.sim.url("/ucwa/oauth/v1/applications"),
        body=b'{"UserAgent": "t", "EndpointId": "e"}',
        content_type=JSON,
    )
    assert reply.status == 401
    assert reply.content_type.startswith("text/html")


async def _soak_fault_log(http: aiohttp.ClientSession, seed: int) -> list[str | None]:
    async with UcwaSimulator(config=SimulatorConfig(pget_timeout_cap=0.05), seed=seed) as sim:
        client = Client(http, sim)
        await client.sign_in()
        sim.faults.random(rate=0.5, kinds=["service_unavailable", "too_many_requests"], seed=seed)
        for _ in range(30):
            await client.request("GET", client.app_href)
        sim.faults.random(rate=0)
        return [r.fault for r in sim.request_log if r.kind == "application"]


async def test_random_faults_are_deterministic(http: aiohttp.ClientSession) -> None:
    first = await _soak_fault_log(http, seed=3)
    second = await _soak_fault_log(http, seed=3)
    assert first == second
    assert {"service_unavailable", "too_many_requests"} <= set(first)
    assert None in first


async def test_random_rejects_unknown_kinds(make_client: MakeClient) -> None:
    client = await make_client(signed_in=False)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        client.sim.faults.random(kinds=["meteor"])  # type: ignore[list-item]
    client.sim.faults.random(kinds=ALL_FAULT_KINDS, rate=0.2)
    client.sim.faults.clear()
    assert client.sim.faults.armed == {}


async def test_release_held_ends_every_connecting_invitation(make_client: MakeClient) -> None:
    def hold(_request: InvitationRequest, _rng: random.Random) -> Outcome:
        return Outcome(complete=False)

    client = await make_client(SimulatorConfig(outcome_rule=hold))
    pget = await client.start_pget()
    target = await client.continue_link()
    locations = []
    for op in ("h1", "h2", "h3"):
        reply = await client.post_json(target, {"operationId": op})
        assert reply.status == 201
        locations.append(reply.headers["Location"])
    sim = client.sim
    assert [sim.invitation_state(loc) for loc in locations] == ["Connecting"] * 3
    assert sim.release_held() == 3
    assert [sim.invitation_state(loc) for loc in locations] == ["Connected"] * 3
    assert sim.release_held() == 0
    await pget


async def test_unauthorized_forever_answers_401_while_the_token_endpoint_grants(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    sim = client.sim
    sim.faults.unauthorized_forever()  # default target: the P-GET
    for _ in range(3):
        reply = await client.request("GET", client.events_href)
        assert reply.status == 401
        assert "MsRtcOAuth" in reply.headers["WWW-Authenticate"]
        await client.get_token()  # a fresh grant changes nothing
    # Other requests are unaffected; the fault never runs out until clear().
    assert (await client.request("GET", client.app_href)).status == 200
    assert sim.faults.armed["unauthorized_forever"] > 10**6
    assert sim.counters.faults_injected["unauthorized_forever"] == 3
    assert [r.fault for r in sim.request_log if r.kind == "pget"] == ["unauthorized_forever"] * 3
    sim.faults.clear()
    pget = await client.start_pget()
    sim.faults.resync()  # nothing else would end the held poll soon
    assert (await pget).status == 200


async def test_unauthorized_forever_spares_the_token_endpoint(make_client: MakeClient) -> None:
    client = await make_client()
    client.sim.faults.unauthorized_forever(target="any", next_n=2)
    await client.get_token()  # the token endpoint (no auth) still grants
    assert (await client.request("GET", client.app_href)).status == 401
    assert (await client.request("GET", client.app_href)).status == 401
    assert (await client.request("GET", client.app_href)).status == 200
    assert client.sim.counters.faults_injected["unauthorized_forever"] == 2


async def test_unauthorized_forever_html_is_a_proxy_page(make_client: MakeClient) -> None:
    client = await make_client()
    client.sim.faults.unauthorized_forever(html=True, next_n=1)
    reply = await client.request("GET", client.events_href)
    assert reply.status == 401
    assert "WWW-Authenticate" not in reply.headers
    assert reply.content_type.startswith("text/html")
    assert b"Access is denied" in reply.body
    assert client.sim.counters.faults_injected["unauthorized_forever"] == 1
    assert client.sim.faults.armed == {}


@pytest.mark.parametrize("status", [302, 307])
async def test_redirect_3xx_sends_a_login_page_and_starts_nothing(
    make_client: MakeClient, status: int
) -> None:
    client = await make_client()
    sim = client.sim
    target = await client.continue_link()
    sim.faults.redirect_3xx(status=status)
    async with client.http.post(
        client.url(target),
        json={"operationId": "r"},
        headers=client.auth(),
        allow_redirects=False,
    ) as reply:
        assert reply.status == status
        assert "/adfs/ls/" in reply.headers["Location"]
        assert reply.content_type == "text/html"
    assert sim.counters.invitations_created == 0
    assert sim.counters.faults_injected["redirect_3xx"] == 1
    sim.faults.redirect_3xx(target="conversationLogs")
    logs = client.url(client.app_href + "/communication/conversationLogs")
    async with client.http.get(logs, headers=client.auth(), allow_redirects=False) as listing:
        assert listing.status == 302
    assert [r.fault for r in sim.request_log][-2:] == ["redirect_3xx", "redirect_3xx"]
    with pytest.raises(ValueError, match="3xx"):
        sim.faults.redirect_3xx(status=200)


def test_hostile_kinds_are_fault_kinds() -> None:
    from ucwa_async.testing import HOSTILE_FAULT_KINDS

    assert {"unauthorized_forever", "redirect_3xx"} <= HOSTILE_FAULT_KINDS
    assert set(ALL_FAULT_KINDS) >= HOSTILE_FAULT_KINDS
