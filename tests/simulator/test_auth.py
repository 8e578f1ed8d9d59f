"""Sign-in: challenges and their variants, grants, per-host tokens, redirects."""

from __future__ import annotations

import aiohttp
import pytest

from ucwa_async.testing import SimulatorConfig

from ._support import JSON, MakeClient

GRANTS = 'grant_type="urn:microsoft.rtc:windows,urn:microsoft.rtc:anonmeeting,password"'


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (SimulatorConfig(), ['MsRtcOAuth href="{base}/WebTicket/oauthtoken",' + GRANTS]),
        (
            SimulatorConfig(challenge_href_quoted=False),
            ["MsRtcOAuth href={base}/WebTicket/oauthtoken," + GRANTS],
        ),
        (
            SimulatorConfig(dual_challenge="combined"),
            [
                'Bearer trusted_issuers="00000001-0000-0000-c000-000000000000@contoso.com", '
                'MsRtcOAuth href="{base}/WebTicket/oauthtoken",' + GRANTS
            ],
        ),
        (
            SimulatorConfig(dual_challenge="separate"),
            [
                'Bearer trusted_issuers="00000001-0000-0000-c000-000000000000@contoso.com"',
                'MsRtcOAuth href="{base}/WebTicket/oauthtoken",' + GRANTS,
            ],
        ),
    ],
)
async def test_challenge_variants(
    make_client: MakeClient, config: SimulatorConfig, expected: list[str]
) -> None:
    client = await make_client(config, signed_in=False)
    root = (await client.request("GET", client.sim.discovery_url)).json()
    reply = await client.request("GET", root["_links"]["user"]["href"])
    assert reply.status == 401
    base = client.sim.base_url
    assert reply.headers.getall("WWW-Authenticate") == [e.format(base=base) for e in expected]


async def test_discovery_in_xml(make_client: MakeClient) -> None:
    client = await make_client(signed_in=False, wire="xml")
    root = (await client.request("GET", client.sim.discovery_url)).xml()["resource"]
    links = {link["@rel"]: link["@href"] for link in root["link"]}
    assert links["user"] == client.sim.base_url + (
        "/autodiscover/autodiscoverservice.svc/root/oauth/user"
    )


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"grant_type": "password", "username": "alice@contoso.com", "password": "no"},
            "invalid_grant",
        ),
        ({"grant_type": "password", "username": "mallory", "password": "x"}, "invalid_grant"),
        ({"grant_type": "urn:microsoft.rtc:windows"}, "unsupported_grant_type"),
    ],
)
async def test_refused_grants(
    make_client: MakeClient, http: aiohttp.ClientSession, form: dict[str, str], error: str
) -> None:
    client = await make_client(signed_in=False)
    async with http.post(client.sim.url("/WebTicket/oauthtoken"), data=form) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == error


async def test_token_shape(make_client: MakeClient, http: aiohttp.ClientSession) -> None:
    client = await make_client(signed_in=False)
    form = {
        "grant_type": "password",
        "username": client.sim.username,
        "password": client.sim.password,
    }
    async with http.post(client.sim.url("/WebTicket/oauthtoken"), data=form) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json;charset=UTF-8"
        body = await resp.json()
    assert body["access_token"].startswith("cwt=")
    assert body["expires_in"] == 28799
    assert body["token_type"] == "Bearer"


async def test_request_log_never_holds_the_token(make_client: MakeClient) -> None:
    client = await make_client()
    assert client.token is not None
    log = client.sim.request_log
    assert all(client.token not in repr(record) for record in log)
    user_gets = [r for r in log if r.kind == "user"]
    assert [r.authorized for r in user_gets] == [True]
    assert log[0].kind == "discovery"
    assert log[0].authorized is False
    assert log[-1].kind == "applications"
    assert log[-1].status == 201


async def test_redirect_hops_to_another_host_with_its_own_token(make_client: MakeClient) -> None:
    config = SimulatorConfig(redirect_hops=1, redirect_host="localhost")
    client = await make_client(config, signed_in=False)
    sim = client.sim
    root = (await client.request("GET", sim.discovery_url)).json()
    await client.get_token()
    first = (await client.request("GET", root["_links"]["user"]["href"])).json()
    redirect = first["_links"]["redirect"]["href"]
    assert redirect == f"{sim.redirect_base_url}/pool1/autodiscover/autodiscoverservice.svc/root"
    pool_root = (await client.request("GET", redirect)).json()
    pool_user = pool_root["_links"]["user"]["href"]
    # The first host's token is no good on the redirect host.
    refused = await client.request("GET", pool_user)
    assert refused.status == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert f'href="{sim.redirect_base_url}/WebTicket/oauthtoken"' in challenge
    await client.get_token(origin=sim.redirect_base_url)
    user = (await client.request("GET", pool_user)).json()
    apps = user["_links"]["applications"]["href"]
    assert apps == f"{sim.redirect_base_url}/pool1/ucwa/oauth/v1/applications"
    created = await client.request(
        "POST", apps, body=b'{"UserAgent": "t", "EndpointId": "e"}', content_type=JSON
    )
    assert created.status == 201
    assert created.json()["_links"]["self"]["href"].startswith("/pool1/ucwa/oauth/v1/")
    assert {r.host for r in sim.request_log} == {"127.0.0.1", "localhost"}


async def test_expired_token_answers_401(make_client: MakeClient) -> None:
    client = await make_client()
    client.sim.faults.expire_tokens()
    reply = await client.request("GET", client.app_href)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("MsRtcOAuth ")
    assert client.sim.request_log[-1].fault == "expire_tokens"
    await client.get_token()
    assert (await client.request("GET", client.app_href)).status == 200


async def test_html_access_denied_on_app_create(make_client: MakeClient) -> None:
    client = await make_client(SimulatorConfig(html_access_denied_on_app_create=2), signed_in=False)
    await client.get_token()
    apps = client.sim.url("/ucwa/oauth/v1/applications")
    body = b'{"UserAgent": "t", "EndpointId": "e"}'
    for _ in range(2):
        denied = await client.request("POST", apps, body=body, content_type=JSON)
        assert denied.status == 403
        assert denied.content_type.startswith("text/html")
        assert b"Access is denied" in denied.body
    assert (await client.request("POST", apps, body=body, content_type=JSON)).status == 201
    assert client.sim.counters.faults_injected["html_access_denied"] == 2


async def test_same_endpoint_returns_the_live_application(make_client: MakeClient) -> None:
    client = await make_client()
    again = await client.request(
        "POST",
        client.sim.url("/ucwa/oauth/v1/applications"),
        body=b'{"UserAgent": "t", "EndpointId": "ep-1"}',
        content_type=JSON,
    )
    assert again.json()["_links"]["self"] == client.app["_links"]["self"]
    other = await client.request(
        "POST",
        client.sim.url("/ucwa/oauth/v1/applications"),
        body=b'<input xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
        b'<property name="UserAgent">t</property><property name="EndpointId">ep-2</property>'
        b"</input>",
        content_type="application/xml",
    )
    assert other.status == 201
    assert client.sim.application_ids == ["833", "834"]
