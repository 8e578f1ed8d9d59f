"""Hardening of the request/credential layer against a hostile simulator (issue 11).

A bounded number of password grants under 401-forever (requests and the event
channel), one re-authentication per 401, 3xx answers as typed errors, typed token
syntax errors, errors without aiohttp objects or tokens, and the pool queue time
inside ``request_timeout``. Every test runs in both wires where the wire matters.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import ucwa_async
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

from ._support import SessionFactory

MAX_RATE = 20.0  # requests/s from the client, under any pathological server


def token_posts(sim: UcwaSimulator) -> int:
    return sum(1 for r in sim.request_log if r.kind == "token")


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and everything reachable through __cause__/__context__/.cause."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < 50:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return seen


@pytest.fixture
async def quick_sim() -> AsyncIterator[UcwaSimulator]:
    """P-GETs held briefly, so an armed P-GET fault meets the next poll soon."""
    config = SimulatorConfig(completion_delay=0.01, pget_timeout_cap=0.2)
    async with UcwaSimulator(config=config, seed=0) as sim:
        yield sim


# -- 401 forever ------------------------------------------------------------------------


async def test_channel_401_forever_grants_are_bounded_and_the_session_fails_typed(
    quick_sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    """Today: 400-580 grants/s, unbounded. Now: sign-in, one refresh of the token that
    had worked, then at most the budget (3 refused fresh tokens), then failed."""
    sim = quick_sim
    session = make_session(sim)
    async with session:
        assert token_posts(sim) == 1
        sim.faults.unauthorized_forever()  # every P-GET: 401, the token endpoint grants
        requests_before = sim.counters.requests
        started = time.monotonic()
        await asyncio.sleep(3.0)
        elapsed = time.monotonic() - started
        grants = token_posts(sim)
        assert 2 <= grants <= 5, grants
        assert sim.counters.faults_injected["unauthorized_forever"] >= 1
        rate = (sim.counters.requests - requests_before) / elapsed
        assert rate <= MAX_RATE, rate
        with pytest.raises(ucwa_async.ChannelFailedError) as caught:
            await session.conversation_logs()
        assert isinstance(caught.value.cause, ucwa_async.AuthenticationError)
        assert "budget" in str(caught.value.cause)
        assert session.stats.reauthentications == grants - 1


async def test_a_failed_session_sends_no_keepalive_and_no_password(
    quick_sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    """401 on everything while the token endpoint grants: the channel spends the budget
    and fails. The session is dead (every call raises ChannelFailedError), so its
    keep-alive must stop too: it used to POST reportMyActivity on, and re-send the
    password each time the budget's window had slid (every 60 s by default, forever)."""
    sim = quick_sim
    session = make_session(
        sim,
        keepalive_interval=0.05,
        retries=ucwa_async.Retries(reauthentication_window=0.25),
    )
    async with session:
        sim.faults.unauthorized_forever(target="any")
        for _ in range(100):  # bounded: 5 s
            if session._channel is not None and session._channel.error is not None:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(ucwa_async.ChannelFailedError):
            await session.conversation_logs()
        await asyncio.sleep(0.3)  # a keep-alive POST under way at the failure ends
        grants = token_posts(sim)
        keepalives = sum(1 for r in sim.request_log if r.kind == "reportMyActivity")
        await asyncio.sleep(1.0)  # four windows of the budget, twenty keep-alive periods
        assert token_posts(sim) == grants
        assert sum(1 for r in sim.request_log if r.kind == "reportMyActivity") == keepalives


