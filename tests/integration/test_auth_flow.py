"""Authentication against the simulator: password grant, TokenAuth, 401 re-auth, proxy 401/403."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import ucwa_async
from ucwa_async._core.backoff import Backoff
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import assert_no_leftover_tasks

SessionFactory = Callable[..., ucwa_async.Session]
TOKEN_PATH = "/WebTicket/oauthtoken"


async def _fetch_token(sim: UcwaSimulator) -> str:
    """A token from the simulator's own token endpoint, as a user would obtain one."""
    form = {"grant_type": "password", "username": sim.username, "password": sim.password}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.url(TOKEN_PATH), data=form) as response,
    ):
        assert response.status == 200
        grant = await response.json(content_type=None)
    token = grant["access_token"]
    assert isinstance(token, str)
    assert token
    return token


def _token_session(sim: UcwaSimulator, auth: ucwa_async.TokenAuth, wire: str) -> ucwa_async.Session:
    return ucwa_async.Session(
        sim.discovery_url,
        auth=auth,
        wire_format=wire,  # type: ignore[arg-type]
        request_timeout=5.0,
        connect_timeout=10.0,
        keepalive_interval=None,
        backoff=Backoff(base=0.01, cap=0.2),
    )


async def test_wrong_password_is_a_clear_authentication_error(
    simulator: UcwaSimulator,
    wire_format: str,
    caplog: pytest.LogCaptureFixture,
    no_leftover_tasks: Callable[[], None],
) -> None:
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    session = ucwa_async.Session(
        simulator.discovery_url,
        auth=ucwa_async.PasswordAuth(simulator.username, "not-the-password"),
        wire_format=wire_format,  # type: ignore[arg-type]
        keepalive_interval=None,
    )
    with pytest.raises(ucwa_async.AuthenticationError) as caught:
        async with session:
            pytest.fail("must not open")  # pragma: no cover
    error = caught.value
    assert isinstance(error, ucwa_async.ResponseError)
    assert error.status == 400
    assert error.code == "invalid_grant"
    assert "invalid_grant" in str(error)
    assert "password" in str(error).lower()  # the server's description is kept
    assert "not-the-password" not in str(error)
    assert "not-the-password" not in repr(error)
    # No traceback noise: not chained to an internal exception, nothing logged with a trace.
    assert error.__cause__ is None
    assert error.__context__ is None or isinstance(error.__context__, ucwa_async.UcwaError)
    assert not [r for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Nothing was created, nothing is left open.
    assert simulator.counters.applications_created == 0
    assert [r.status for r in simulator.request_log if r.kind == "token"] == [400]
    assert session.closed
    assert session._client is not None
    assert session._client.closed
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_unknown_user_is_an_authentication_error(
    simulator: UcwaSimulator, wire_format: str
) -> None:
    session = ucwa_async.Session(
        simulator.discovery_url,
        auth=ucwa_async.PasswordAuth("mallory@contoso.com", simulator.password),
        wire_format=wire_format,  # type: ignore[arg-type]
        keepalive_interval=None,
    )
    with pytest.raises(ucwa_async.AuthenticationError, match="invalid_grant"):
        await session.open()
    assert session.closed


async def test_static_token_auth_opens_and_works(
    simulator: UcwaSimulator, wire_format: str
) -> None:
    token = await _fetch_token(simulator)
    assert simulator.counters.tokens_issued == 1
    simulator.clear_request_log()
    auth = ucwa_async.TokenAuth(token)
    async with _token_session(simulator, auth, wire_format) as session:
        logs = await session.conversation_logs(limit=2)
        invitation = await session.continue_messaging(logs[0], message="hello")
        final = await invitation
        assert isinstance(final, ucwa_async.MessagingInvitation)
        assert final.state == "Connected"
    # The session never ran a password grant: the only token is the one we fetched.
    assert simulator.counters.tokens_issued == 1
    assert [r for r in simulator.request_log if r.kind == "token"] == []
    deletes = [r for r in simulator.request_log if r.method == "DELETE"]
    assert [(r.status, r.authorized) for r in deletes] == [(204, True)]


async def test_static_token_with_bearer_prefix(simulator: UcwaSimulator, wire_format: str) -> None:
    token = await _fetch_token(simulator)
    async with _token_session(
        simulator, ucwa_async.TokenAuth(f"Bearer {token}"), wire_format
    ) as session:
        assert len(await session.conversation_logs()) == 3


async def test_static_token_refused_after_expiry_is_an_authentication_error(
    simulator: UcwaSimulator, wire_format: str
) -> None:
    token = await _fetch_token(simulator)
    async with _token_session(simulator, ucwa_async.TokenAuth(token), wire_format) as session:
        simulator.faults.expire_tokens()
        with pytest.raises(ucwa_async.AuthenticationError) as caught:
            await session.conversation_logs()
        assert caught.value.status == 401
        assert token not in str(caught.value)
        assert token not in repr(caught.value)
    assert simulator.counters.tokens_issued == 1


async def test_token_callable_is_called_again_after_expiry(
    simulator: UcwaSimulator, wire_format: str
) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return await _fetch_token(simulator)

    auth = ucwa_async.TokenAuth(provider)
    async with _token_session(simulator, auth, wire_format) as session:
        assert calls == 1
        simulator.faults.expire_tokens()
        logs = await session.conversation_logs(limit=1)
        assert len(logs) == 1
        assert calls == 2
        assert session.stats.reauthentications == 1
        # The new token works for the rest of the session, channel included.
        invitation = await session.continue_messaging(logs[0], message="after refresh")
        assert (await invitation.result(timeout=5)).state == "Connected"
        await session.wait_connected(timeout=5)
    assert calls == 2
    assert simulator.counters.tokens_issued == 2


async def test_a_token_provider_failing_once_does_not_end_the_session(
    simulator: UcwaSimulator, wire_format: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The provider's own error (here its HTTP client's) reached the request's caller as
    # it was, or crashed the event channel for good when the channel re-authenticated.
    caplog.set_level(logging.INFO, logger="ucwa_async")
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise aiohttp.ClientConnectionError("idp.contoso.com unreachable")
        return await _fetch_token(simulator)

    async with _token_session(simulator, ucwa_async.TokenAuth(provider), wire_format) as session:
        logs = await session.conversation_logs(limit=1)
        simulator.faults.expire_tokens()
        # This call meets the failure (typed), or the channel met it first and retried.
        [outcome] = await asyncio.gather(session.conversation_logs(limit=1), return_exceptions=True)
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, ucwa_async.TransportError), repr(outcome)
            assert "ClientConnectionError" in str(outcome)
            assert outcome.__cause__ is None
            assert outcome.__context__ is None
        await session.wait_connected(timeout=10)
        invitation = await session.continue_messaging(logs[0], message="after the outage")
        assert (await invitation.result(timeout=5)).state == "Connected"
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert calls >= 3
    assert "crashed" not in caplog.text


