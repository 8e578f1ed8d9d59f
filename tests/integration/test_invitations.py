"""Invitations end to end against the simulator: conversation logs, continue_*, outcomes.

Every test runs in both wires (the ``wire_format`` fixture).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import (
    DECLINED,
    InvitationRequest,
    Outcome,
    Reason,
    SimulatorConfig,
    UcwaSimulator,
)
from ucwa_async.testing._urls import DISCOVERY_PATH

from ._support import BOTH_SHAPES, SessionFactory

PHONE = "tel:+14255551234"


class Recorder:
    """An outcome rule that records what the simulator saw of each continue POST."""

    def __init__(self, outcome: Callable[[InvitationRequest], Outcome] | None = None) -> None:
        self.requests: list[InvitationRequest] = []
        self._outcome = outcome

    def __call__(self, request: InvitationRequest, rng: random.Random) -> Outcome:
        self.requests.append(request)
        if self._outcome is not None:
            return self._outcome(request)
        return Outcome(success=True, delay=0.01)


def _continue_posts(sim: UcwaSimulator) -> list[str]:
    return [
        f"{r.path}?{r.query}" if r.query else r.path
        for r in sim.request_log
        if r.kind == "continue"
    ]


# --- conversation logs -------------------------------------------------------------------


async def test_conversation_logs_limit_and_models(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(conversation_logs=5, completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        everything = await session.conversation_logs()
        assert len(everything) == 5
        limited = await session.conversation_logs(limit=2)
        assert len(limited) == 2
        assert [log.href for log in limited] == [log.href for log in everything[:2]]
        for log in everything:
            assert isinstance(log, ucwa_async.ConversationLog)
            assert log.link("continueMessaging")
            assert log.link("continuePhoneAudio")
            assert log.subject
            assert log.total_recipients_count is not None
            assert log.total_recipients_count >= 1
            assert log.recipients
            assert all(r.sip_uri and r.sip_uri.startswith("sip:") for r in log.recipients)
        # the limit reached the server as a query parameter
        listings = [r for r in sim.request_log if r.kind == "conversationLogs"]
        assert any("limit=2" in r.query for r in listings)
        with pytest.raises(ValueError, match="limit"):
            await session.conversation_logs(limit=0)


@pytest.mark.parametrize("count", [0, 1, 3])
async def test_conversation_logs_one_or_many_links(
    make_session: SessionFactory, wire_format: str, count: int
) -> None:
    # One log gives a single link (a dict in JSON, one <link> in XML); several a list.
    async with (
        UcwaSimulator(SimulatorConfig(conversation_logs=count, completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs()
        assert len(logs) == count
        assert len({log.href for log in logs}) == count
        if count:
            invitation = await session.continue_messaging(logs[-1], message="hi")
            done = await invitation
            assert done.state == "Connected"


async def test_log_href_string_and_query_string_kept(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(log_href_query="source=archive&x=1", completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        assert all(log.href and "source=archive" in log.href for log in logs)
        assert logs[0].href is not None
        # A plain href string works as well as the model.
        im = await session.continue_messaging(logs[0].href, message="by href")
        call = await session.continue_phone_audio(logs[1], phone_number=PHONE)
        assert (await im).state == "Connected"
        assert (await call).state == "Connected"
        posts = _continue_posts(sim)
        assert len(posts) == 2
        # the simulator answers 404 to a continue POST without the query: both kept it
        assert all("source=archive" in p and "x=1" in p for p in posts)
        assert sim.counters.invitations_created == 2


# --- continue_* and their outcomes ---------------------------------------------------------


@BOTH_SHAPES
async def test_continue_messaging_returns_at_201_then_connects(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    recorder = Recorder(lambda req: Outcome(success=True, delay=0.3))
    async with (
        UcwaSimulator(shaped(outcome_rule=recorder)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0], message="Following up ✓")
        # returned at the 201: still pending, with href and operation id
        assert isinstance(invitation, ucwa_async.Invitation)
        assert not invitation.done()
        assert invitation.href is not None
        assert "/communication/invitations/" in invitation.href
        assert invitation.href.startswith(sim.base_url)
        assert invitation.operation_id
        assert sim.invitation_state(invitation.href) == "Connecting"
        result = await invitation
        assert isinstance(result, ucwa_async.MessagingInvitation)
        assert result.state == "Connected"
        assert result.operation_id == invitation.operation_id
        assert invitation.done()
        assert invitation.state == "Connected"
        assert sim.invitation_state(invitation.href) == "Connected"
        # awaiting again gives the same result, and so does Future-style result()
        assert await invitation is result
        assert invitation.result() is result
        # what the simulator saw: the operation id and the message (data: URI, decoded)
        assert len(recorder.requests) == 1
        seen = recorder.requests[0]
        assert seen.modality == "Messaging"
        assert seen.operation_id == invitation.operation_id
        assert seen.message == "Following up ✓"
        assert session.stats.invitations_started == 1
        assert session.stats.invitations_connected == 1
        assert session.pending_invitations == 0


@BOTH_SHAPES
async def test_continue_phone_audio_connects_with_phone_number(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    recorder = Recorder()
    async with (
        UcwaSimulator(shaped(outcome_rule=recorder)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert invitation.href is not None
        result = await invitation
        assert isinstance(result, ucwa_async.PhoneAudioInvitation)
        assert result.state == "Connected"
        assert result.phone_number == PHONE
        assert recorder.requests[0].modality == "PhoneAudio"
        assert recorder.requests[0].phone_number == PHONE
        assert recorder.requests[0].operation_id == invitation.operation_id
        assert recorder.requests[0].message is None


async def test_continue_phone_audio_without_phone_number_sends_none(
    make_session: SessionFactory, wire_format: str
) -> None:
    """continuePhoneAudio_ref.md: phoneNumber "is optional and defaults to the phone number
    supplied when the application was created": left out, it is not sent."""
    recorder = Recorder()
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=recorder)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_phone_audio(logs[0])
        assert (await invitation).state == "Connected"
        assert recorder.requests[0].modality == "PhoneAudio"
        assert recorder.requests[0].phone_number is None


