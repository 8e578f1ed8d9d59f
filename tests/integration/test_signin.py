"""Sign-in per protocol doc section 1, against the simulator, in both wires.

discovery -> 401 MsRtcOAuth challenge -> password grant -> user -> applications
-> application -> event channel -> makeMeAvailable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest

import ucwa_async
from ucwa_async._http import HttpClient, HttpResponse
from ucwa_async.testing import RequestRecord, SimulatorConfig, UcwaSimulator

from ._support import assert_no_leftover_tasks

SessionFactory = Callable[..., ucwa_async.Session]


def _kinds(records: list[RequestRecord]) -> list[tuple[str, str, int]]:
    return [(r.method, r.kind, r.status) for r in records]


def _first(records: list[RequestRecord], kind: str, method: str | None = None) -> int:
    for index, record in enumerate(records):
        if record.kind == kind and (method is None or record.method == method):
            return index
    raise AssertionError(f"no {method or ''} {kind} request in {_kinds(records)}")


async def test_sign_in_follows_protocol_order(
    simulator: UcwaSimulator, make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    async with make_session(simulator) as session:
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        assert session.application_url is not None
        assert session.application_url.startswith(simulator.base_url + "/ucwa/oauth/v1/")
        log = simulator.request_log
        # The handshake, in this exact order (P-GETs are logged when they end).
        handshake = [r for r in log if r.kind != "pget"][:6]
        assert _kinds(handshake) == [
            ("GET", "discovery", 200),
            ("GET", "user", 401),
            ("POST", "token", 200),
            ("GET", "user", 200),
            ("POST", "applications", 201),
            ("POST", "makeMeAvailable", 204),
        ]
        # Discovery and the challenge go out without a token; the token endpoint never
        # gets one; everything after the grant carries it.
        assert [r.authorized for r in handshake] == [False, False, False, True, True, True]
        assert simulator.counters.tokens_issued == 1
        assert simulator.counters.applications_created == 1
        assert session.stats.applications_created == 1
        # A Session that is open has really signed in: it can use the application.
        logs = await session.conversation_logs(limit=1)
        assert len(logs) == 1
    await assert_no_leftover_tasks(no_leftover_tasks)


@pytest.mark.parametrize(
    ("quoted", "dual"),
    [
        (True, "off"),
        (False, "off"),
        (True, "combined"),
        (False, "combined"),
        (True, "separate"),
        (False, "separate"),
    ],
    ids=lambda v: str(v),
)
async def test_challenge_variants_are_parsed(
    make_session: SessionFactory,
    quoted: bool,
    dual: Literal["off", "combined", "separate"],
) -> None:
    config = SimulatorConfig(challenge_href_quoted=quoted, dual_challenge=dual)
    async with UcwaSimulator(config=config) as sim, make_session(sim) as session:
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        tokens = [r for r in sim.request_log if r.kind == "token"]
        assert [(r.method, r.path, r.status) for r in tokens] == [
            ("POST", "/WebTicket/oauthtoken", 200)
        ]
        assert sim.counters.tokens_issued == 1


async def test_redirect_hops_within_limit(make_session: SessionFactory) -> None:
    config = SimulatorConfig(redirect_hops=2)
    async with (
        UcwaSimulator(config=config) as sim,
        make_session(sim, max_redirects=2) as session,
    ):
        assert session.application_url is not None
        assert "/pool2/ucwa/oauth/v1/applications/" in session.application_url
        discovered = [r.path for r in sim.request_log if r.kind == "discovery"]
        assert discovered == [
            "/autodiscover/autodiscoverservice.svc/root",
            "/pool1/autodiscover/autodiscoverservice.svc/root",
            "/pool2/autodiscover/autodiscoverservice.svc/root",
        ]
        creations = [r for r in sim.request_log if r.kind == "applications"]
        assert [(r.path, r.status) for r in creations] == [
            ("/pool2/ucwa/oauth/v1/applications", 201)
        ]
        assert len(await session.conversation_logs()) == 3


async def test_too_many_redirect_hops_is_a_clear_error(
    make_session: SessionFactory, no_leftover_tasks: Callable[[], None]
) -> None:
    config = SimulatorConfig(redirect_hops=3)
    async with UcwaSimulator(config=config) as sim:
        session = make_session(sim, max_redirects=2)
        with pytest.raises(ucwa_async.UcwaError, match="redirect") as caught:
            async with session:
                pytest.fail("the session must not open")  # pragma: no cover
        assert "2" in str(caught.value)
        assert not isinstance(caught.value, ucwa_async.SessionClosedError)
        assert sim.counters.applications_created == 0
        assert session.closed
        assert session._client is not None
        assert session._client.closed
        # Bounded: the client stopped after max_redirects + 1 discoveries.
        assert len([r for r in sim.request_log if r.kind == "discovery"]) == 3
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_redirect_to_other_host_gets_its_own_token(make_session: SessionFactory) -> None:
    config = SimulatorConfig(redirect_hops=1, redirect_host="localhost")
    async with UcwaSimulator(config=config) as sim, make_session(sim) as session:
        await session.conversation_logs(limit=1)
        log = sim.request_log
        tokens_by_host = {r.host: r for r in log if r.kind == "token"}
        assert set(tokens_by_host) == {"127.0.0.1", "localhost"}
        assert sim.counters.tokens_issued == 2
        # Every token the server saw was valid for the host that saw it: the first
        # host's token was never presented to the redirect host.
        assert not [r for r in log if r.authorized and r.status == 401]
        assert sim.counters.token_rejections == 2  # one challenge per host, no more
        # The redirect host was only ever contacted without a token until it issued one.
        first_localhost_token = next(
            i for i, r in enumerate(log) if r.kind == "token" and r.host == "localhost"
        )
        before = [r for r in log[:first_localhost_token] if r.host == "localhost"]
        assert [r.kind for r in before] == ["discovery", "user"]
        assert not any(r.authorized for r in before)
        # The application lives on the redirect host and is used with its token.
        after = [r for r in log[first_localhost_token + 1 :] if r.kind != "token"]
        assert after
        assert all(r.host == "localhost" and r.authorized for r in after)
        # Two distinct tokens, one per origin.
        assert len(session._transport.tokens) == 2
        assert len(set(session._transport.tokens.values())) == 2


async def test_each_application_gets_a_fresh_endpoint_id(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    endpoint_ids: list[Any] = []
    app_urls: list[str | None] = []
    for _ in range(2):
        async with make_session(simulator) as session:
            assert session._app is not None
            assert session._app.resource is not None
            endpoint_ids.append(session._app.resource.properties.get("endpointId"))
            app_urls.append(session.application_url)
    assert all(isinstance(e, str) and len(e) >= 32 for e in endpoint_ids), endpoint_ids
    assert endpoint_ids[0] != endpoint_ids[1]
    assert app_urls[0] != app_urls[1]
    assert simulator.counters.applications_created == 2
    assert simulator.counters.applications_deleted == 2


async def test_two_concurrent_sessions_get_separate_applications(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator) as one, make_session(simulator) as two:
        assert one.application_url != two.application_url
        assert len(simulator.application_ids) == 2
    assert simulator.application_ids == []


async def test_make_me_available_only_after_event_channel_is_up(
    simulator: UcwaSimulator, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the client *sent*, in the order it started each request.
    started: list[tuple[str, str]] = []
    original = HttpClient.request

    async def spy(self: HttpClient, method: str, url: str, **kwargs: Any) -> HttpResponse:
        started.append((method, url))
        return await original(self, method, url, **kwargs)

    monkeypatch.setattr(HttpClient, "request", spy)

    # The simulator (require_channel=True, its default) answers makeMeAvailable with
    # 500 CallbackChannelError unless a P-GET of the application has arrived: a 204
    # proves the order. The request log is written when a request *ends*, so the held
    # first P-GET appears after makeMeAvailable there; compare the server's own view.
    assert simulator.config.require_channel
    async with make_session(simulator) as session:
        log = simulator.request_log
        mma = [r for r in log if r.kind == "makeMeAvailable"]
        assert [(r.method, r.status) for r in mma] == [("POST", 204)]
        assert simulator.counters.callback_channel_errors == 0
        assert simulator.counters.pgets >= 1
        app_id = simulator.application_ids[0]
        assert simulator.pending_pget(app_id)
        assert _first(log, "applications") < _first(log, "makeMeAvailable")
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        first_pget = next(i for i, (m, u) in enumerate(started) if "/events?" in u)
        mma_sent = next(i for i, (m, u) in enumerate(started) if u.endswith("/makeMeAvailable"))
        assert first_pget < mma_sent
        assert started[mma_sent][0] == "POST"
