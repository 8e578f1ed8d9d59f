"""Event-channel (P-GET) faults: dropped polls, 503/429 with Retry-After, resync,
application deletion, PGetReplaced, malformed batches. Invitations survive them all."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import ucwa_async
from ucwa_async.testing import InvitationRequest, Outcome, SimulatorConfig, UcwaSimulator
from ucwa_async.testing._urls import TOKEN_PATH

from ._support import BOTH_SHAPES, SessionFactory

PHONE = "tel:+14255551234"


async def _next_signal(stream: ucwa_async.EventStream, kind: type, limit: float = 5.0) -> Any:
    """Skip to the first item of ``kind`` (bounded in time)."""
    async with asyncio.timeout(limit):
        async for item in stream:
            if isinstance(item, kind):
                return item
    raise AssertionError(f"stream ended before a {kind.__name__}")


async def _signals_until(
    stream: ucwa_async.EventStream, kind: type, limit: float = 5.0
) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(limit):
        async for item in stream:
            if isinstance(item, ucwa_async.Event):
                continue
            got.append(item)
            if isinstance(item, kind):
                return got
    raise AssertionError(f"stream ended before a {kind.__name__}: {got}")


def _delayed(delay: float) -> Any:
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        return Outcome(success=True, delay=delay)

    return rule


# --- dropped P-GETs --------------------------------------------------------------------


async def test_dropped_pget_reconnects_and_invitations_resolve(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=_delayed(0.3))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        async with session.events() as stream:
            im = await session.continue_messaging(logs[0], message="across a drop")
            call = await session.continue_phone_audio(logs[1], phone_number=PHONE)
            # aiohttp re-sends a dropped idempotent GET once by itself: two drops are
            # one drop the session sees
            sim.faults.drop_pget(next_n=2)
            signals = await _signals_until(stream, ucwa_async.ChannelReconnected)
        assert sim.counters.faults_injected["drop_pget"] == 2
        assert isinstance(signals[0], ucwa_async.ChannelReconnecting)
        assert isinstance(signals[0].error, ucwa_async.TransportError)
        assert isinstance(signals[-1], ucwa_async.ChannelReconnected)
        results = await asyncio.gather(im.result(timeout=8), call.result(timeout=8))
        assert [r.state for r in results] == ["Connected", "Connected"]
        assert session.stats.invitations_connected == 2
        assert _ended_once(session, 2)
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED


async def test_repeated_drops_signal_in_pairs_and_recover(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        async with session.events() as stream:
            sim.faults.drop_pget(next_n=6)
            for _ in range(400):  # bounded: until every armed drop has fired
                if "drop_pget" not in sim.faults.armed:
                    break
                await asyncio.sleep(0.01)
            assert sim.counters.faults_injected["drop_pget"] == 6
            await session.wait_connected(timeout=5)
            invitation = await session.continue_messaging(logs[0])
            assert (await invitation.result(timeout=8)).state == "Connected"
            signals = []
            while True:
                try:
                    item = await asyncio.wait_for(anext(stream), 0.2)
                except TimeoutError:
                    break
                if not isinstance(item, ucwa_async.Event):
                    signals.append(type(item).__name__)
        # every reconnecting is answered by one reconnected, never two in a row
        assert signals, "no channel signal for six dropped polls"
        assert signals[0] == "ChannelReconnecting"
        assert signals == ["ChannelReconnecting", "ChannelReconnected"] * (len(signals) // 2)
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED


# --- 503 / 429 with Retry-After ----------------------------------------------------------


@pytest.mark.parametrize("fault", ["service_unavailable", "too_many_requests"])
async def test_pget_retry_after_is_honoured(
    make_session: SessionFactory, wire_format: str, fault: str
) -> None:
    config = SimulatorConfig(pget_timeout_cap=0.1, completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        async with session.events() as stream:
            # Retry-After is delta-seconds: an integer (the client ignores "0.6" as junk)
            getattr(sim.faults, fault)(next_n=1, retry_after=1, target="pget")
            signals = await _signals_until(stream, ucwa_async.ChannelReconnected)
        assert sim.counters.faults_injected[fault] == 1
        reconnecting, reconnected = signals[0], signals[-1]
        assert isinstance(reconnecting, ucwa_async.ChannelReconnecting)
        assert isinstance(reconnecting.error, ucwa_async.RetryLaterError)
        assert reconnecting.error.retry_after == 1.0
        # the channel waited the server's Retry-After before polling again
        assert reconnected.downtime >= 0.95
        invitation = await session.continue_messaging(logs[0])
        assert (await invitation.result(timeout=8)).state == "Connected"


@pytest.mark.parametrize("fault", ["service_unavailable", "too_many_requests"])
async def test_pget_retry_after_is_capped(
    make_session: SessionFactory, wire_format: str, fault: str
) -> None:
    config = SimulatorConfig(pget_timeout_cap=0.1, completion_delay=0.01)
    async with (
        UcwaSimulator(config) as sim,
        make_session(sim, retry_after_cap=0.2) as session,
    ):
        async with session.events() as stream:
            getattr(sim.faults, fault)(next_n=1, retry_after=3600, target="pget")
            reconnected = await _next_signal(stream, ucwa_async.ChannelReconnected, limit=4)
        assert sim.counters.faults_injected[fault] == 1
        assert reconnected.downtime < 2.0  # not an hour


async def test_post_retry_after_is_honoured_and_capped(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(completion_delay=0.01)
    async with (
        UcwaSimulator(config) as sim,
        make_session(sim, retry_after_cap=1.5) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        loop = asyncio.get_running_loop()
        # honoured: the POST waits Retry-After, then goes through with one invitation
        sim.faults.service_unavailable(next_n=1, retry_after=1, target="continue")
        started = loop.time()
        invitation = await session.continue_messaging(logs[0], message="throttled")
        assert loop.time() - started >= 0.95
        assert (await invitation.result(timeout=8)).state == "Connected"
        # capped: a huge Retry-After waits retry_after_cap at most
        sim.faults.too_many_requests(next_n=1, retry_after=3600, target="continue")
        started = loop.time()
        second = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        elapsed = loop.time() - started
        assert 1.4 <= elapsed < 3.0
        assert (await second.result(timeout=8)).state == "Connected"
        assert sim.counters.faults_injected["service_unavailable"] == 1
        assert sim.counters.faults_injected["too_many_requests"] == 1
        assert sim.counters.invitations_created == 2
        statuses = [r.status for r in sim.request_log if r.kind == "continue"]
        assert statuses == [503, 201, 429, 201]


async def test_post_throttled_too_often_reaches_the_caller(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim, retry_after_cap=0.05) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.service_unavailable(next_n=10, retry_after=5, target="continue")
        with pytest.raises(ucwa_async.ServiceUnavailableError) as info:
            await session.continue_messaging(logs[0])
        assert info.value.status == 503
        assert info.value.retry_after == 5.0
        assert sim.counters.faults_injected["service_unavailable"] == 4  # 1 + 3 retries
        assert session.pending_invitations == 0
        assert sim.counters.invitations_created == 0
        sim.faults.clear()
        invitation = await session.continue_messaging(logs[0])
        assert (await invitation.result(timeout=8)).state == "Connected"


# --- resync ------------------------------------------------------------------------------


async def test_resync_is_followed_and_invitations_end_once(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=_delayed(0.3), pget_timeout_cap=0.2)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        invitations = [
            await session.continue_messaging(logs[0], message="a"),
            await session.continue_phone_audio(logs[1], phone_number=PHONE),
        ]
        sim.faults.resync()
        results = await asyncio.gather(*(inv.result(timeout=8) for inv in invitations))
        assert [r.state for r in results] == ["Connected", "Connected"]
        assert sim.counters.faults_injected["resync"] == 1
        assert sim.counters.resyncs >= 1
        # the session followed the resync link (a P-GET after the resync answer)
        kinds = [(r.kind, r.fault) for r in sim.request_log]
        at = kinds.index(("pget", "resync"))
        assert any(kind == "pget" for kind, _ in kinds[at + 1 :])
        await asyncio.sleep(0.3)  # the events after the resync, and the re-reads, are in
        assert session.stats.invitations_connected == 2
        assert _ended_once(session, 2)


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
async def test_discarding_resync_rereads_pending_invitations(
    make_session: SessionFactory, wire_format: str, embed: bool
) -> None:
    # The completion happens while the next P-GET is stalled; the resync then throws the
    # events away, so only a GET of the invitation can tell how it ended.
    config = SimulatorConfig(
        outcome_rule=_delayed(0.2), pget_timeout_cap=5.0, embed_resources=embed
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.6, target="pget")
        sim.faults.resync(discard_events=True)
        async with session.events() as stream:
            invitation = await session.continue_messaging(logs[0], message="lost events")
            result = await invitation.result(timeout=8)
            events = []
            while True:
                try:
                    item = await asyncio.wait_for(anext(stream), 0.3)
                except TimeoutError:
                    break
                events.append(item)
        sim.faults.latency(0, target="pget")
        assert result.state == "Connected"
        assert sim.counters.faults_injected["resync"] == 1
        # the completed event never reached us: the re-read GET decided
        completed = [e for e in events if isinstance(e, ucwa_async.Event) and e.type == "completed"]
        assert completed == []
        gets = [r for r in sim.request_log if r.kind == "invitation" and r.method == "GET"]
        assert len(gets) >= 1
        assert session.stats.invitations_connected == 1
        assert _ended_once(session, 1)


async def test_discarding_resync_with_a_failed_invitation(
    make_session: SessionFactory, wire_format: str
) -> None:
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        from ucwa_async.testing import DECLINED

        return Outcome(success=False, reason=DECLINED, delay=0.2)

    config = SimulatorConfig(outcome_rule=rule, pget_timeout_cap=5.0)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.6, target="pget")
        sim.faults.resync(discard_events=True)
        invitation = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await invitation.result(timeout=8)
        sim.faults.latency(0, target="pget")
        assert "Declined" in str(info.value)
        assert invitation.state == "Declined"
        assert session.stats.invitations_failed == 1
        assert _ended_once(session, 1)


# --- application deleted on the server -----------------------------------------------------


@BOTH_SHAPES
async def test_deleted_application_is_recreated(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    config = shaped(
        outcome_rule=lambda req, rng: (
            Outcome(complete=False) if req.number == 1 else Outcome(success=True, delay=0.01)
        )
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        old_app = session.application_url
        pending = await session.continue_messaging(logs[0], message="will be lost")
        assert pending.href is not None
        async with session.events() as stream:
            assert sim.faults.delete_application() == 1
            with pytest.raises(ucwa_async.InvitationLostError) as info:
                await pending.result(timeout=8)
            recreated = await _next_signal(stream, ucwa_async.ApplicationRecreated)
            await _next_signal(stream, ucwa_async.ChannelReconnected)
        assert info.value.operation_id == pending.operation_id
        assert recreated.lost_invitations == 1
        assert session.stats.applications_created == 2
        assert session.stats.invitations_lost == 1
        assert session.application_url != old_app
        assert recreated.application_url == session.application_url
        assert sim.counters.applications_created == 2
        assert len(sim.application_ids) == 1
        # new invitations work on the new application (its own conversation logs)
        await session.wait_connected(timeout=5)
        fresh_logs = await session.conversation_logs(limit=1)
        assert fresh_logs[0].href != logs[0].href
        invitation = await session.continue_messaging(fresh_logs[0], message="again")
        assert (await invitation.result(timeout=8)).state == "Connected"
        assert session.stats.invitations_connected == 1
        assert session.pending_invitations == 0
        # makeMeAvailable ran for the new application
        mma = [r for r in sim.request_log if r.kind == "makeMeAvailable"]
        assert len(mma) == 2


# --- PGetReplaced ------------------------------------------------------------------------


async def _token(http: aiohttp.ClientSession, sim: UcwaSimulator) -> str:
    async with http.post(
        sim.url(TOKEN_PATH),
        data={"grant_type": "password", "username": sim.username, "password": sim.password},
    ) as response:
        assert response.status == 200
        grant = await response.json(content_type=None)
    return f"Bearer {grant['access_token']}"


async def test_pget_replaced_by_another_poller(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(completion_delay=0.01, pget_timeout_cap=2.0)
    async with (
        UcwaSimulator(config) as sim,
        make_session(sim) as session,
        aiohttp.ClientSession() as http,
    ):
        logs = await session.conversation_logs(limit=1)
        headers = {"Authorization": await _token(http, sim), "Accept": "application/json"}
        assert session.application_url is not None
        async with http.get(session.application_url, headers=headers) as response:
            application = await response.json(content_type=None)
        events_url = sim.base_url + application["_links"]["events"]["href"]
        replaced_before = sim.counters.pget_replaced
        # our poll replaces the session's; the session re-polls and replaces ours
        async with http.get(events_url + "&timeout=180", headers=headers) as response:
            status = response.status
            body = await response.json(content_type=None)
        assert status == 409
        assert body["subcode"] == "PGetReplaced"
        assert sim.counters.pget_replaced >= replaced_before + 2
        # the session's channel kept working
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        invitation = await session.continue_messaging(logs[0], message="still here")
        assert (await invitation.result(timeout=8)).state == "Connected"
        assert session.stats.invitations_connected == 1


# --- malformed batches -------------------------------------------------------------------


async def test_malformed_batch_is_retried_and_nothing_is_lost(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=_delayed(0.0), pget_timeout_cap=5.0)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        await asyncio.sleep(0.05)  # the session's P-GET is held by now
        sim.faults.malformed_body(next_n=1, target="pget")
        async with session.events() as stream:
            im = await session.continue_messaging(logs[0], message="garbled")
            signals = await _signals_until(stream, ucwa_async.ChannelReconnected)
        assert sim.counters.faults_injected["malformed_body"] == 1
        assert isinstance(signals[0], ucwa_async.ChannelReconnecting)
        assert isinstance(signals[0].error, ucwa_async.DecodeError)
        # the batch was re-delivered on the same URL
        assert sim.counters.redeliveries >= 1
        assert (await im.result(timeout=8)).state == "Connected"
        call = await session.continue_phone_audio(logs[1], phone_number=PHONE)
        assert (await call.result(timeout=8)).state == "Connected"
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        assert _ended_once(session, 2)


def _ended_once(session: ucwa_async.Session, expected: int) -> bool:
    s = session.stats
    ended = (
        s.invitations_connected
        + s.invitations_failed
        + s.invitations_timed_out
        + s.invitations_lost
        + s.invitations_cancelled
        + s.invitations_closed
    )
    return ended == expected == s.invitations_started and session.pending_invitations == 0


async def test_discarding_resync_while_the_post_is_in_flight(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The invitation is created and completes, its events are thrown away by a resync,
    # and only then does the 201 arrive: the session must still re-read it.
    config = SimulatorConfig(outcome_rule=_delayed(0.0), pget_timeout_cap=0.2)
    async with (
        UcwaSimulator(config) as sim,
        make_session(sim, invitation_timeout=4.0) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.6, target="pget")
        await asyncio.sleep(0.35)  # the held P-GET ended; the next one is stalled
        sim.faults.resync(discard_events=True)
        sim.faults.events_before_201()  # holds the 201 (up to 1 s) for a batch
        invitation = await session.continue_messaging(logs[0], message="unbound at resync")
        assert sim.counters.faults_injected["resync"] == 1
        result = await invitation.result(timeout=5)
        sim.faults.latency(0, target="pget")
        assert result.state == "Connected"
        assert session.stats.invitations_connected == 1
        gets = [r for r in sim.request_log if r.kind == "invitation" and r.method == "GET"]
        assert len(gets) >= 1
