"""Correlation of events to invitations: href styles, embedded or link-only events,
200 instead of 201, events before the 201, duplicated and reordered events."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import (
    DECLINED,
    InvitationRequest,
    Outcome,
    SimulatorConfig,
    UcwaSimulator,
)

from ._support import SessionFactory

PHONE = "tel:+14255551234"


def _every_other_fails(request: InvitationRequest, rng: random.Random) -> Outcome:
    if request.number % 2 == 0:
        return Outcome(success=False, reason=DECLINED, delay=0.02)
    return Outcome(success=True, delay=0.02)


def _every_other_fails_now(request: InvitationRequest, rng: random.Random) -> Outcome:
    if request.number % 2 == 0:
        return Outcome(success=False, reason=DECLINED)
    return Outcome(success=True)


def _resolved(session: ucwa_async.Session) -> int:
    s = session.stats
    return (
        s.invitations_connected
        + s.invitations_failed
        + s.invitations_timed_out
        + s.invitations_lost
        + s.invitations_cancelled
        + s.invitations_closed
    )


async def _outcomes(invitations: list[ucwa_async.Invitation[Any]]) -> list[object]:
    return list(
        await asyncio.gather(
            *(inv.result(timeout=8) for inv in invitations), return_exceptions=True
        )
    )


def _invitation_gets(sim: UcwaSimulator) -> int:
    return sum(1 for r in sim.request_log if r.kind == "invitation" and r.method == "GET")


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
@pytest.mark.parametrize("event_style", ["relative", "absolute", "v1"])
@pytest.mark.parametrize("location_style", ["relative", "absolute", "v1"])
async def test_every_href_style_resolves(
    make_session: SessionFactory,
    wire_format: str,
    location_style: str,
    event_style: str,
    embed: bool,
) -> None:
    config = SimulatorConfig(
        location_style=location_style,  # type: ignore[arg-type]
        event_href_style=event_style,  # type: ignore[arg-type]
        embed_resources=embed,
        outcome_rule=_every_other_fails,
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        im = await session.continue_messaging(logs[0], message="one")  # number 1: success
        call = await session.continue_phone_audio(logs[1], phone_number=PHONE)  # 2: failure
        # Every Location form resolves to the same absolute URL on our own origin
        # (``//v1/...`` lives under the application's base path, not on host "v1").
        for inv in (im, call):
            assert inv.href is not None
            assert inv.href.startswith(sim.base_url + "/ucwa/oauth/v1/applications/")
            assert "/communication/invitations/" in inv.href
            assert sim.invitation_state(inv.href) is not None
        result = await im.result(timeout=8)
        assert isinstance(result, ucwa_async.MessagingInvitation)
        assert result.state == "Connected"
        assert result.operation_id == im.operation_id
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await call.result(timeout=8)
        assert info.value.reason is not None
        assert info.value.reason.subcode == "Declined"
        # link-only: the failure event names no state, so the session says "Failed"
        assert call.state == ("Declined" if embed else "Failed")
        assert session.stats.invitations_connected == 1
        assert session.stats.invitations_failed == 1
        assert session.stats.invitations_timed_out == 0
        gets = _invitation_gets(sim)
        if embed:
            assert gets == 0  # the events said everything
        else:
            assert gets >= 1  # link-only success: the session read the invitation
        assert sim.counters.invitations_by_state == {"Connected": 1, "Declined": 1}


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
async def test_continue_answered_200_with_location(
    make_session: SessionFactory, wire_format: str, embed: bool
) -> None:
    config = SimulatorConfig(
        continue_status=200,
        location_on_200=True,
        embed_resources=embed,
        completion_delay=0.02,
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        im = await session.continue_messaging(logs[0], message="200 please")
        call = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert im.href is not None
        assert call.href is not None
        assert isinstance(await im.result(timeout=8), ucwa_async.MessagingInvitation)
        assert isinstance(await call.result(timeout=8), ucwa_async.PhoneAudioInvitation)
        assert [r.status for r in sim.request_log if r.kind == "continue"] == [200, 200]


async def test_continue_answered_200_without_location_correlates_by_operation_id(
    make_session: SessionFactory, wire_format: str
) -> None:
    # No Location: only the embedded resource's operationId can tie the events to us.
    config = SimulatorConfig(
        continue_status=200,
        location_on_200=False,
        embed_resources=True,
        outcome_rule=_every_other_fails,
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        im = await session.continue_messaging(logs[0], message="no location")
        call = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        result = await im.result(timeout=8)
        assert result.state == "Connected"
        assert result.operation_id == im.operation_id
        # the href was learnt from the events (there was no Location to bind)
        assert im.href is not None
        assert sim.invitation_state(im.href) == "Connected"
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await call.result(timeout=8)
        assert info.value.reason is not None
        assert info.value.reason.code == "RemoteFailure"
        assert call.href is not None
        assert sim.invitation_state(call.href) == "Declined"
        assert sim.counters.invitations_created == 2


async def test_200_without_location_and_link_only_events_times_out_cleanly(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Neither a Location nor an operationId in the events: nothing can correlate them.
    # What the session can promise is a clean timeout (never a wrong match, never a hang).
    config = SimulatorConfig(
        continue_status=200, location_on_200=False, embed_resources=False, completion_delay=0.01
    )
    async with UcwaSimulator(config) as sim, make_session(sim, invitation_timeout=0.5) as session:
        logs = await session.conversation_logs(limit=1)
        first = await session.continue_messaging(logs[0])
        second = await session.continue_messaging(logs[0])
        for inv in (first, second):
            with pytest.raises(ucwa_async.InvitationTimeoutError):
                await inv.result(timeout=5)
        assert session.stats.invitations_timed_out == 2
        assert session.stats.invitations_connected == 0
        assert sim.counters.invitations_by_state == {"Connected": 2}


def _instant(request: InvitationRequest, rng: random.Random) -> Outcome:
    # started and completed in one batch, so the held 201 comes after the whole story
    if request.modality == "PhoneAudio":
        return Outcome(success=False, reason=DECLINED)
    return Outcome(success=True)


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
@pytest.mark.parametrize("location_style", ["relative", "v1"])
async def test_events_before_201(
    make_session: SessionFactory, wire_format: str, embed: bool, location_style: str
) -> None:
    config = SimulatorConfig(
        embed_resources=embed,
        location_style=location_style,  # type: ignore[arg-type]
        event_href_style="absolute",
        outcome_rule=_instant,
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.events_before_201(next_n=2)
        im = await session.continue_messaging(logs[0], message="race")
        events_at_201 = session.stats.events_received
        call = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert sim.counters.faults_injected["events_before_201"] == 2
        # the events really beat the 201: the channel had them before the POST returned
        assert events_at_201 >= 2
        assert session.stats.events_received >= 4
        if embed:
            # matched by operationId before the Location was even known
            assert im.done()
            assert call.done()
        assert (await im.result(timeout=8)).state == "Connected"
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await call.result(timeout=8)
        assert info.value.reason is not None
        assert info.value.reason.subcode == "Declined"
        assert im.href is not None
        assert sim.invitation_state(im.href) == "Connected"
        assert session.stats.invitations_connected == 1
        assert session.stats.invitations_failed == 1
        assert session.stats.invitations_timed_out == 0
        assert _resolved(session) == 2


@pytest.mark.parametrize("fault", ["duplicate_events", "reorder_events", "both"])
@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
async def test_duplicates_and_reordering_end_each_invitation_once(
    make_session: SessionFactory, wire_format: str, fault: str, embed: bool
) -> None:
    config = SimulatorConfig(embed_resources=embed, outcome_rule=_every_other_fails_now)
    count = 20
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        if fault in ("duplicate_events", "both"):
            sim.faults.duplicate_events(next_n=50)
        if fault in ("reorder_events", "both"):
            sim.faults.reorder_events(next_n=50)
        # concurrent POSTs, instant outcomes: batches carry several events, so the
        # reorder fault really puts completed events before their started ones
        invitations: list[ucwa_async.Invitation[Any]] = list(
            await asyncio.gather(
                *(
                    session.continue_phone_audio(logs[1], PHONE)
                    if i % 2
                    else session.continue_messaging(logs[0], message=str(i))
                    for i in range(count)
                )
            )
        )
        outcomes = await _outcomes(invitations)
        await asyncio.sleep(0.1)  # late duplicates have arrived by now
        connected = [o for o in outcomes if isinstance(o, ucwa_async.Resource)]
        failed = [o for o in outcomes if isinstance(o, ucwa_async.InvitationFailedError)]
        assert len(connected) == len(failed) == count // 2
        for kind in ("duplicate_events", "reorder_events"):
            if fault in (kind, "both"):
                assert sim.counters.faults_injected[kind] >= 1
        assert session.stats.invitations_started == count
        assert session.stats.invitations_connected == count // 2
        assert session.stats.invitations_failed == count // 2
        assert _resolved(session) == count  # each ended exactly once
        assert sim.counters.invitations_by_state == {
            "Connected": count // 2,
            "Declined": count // 2,
        }
        for inv, outcome in zip(invitations, outcomes, strict=True):
            assert inv.done()
            assert inv.href is not None
            expected = sim.invitation_state(inv.href)
            if isinstance(outcome, ucwa_async.Resource):
                assert expected == "Connected"
                assert getattr(outcome, "operation_id", None) == inv.operation_id
            else:
                assert expected == "Declined"


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
@pytest.mark.parametrize("event_style", ["absolute", "v1"])
async def test_cancel_link_in_every_href_style(
    make_session: SessionFactory, wire_format: str, event_style: str, embed: bool
) -> None:
    config = SimulatorConfig(
        location_style="v1",
        event_href_style=event_style,  # type: ignore[arg-type]
        embed_resources=embed,
        outcome_rule=lambda req, rng: Outcome(complete=False),
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        await asyncio.sleep(0.1)  # the started event (with or without the resource) is in
        assert invitation.cancel() is True
        assert await invitation.cancel_outcome() is True
        with pytest.raises(asyncio.CancelledError):
            await invitation
        cancels = [r for r in sim.request_log if r.kind == "cancel"]
        assert [(r.status, r.host) for r in cancels] == [(204, "127.0.0.1")]
        assert sim.invitation_state(invitation.href or "") == "Failed"


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "link-only"])
async def test_xml_status_and_reason_as_attributes(
    make_session: SessionFactory, wire_format: str, embed: bool
) -> None:
    config = SimulatorConfig(
        xml_status_as_attribute=True, outcome_rule=_every_other_fails_now, embed_resources=embed
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        ok = await session.continue_messaging(logs[0])
        bad = await session.continue_messaging(logs[0])
        assert (await ok.result(timeout=8)).state == "Connected"
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await bad.result(timeout=8)
        assert info.value.reason is not None
        assert (info.value.reason.code, info.value.reason.subcode) == ("RemoteFailure", "Declined")