async def test_a_token_provider_that_hangs_is_bounded_by_the_request_timeout(
    simulator: UcwaSimulator, wire_format: str
) -> None:
    # A provider that never answered held the request (and the event channel's
    # re-authentication, so the channel stayed "reconnecting") forever.
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            await asyncio.Event().wait()  # the identity provider hangs
        return await _fetch_token(simulator)

    session = ucwa_async.Session(
        simulator.discovery_url,
        auth=ucwa_async.TokenAuth(provider),
        wire_format=wire_format,  # type: ignore[arg-type]
        request_timeout=0.5,
        connect_timeout=10.0,
        keepalive_interval=None,
        backoff=Backoff(base=0.01, cap=0.2),
    )
    async with session:
        logs = await session.conversation_logs(limit=1)
        simulator.faults.expire_tokens()
        async with asyncio.timeout(5):
            [outcome] = await asyncio.gather(
                session.conversation_logs(limit=1), return_exceptions=True
            )
            await session.wait_connected()
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, ucwa_async.RequestTimeoutError), repr(outcome)
            assert "TokenAuth" in str(outcome)
        invitation = await session.continue_messaging(logs[0], message="after the hang")
        assert (await invitation.result(timeout=5)).state == "Connected"
    assert calls >= 3


async def test_password_auth_reauthenticates_once_on_401(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator) as session:
        assert simulator.counters.tokens_issued == 1
        simulator.faults.expire_tokens()
        simulator.clear_request_log()
        logs = await session.conversation_logs(limit=2)
        assert len(logs) == 2
        assert session.stats.reauthentications == 1
        assert simulator.counters.tokens_issued == 2
        log = simulator.request_log
        # One refused request, one grant, then success - no loop of grants.
        assert [r.status for r in log if r.kind == "token"] == [200]
        listing = [r.status for r in log if r.kind == "conversationLogs"]
        assert listing == [401, 200]
        invitation = await session.continue_phone_audio(logs[1], phone_number="tel:+14255551234")
        final = await invitation.result(timeout=5)
        assert isinstance(final, ucwa_async.PhoneAudioInvitation)
    assert session.stats.reauthentications == 1