async def test_a_proxy_401_on_the_channel_never_gets_a_password_grant(
    quick_sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    """An HTML 401 (a front proxy) on every P-GET: no grant at all, a bounded poll rate,
    and the channel comes back once the proxy lets us through."""
    sim = quick_sim
    async with make_session(sim) as session:
        sim.faults.unauthorized_forever(html=True)
        requests_before = sim.counters.requests
        started = time.monotonic()
        await asyncio.sleep(2.0)
        elapsed = time.monotonic() - started
        assert sim.counters.faults_injected["unauthorized_forever"] >= 2
        assert token_posts(sim) == 1  # the sign-in's only
        rate = (sim.counters.requests - requests_before) / elapsed
        assert rate <= MAX_RATE, rate
        sim.faults.clear()
        await session.wait_connected(timeout=5.0)
        assert isinstance(await session.conversation_logs(), list)
        assert session.stats.reauthentications == 0


async def test_one_401_means_one_reauthentication_and_one_repeat(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    """Today: three grants per call. README: "re-authenticate once"."""
    sim = simulator
    async with make_session(sim) as session:
        sim.faults.unauthorized_forever(target="conversationLogs")
        before = token_posts(sim)
        sim.clear_request_log()
        with pytest.raises(ucwa_async.AuthenticationError):
            await session.conversation_logs()
        assert token_posts(sim) == 1
        assert [r.kind for r in sim.request_log if r.kind == "conversationLogs"] == [
            "conversationLogs"
        ] * 2
        assert before == 1
        sim.faults.clear()
        assert isinstance(await session.conversation_logs(), list)


async def test_ordinary_requests_stop_granting_when_the_budget_is_spent(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    sim = simulator
    async with make_session(sim) as session:
        sim.faults.unauthorized_forever(target="conversationLogs")
        sim.clear_request_log()
        errors = []
        for _ in range(6):
            with pytest.raises(ucwa_async.AuthenticationError) as caught:
                await session.conversation_logs()
            errors.append(caught.value)
        # One refresh of the sign-in token (it had worked: an expiry), then the default
        # budget: 3 fresh tokens refused within 60 s.
        assert token_posts(sim) == 4
        assert all("budget" in str(e) for e in errors[4:])
        # Once spent, a call costs one request and no grant.
        assert sum(1 for r in sim.request_log if r.kind == "conversationLogs") == 4 * 2 + 2


async def test_a_token_with_crlf_is_an_authentication_error(
    simulator: UcwaSimulator, wire_format: str
) -> None:
    async def provider() -> str:
        return "cwt=abc\r\nX-Injected: 1"

    session = ucwa_async.Session(
        simulator.discovery_url,
        auth=ucwa_async.TokenAuth(provider),
        wire_format=wire_format,  # type: ignore[arg-type]
        keepalive_interval=None,
    )
    with pytest.raises(ucwa_async.AuthenticationError) as caught:
        await session.open()
    assert not isinstance(caught.value, ValueError)
    assert "X-Injected" not in repr(caught.value) + str(caught.value)
    assert all(not r.authorized for r in simulator.request_log)


# -- 3xx --------------------------------------------------------------------------------


async def test_302_on_a_continue_post_is_not_an_accepted_invitation(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    """Today: the login page becomes an accepted invitation."""
    sim = simulator
    async with make_session(sim) as session:
        logs = await session.conversation_logs()
        sim.faults.redirect_3xx()
        with pytest.raises(ucwa_async.UnexpectedRedirectError) as caught:
            await session.continue_messaging(logs[0], message="hi")
        assert caught.value.status == 302
        assert caught.value.location is not None
        assert "/adfs/ls/" in caught.value.location
        assert session.pending_invitations == 0
        assert sim.counters.invitations_created == 0
        assert sim.counters.faults_injected["redirect_3xx"] == 1
        # The session carries on.
        invitation = await session.continue_messaging(logs[0], message="again")
        await invitation


async def test_302_on_conversation_logs_raises_instead_of_returning_nothing(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    """Today: ``[]``."""
    async with make_session(simulator) as session:
        simulator.faults.redirect_3xx(target="conversationLogs")
        with pytest.raises(ucwa_async.UnexpectedRedirectError):
            await session.conversation_logs()
        assert len(await session.conversation_logs()) > 0


async def test_302_on_the_event_channel_fails_the_session_typed(
    quick_sim: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(quick_sim) as session:
        quick_sim.faults.redirect_3xx(target="pget")
        requests_before = quick_sim.counters.requests
        for _ in range(100):
            if session._channel is not None and session._channel.error is not None:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(ucwa_async.ChannelFailedError) as caught:
            await session.conversation_logs()
        assert isinstance(caught.value.cause, ucwa_async.UnexpectedRedirectError)
        assert quick_sim.counters.requests - requests_before <= 3


# -- cleartext credentials ----------------------------------------------------------------


async def test_the_loopback_simulator_needs_no_opt_in(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    session = make_session(simulator)
    assert simulator.discovery_url.startswith("http://127.0.0.1:")
    async with session:
        assert token_posts(simulator) == 1
        assert any(r.authorized for r in simulator.request_log)


class _AllToLoopback(aiohttp.abc.AbstractResolver):
    """Resolves every host name to 127.0.0.1: a non-loopback-looking name for the simulator."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("opt_in", [False, True])
async def test_plain_http_off_loopback_needs_the_opt_in(
    simulator: UcwaSimulator, wire_format: str, opt_in: bool
) -> None:
    """The simulator under a non-loopback name: it hands out plain-http links to that name
    (user, token endpoint); the password goes there only with allow_insecure_http."""
    discovery = simulator.discovery_url.replace("127.0.0.1", "ucwa.contoso.test")
    connector = aiohttp.TCPConnector(resolver=_AllToLoopback())
    async with aiohttp.ClientSession(connector=connector) as http:
        session = ucwa_async.Session(
            discovery,
            auth=ucwa_async.PasswordAuth(simulator.username, simulator.password),
            wire_format=wire_format,  # type: ignore[arg-type]
            http_session=http,
            allow_insecure_http=opt_in,
            keepalive_interval=None,
        )
        if opt_in:
            async with session:
                assert session.application_url is not None
                assert "ucwa.contoso.test" in session.application_url
            assert token_posts(simulator) == 1
        else:
            with pytest.raises(ucwa_async.InsecureTransportError, match="allow_insecure_http"):
                await session.open()
            assert token_posts(simulator) == 0
            assert [r.kind for r in simulator.request_log] == ["discovery", "user"]
            assert not any(r.authorized for r in simulator.request_log)


# -- errors carry no aiohttp object and no token ------------------------------------------------


async def test_transport_errors_hold_no_aiohttp_object(
    simulator: UcwaSimulator, make_session: SessionFactory
) -> None:
    async with make_session(simulator) as session:
        token = next(iter(session._transport.tokens.values())).split()[-1]
        await simulator.stop()  # every later request: connection refused
        with pytest.raises(ucwa_async.UcwaError) as caught:
            await session.conversation_logs()
        for error in chain(caught.value):
            assert isinstance(error, ucwa_async.UcwaError), repr(error)
            for value in vars(error).values():
                assert not type(value).__module__.startswith("aiohttp"), repr(value)
            assert token not in repr(error) + str(error) + repr(vars(error))
        # Either a TransportError straight away, or the channel's failure caused by one.
        assert any(isinstance(e, ucwa_async.TransportError) for e in chain(caught.value))