async def test_messaging_without_message_sends_none(
    make_session: SessionFactory, wire_format: str
) -> None:
    recorder = Recorder()
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=recorder)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        assert (await invitation).state == "Connected"
        assert recorder.requests[0].message is None


@BOTH_SHAPES
async def test_failure_carries_the_servers_reason(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    config = shaped(fail_rate=1.0, completion_delay=0.01)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0], message="hello?")
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await invitation
        reason = info.value.reason
        assert reason is not None
        assert reason.code == DECLINED.code
        assert reason.subcode == DECLINED.subcode
        assert reason.message == DECLINED.message
        assert info.value.operation_id == invitation.operation_id
        assert info.value.href == invitation.href
        assert invitation.done()
        assert invitation.href is not None
        assert sim.invitation_state(invitation.href) == "Declined"
        assert session.stats.invitations_failed == 1
        assert session.stats.invitations_connected == 0


@BOTH_SHAPES
async def test_outcome_rule_failure_reason_phone_audio(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    busy = Reason("RemoteFailure", "Busy", "The callee is busy & unavailable <now>.")

    def rule(req: InvitationRequest, rng: random.Random) -> Outcome:
        if req.modality == "PhoneAudio":
            return Outcome(success=False, reason=busy, delay=0.05, updated=True)
        return Outcome(success=True)

    async with (
        UcwaSimulator(shaped(outcome_rule=rule)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=2)
        call = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        im = await session.continue_messaging(logs[1], message="ok")
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await call
        assert info.value.reason is not None
        assert (info.value.reason.code, info.value.reason.subcode) == ("RemoteFailure", "Busy")
        assert info.value.reason.message == busy.message
        assert "Busy" in str(info.value)
        assert call.state == "Failed"
        assert (await im).state == "Connected"
        assert sim.invitation_state(call.href or "") == "Failed"


@BOTH_SHAPES
async def test_invitation_timeout_when_it_never_completes(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    config = shaped(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim, make_session(sim, invitation_timeout=0.4) as session:
        logs = await session.conversation_logs(limit=1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        invitation = await session.continue_messaging(logs[0], message="anyone?")
        with pytest.raises(ucwa_async.InvitationTimeoutError) as info:
            await invitation
        elapsed = loop.time() - started
        assert 0.3 < elapsed < 3.0
        assert isinstance(info.value, TimeoutError)
        assert info.value.operation_id == invitation.operation_id
        assert invitation.done()
        assert session.stats.invitations_timed_out == 1
        assert session.pending_invitations == 0
        # the per-call timeout overrides the session's
        quick = await session.continue_messaging(logs[0], timeout=0.1)
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await quick
        assert session.stats.invitations_timed_out == 2


async def test_result_timeout_bounds_only_that_wait(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.6))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await invitation.result(timeout=0.05)
        # still pending: the invitation itself did not time out
        assert not invitation.done()
        assert session.stats.invitations_timed_out == 0
        result = await invitation.result(timeout=5.0)
        assert result.state == "Connected"
        assert session.stats.invitations_connected == 1


async def test_cancel_posts_the_cancel_link(make_session: SessionFactory, wire_format: str) -> None:
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0], message="never mind")
        assert invitation.href is not None
        # wait for the started event so the state is known (bounded)
        for _ in range(100):
            if invitation.state == "Connecting":
                break
            await asyncio.sleep(0.02)
        assert invitation.state == "Connecting"
        assert invitation.cancel() is True
        assert not invitation.done()  # requested: the server has not answered yet
        assert await invitation.cancel_outcome() is True
        with pytest.raises(asyncio.CancelledError):
            await invitation
        assert invitation.cancelled()
        assert invitation.done()
        cancels = [r for r in sim.request_log if r.kind == "cancel"]
        assert len(cancels) == 1
        assert cancels[0].status == 204
        assert cancels[0].path.endswith(invitation.href.split(sim.base_url, 1)[-1] + "/cancel")
        assert sim.invitation_state(invitation.href) == "Failed"
        assert session.stats.invitations_cancelled == 1
        assert session.pending_invitations == 0
        # cancelling again is a no-op
        assert invitation.cancel() is False
        # the completed/Failure (Cancelled) event the server sends later is not an
        # outcome of its own: nothing else is counted
        await asyncio.sleep(0.2)
        assert session.stats.invitations_failed == 0


@BOTH_SHAPES
async def test_cancel_right_after_201_before_any_event(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    config = shaped(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert invitation.cancel() is True
        with pytest.raises(asyncio.CancelledError):
            await invitation.wait(timeout=2)
        assert sim.invitation_state(invitation.href or "") == "Failed"
        assert sim.counters.invitations_by_state == {"Failed": 1}


@BOTH_SHAPES
async def test_awaiting_task_cancelled_does_not_cancel_the_invitation(
    make_session: SessionFactory, wire_format: str, shaped: Callable[..., SimulatorConfig]
) -> None:
    config = shaped(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.3))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        waiter = asyncio.create_task(invitation.wait())
        await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not invitation.done()
        assert (await invitation).state == "Connected"


@BOTH_SHAPES
async def test_session_close_ends_pending_with_session_closed(
    make_session: SessionFactory,
    wire_format: str,
    no_leftover_tasks: Callable[[], None],
    shaped: Callable[..., SimulatorConfig],
) -> None:
    config = shaped(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim:
        async with make_session(sim) as session:
            logs = await session.conversation_logs(limit=1)
            invitation = await session.continue_messaging(logs[0])
        with pytest.raises(ucwa_async.SessionClosedError):
            await invitation
        assert session.stats.invitations_closed == 1
        with pytest.raises(ucwa_async.SessionClosedError):
            await session.continue_messaging(logs[0])
    no_leftover_tasks()


async def test_continue_errors_are_typed(make_session: SessionFactory, wire_format: str) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.conflict(subcode="TooManyGroups")
        with pytest.raises(ucwa_async.TooManyGroupsError) as info:
            await session.continue_messaging(logs[0])
        assert info.value.status == 409
        sim.faults.conflict(subcode="SomethingNew")
        with pytest.raises(ucwa_async.ConflictError) as conflict:
            await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert conflict.value.subcode == "SomethingNew"
        assert session.pending_invitations == 0
        assert sim.counters.invitations_created == 0
        # an unknown log href is a clean NotFoundError
        missing = sim.url(DISCOVERY_PATH.replace("root", "nope"))
        with pytest.raises(ucwa_async.NotFoundError):
            await session.continue_messaging(missing)
        # and the session still works afterwards
        assert (await (await session.continue_messaging(logs[0]))).state == "Connected"


async def test_cancel_when_the_cancelled_event_beats_the_204(
    make_session: SessionFactory, wire_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real server may report the termination on the event channel before it answers
    # the cancel POST. The simulator answers first, so hold its 204 back a little.
    from ucwa_async.testing._application import Endpoints

    original = Endpoints.cancel_invitation

    async def slow_cancel(self: Endpoints, ctx: Any) -> Any:
        response = await original(self, ctx)
        await asyncio.sleep(0.3)  # the completed/Failure event is delivered meanwhile
        return response

    monkeypatch.setattr(Endpoints, "cancel_invitation", slow_cancel)
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitations = [await session.continue_messaging(logs[0]) for _ in range(3)]
        await asyncio.sleep(0.1)
        async with session.events() as stream:
            assert [inv.cancel() for inv in invitations] == [True, True, True]
            results = await asyncio.gather(*(inv.cancel_outcome() for inv in invitations))
            # the server's completed events did arrive before the 204s
            seen = []
            for _ in range(3):
                seen.append(await asyncio.wait_for(anext(stream), 2))
        assert [e.type for e in seen] == ["completed"] * 3
        assert results == [True, True, True]
        for invitation in invitations:
            with pytest.raises(asyncio.CancelledError):
                await invitation
            assert invitation.cancelled()
        assert session.stats.invitations_cancelled == 3
        assert session.stats.invitations_failed == 0
        assert sim.counters.invitations_by_state == {"Failed": 3}


async def test_cancel_refused_by_the_server_keeps_the_invitation(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.4))
    async with UcwaSimulator(config) as sim, make_session(sim, retry_after_cap=0.01) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        await asyncio.sleep(0.05)
        sim.faults.service_unavailable(next_n=4, retry_after=None, target="cancel")
        assert invitation.cancel() is True
        with pytest.raises(ucwa_async.ServiceUnavailableError):
            await invitation.cancel_outcome()
        # the cancel failed: the invitation is still pending and ends normally
        assert not invitation.done()
        assert (await invitation.result(timeout=8)).state == "Connected"
        assert session.stats.invitations_cancelled == 0
        assert session.stats.invitations_connected == 1


async def test_cancel_post_fails_after_the_server_ended_it(
    make_session: SessionFactory, wire_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The termination was reported, then the cancel POST itself failed: the reported
    # failure is the outcome (not a cancel, not a hang).
    from aiohttp import web

    from ucwa_async.testing._application import Endpoints

    original = Endpoints.cancel_invitation

    async def failing_cancel(self: Endpoints, ctx: Any) -> Any:
        await original(self, ctx)
        await asyncio.sleep(0.3)
        return web.Response(status=500, text="<html>proxy error</html>", content_type="text/html")

    monkeypatch.setattr(Endpoints, "cancel_invitation", failing_cancel)
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        await asyncio.sleep(0.1)
        assert invitation.cancel() is True
        # the cancel POST failed, but the invitation ended (as the server reported)
        assert await invitation.cancel_outcome() is False
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await invitation.result(timeout=2)
        assert info.value.reason is not None
        assert info.value.reason.code == "Cancelled"
        assert session.stats.invitations_failed == 1
        assert session.stats.invitations_cancelled == 0
        assert session.pending_invitations == 0


async def test_invitations_work_with_the_asyncio_helpers(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Invitation is an asyncio.Future: wait, as_completed, gather, wait_for, shield and
    # done callbacks take real invitations as they are.
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        if request.modality == "PhoneAudio":
            return Outcome(success=False, reason=DECLINED, delay=0.05)
        return Outcome(success=True, delay=0.05)

    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=rule)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=2)
        im = await session.continue_messaging(logs[0])
        call = await session.continue_phone_audio(logs[1], phone_number=PHONE)
        finished: list[ucwa_async.Invitation[Any]] = []
        im.add_done_callback(finished.append)
        done, pending = await asyncio.wait([im, call], timeout=8)
        assert done == {im, call}
        assert pending == set()
        assert im.result().state == "Connected"
        assert isinstance(call.exception(), ucwa_async.InvitationFailedError)
        await asyncio.sleep(0)
        assert finished == [im]
        results = await asyncio.gather(im, call, return_exceptions=True)
        assert isinstance(results[1], ucwa_async.InvitationFailedError)
        outcomes = []
        for next_done in asyncio.as_completed([im, call], timeout=8):
            try:
                outcomes.append((await next_done).state)
            except ucwa_async.InvitationFailedError as exc:
                outcomes.append(exc.reason.subcode if exc.reason else None)
        assert sorted(outcomes) == ["Connected", "Declined"]
        fresh = await session.continue_messaging(logs[0])
        assert (await asyncio.wait_for(asyncio.shield(fresh), 8)).state == "Connected"


async def test_a_failed_background_cancel_is_logged(
    make_session: SessionFactory, wire_format: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.4))
    async with UcwaSimulator(config) as sim, make_session(sim, retry_after_cap=0.01) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        await asyncio.sleep(0.05)
        sim.faults.service_unavailable(next_n=4, retry_after=None, target="cancel")
        with caplog.at_level("WARNING", logger="ucwa_async"):
            assert invitation.cancel() is True  # nobody awaits the cancel's outcome
            assert (await invitation.wait(timeout=8)).state == "Connected"
        assert any("could not cancel invitation" in r.getMessage() for r in caplog.records)


async def test_log_hrefs_are_absolute_like_invitation_hrefs(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=3)
        assert logs
        for log in logs:
            assert log.href.startswith(sim.base_url + "/"), log.href
        relative = logs[0].href[len(sim.base_url) :]
        again = await session.conversation_log(relative)
        assert again.href == logs[0].href
        invitation = await session.continue_messaging(logs[0])
        assert invitation.href is not None
        assert invitation.href.startswith(sim.base_url + "/")
        await invitation.wait(timeout=8)


async def test_phone_numbers_are_checked_as_the_cli_does(
    make_session: SessionFactory, wire_format: str
) -> None:
    recorder = Recorder()
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=recorder)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        for local in ("12345", "tel:12345", "4255551234"):
            with pytest.raises(ucwa_async.InvalidPhoneNumberError, match="tel:\\+14255551234"):
                await session.continue_phone_audio(logs[0], phone_number=local)
        call = await session.continue_phone_audio(logs[0], phone_number="+1 (425) 555-1234")
        await call.wait(timeout=8)
        assert [r.phone_number for r in recorder.requests] == ["tel:+14255551234"]


async def test_a_cancel_requested_just_before_close_reaches_the_server(
    make_session: SessionFactory, wire_format: str
) -> None:
    # cancel() returns at once; leaving the session right after must not leave the call
    # ringing: the close lets the cancel POST finish (bounded by close_timeout).
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(complete=False))
    async with UcwaSimulator(config) as sim:
        async with make_session(sim) as session:
            logs = await session.conversation_logs(limit=1)
            invitation = await session.continue_messaging(logs[0])
            await asyncio.sleep(0.1)  # the started event gave the cancel link
            sim.faults.latency(0.3, target="cancel")
            assert invitation.cancel() is True
        assert invitation.cancelled()
        assert sim.counters.invitations_by_state == {"Failed": 1}  # cancelled on the server
        assert [r.status for r in sim.request_log if r.kind == "cancel"] == [204]
        assert session.stats.invitations_cancelled == 1