async def test_concurrent_401s_share_one_reauthentication(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator) as session:
        logs = await session.conversation_logs()
        simulator.faults.expire_tokens()
        results = await asyncio.gather(*(session.conversation_log(log.href or "") for log in logs))
        assert [r.href for r in results] == [log.href for log in logs]
        # Three requests hit 401 together; a single new token serves all of them.
        assert simulator.counters.tokens_issued == 2
        assert session.stats.reauthentications == 1


async def test_password_refused_on_reauthentication(
    wire_format: str, make_session: SessionFactory
) -> None:
    users = {"alice@contoso.com": "first-password"}
    async with (
        UcwaSimulator(config=SimulatorConfig(users=users)) as sim,
        make_session(sim) as session,
    ):
        # The password expires on the server while the bot runs.
        sim.config.users.clear()  # type: ignore[attr-defined]
        sim.faults.expire_tokens()
        with pytest.raises(ucwa_async.AuthenticationError, match="invalid_grant"):
            await session.conversation_logs()


@pytest.mark.parametrize("status", [401, 403])
async def test_html_access_denied_on_app_create_is_retried(
    make_session: SessionFactory, status: Any
) -> None:
    config = SimulatorConfig(html_access_denied_on_app_create=2, html_access_denied_status=status)
    async with UcwaSimulator(config=config) as sim, make_session(sim) as session:
        creations = [r for r in sim.request_log if r.kind == "applications"]
        assert [r.status for r in creations] == [status, status, 201]
        # A proxy page is not a token problem: no new password grant, no re-auth.
        assert sim.counters.tokens_issued == 1
        assert session.stats.reauthentications == 0
        assert sim.counters.faults_injected["html_access_denied"] == 2
        assert sim.counters.applications_created == 1
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        assert len(await session.conversation_logs()) == 3


@pytest.mark.parametrize("status", [401, 403])
async def test_html_access_denied_beyond_retries_is_proxy_error(
    make_session: SessionFactory, status: Any, no_leftover_tasks: Callable[[], None]
) -> None:
    config = SimulatorConfig(html_access_denied_on_app_create=10, html_access_denied_status=status)
    async with UcwaSimulator(config=config) as sim:
        session = make_session(sim, app_create_retries=2)
        with pytest.raises(ucwa_async.ProxyResponseError) as caught:
            await session.open()
        assert caught.value.status == status
        assert "<html" not in str(caught.value).lower()  # no HTML page dumped in the message
        creations = [r for r in sim.request_log if r.kind == "applications"]
        assert len(creations) == 3  # the first try + 2 retries, then give up
        assert sim.counters.tokens_issued == 1
        assert sim.counters.applications_created == 0
        assert session.closed
    await assert_no_leftover_tasks(no_leftover_tasks)


async def test_a_token_is_granted_again_before_the_server_lets_it_lapse(
    wire_format: str, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AuthenticationInUCWA.md, "Refreshing an OAuth token": "The client application should
    # monitor the expiration time and refresh the token as required." The simulator lets
    # each token lapse after the expires_in of its grant (2 s here); the session renews it
    # at half its life, before then, so no request (the event channel's included) is ever
    # refused: grants at 0, 1 and 2 s, and the first token's lapse falls inside the loop.
    from ucwa_async import _transport

    # A real token lives hours and is renewed at least a minute after its grant: a
    # minimum age shortened for a test that lasts seconds.
    monkeypatch.setattr(_transport, "_MIN_TOKEN_AGE", 0.3)
    config = SimulatorConfig(completion_delay=0.01, pget_timeout_cap=0.3, token_expires_in=2)
    async with UcwaSimulator(config=config, seed=0) as sim:
        async with make_session(sim) as session:
            await session.wait_connected(timeout=5.0)
            refused = [r for r in sim.request_log if r.status == 401]
            assert [r.kind for r in refused] == ["user"]  # the sign-in's challenge only
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.7
            while loop.time() < end:
                await session.conversation_logs(limit=1)
                await asyncio.sleep(0.1)
            assert [r for r in sim.request_log if r.status == 401] == refused
            assert sim.counters.tokens_issued >= 3
            assert session.stats.reauthentications == sim.counters.tokens_issued - 1
            await session.wait_connected(timeout=1.0)
        deletes = [r.status for r in sim.request_log if r.method == "DELETE"]
        assert deletes == [204]
