"""Issue 11, the operations table: no orphaned server operation, idempotent retries by
``operation_id``, re-attaching by href, bounded resync re-reads, cancel races.

Every test runs in both wires (the ``wire_format`` fixture) against the simulator.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import ucwa_async
from ucwa_async._core import channel as channel_core
from ucwa_async.testing import (
    DECLINED,
    Behaviour,
    HrefStyle,
    InvitationRequest,
    Outcome,
    Person,
    SimulatorConfig,
    UcwaSimulator,
)

from ._support import SessionFactory, assert_no_leftover_tasks, until

PHONE = "tel:+14255551234"
LENE = "sip:lenea@contoso.com"


def _ringing(request: InvitationRequest, rng: random.Random) -> Outcome:
    return Outcome(complete=False)  # the phone rings until someone ends it


def _requests(sim: UcwaSimulator, kind: str, method: str = "POST") -> list[Any]:
    return [r for r in sim.request_log if r.kind == kind and r.method == method]


async def _connecting(invitation: ucwa_async.Invitation[Any]) -> None:
    """Wait (bounded) for the started event, so the cancel link is known."""
    await until(lambda: invitation.state == "Connecting")


# --- 1. invitation_timeout counts from the 201 --------------------------------------------


@pytest.mark.parametrize("per_call", [False, True], ids=["session-timeout", "per-call-timeout"])
async def test_invitation_timeout_counts_from_the_201(
    make_session: SessionFactory, wire_format: str, per_call: bool
) -> None:
    # The POST takes longer than the timeout; the server answers, then connects 0.2 s
    # later. Counting from before the POST ended an invitation the server was ringing.
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.2))
    session_timeout = 10.0 if per_call else 0.4
    async with (
        UcwaSimulator(config) as sim,
        make_session(sim, invitation_timeout=session_timeout) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.6, target="continue")
        invitation = await session.continue_messaging(
            logs[0], message="slow POST", timeout=0.4 if per_call else None
        )
        assert (await invitation.result(timeout=5)).state == "Connected"
        assert session.stats.invitations_timed_out == 0
        assert session.stats.invitations_connected == 1


async def test_invitation_timeout_still_ends_a_silent_invitation(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=_ringing)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.3, target="continue")
        loop = asyncio.get_running_loop()
        invitation = await session.continue_phone_audio(logs[0], PHONE, timeout=0.4)
        accepted = loop.time()
        with pytest.raises(ucwa_async.InvitationTimeoutError) as info:
            await invitation.result(timeout=5)
        assert "stopped waiting for it" in str(info.value)  # not "still pending"
        assert loop.time() - accepted >= 0.35  # the whole timeout, from the 201
        assert session.stats.invitations_timed_out == 1
        assert session.pending_invitations == 0


async def test_an_expired_invitation_is_not_cancelled_on_the_server(
    make_session: SessionFactory, wire_format: str
) -> None:
    # What docs/invitations.md says: the invitation's own timeout ends it here only; the
    # handle can no longer cancel it, so a bot cancels before that timeout.
    config = SimulatorConfig(outcome_rule=_ringing)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0], timeout=0.2)
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await invitation.result(timeout=5)
        assert invitation.href is not None
        assert sim.invitation_state(invitation.href) == "Connecting"
        assert invitation.cancel() is False
        assert _requests(sim, "cancel") == []
        bounded = await session.continue_messaging(logs[0])
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await bounded.wait(0.1)
        assert bounded.cancel() is True
        assert await bounded.cancel_outcome() is True
        assert bounded.href is not None
        assert sim.invitation_state(bounded.href) != "Connecting"  # no longer rings


# --- 2. no orphaned call ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["asyncio.timeout", "task.cancel"])
async def test_abandoned_continue_is_cancelled_on_the_server(
    make_session: SessionFactory,
    wire_format: str,
    how: str,
    no_leftover_tasks: Callable[[], None],
) -> None:
    # The server creates the invitation (its phone rings) but answers the POST late;
    # the caller gives up meanwhile. The session must still learn the href and cancel.
    async with UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim:
        async with make_session(sim) as session:
            logs = await session.conversation_logs(limit=1)
            sim.faults.late_answer(0.5, target="continue")
            if how == "asyncio.timeout":
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await session.continue_phone_audio(logs[0], PHONE)
            else:
                caller = asyncio.create_task(session.continue_phone_audio(logs[0], PHONE))
                await asyncio.sleep(0.2)
                caller.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await caller
            # The server already acted: the call rings, and the session knows it is pending.
            assert sim.counters.invitations_created == 1
            assert sim.counters.invitations_by_state == {"Connecting": 1}
            assert session.pending_invitations == 1
            await until(lambda: session.pending_invitations == 0)
            await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
            cancels = _requests(sim, "cancel")
            assert [r.status for r in cancels] == [204]
            assert "/communication/invitations/1/cancel" in cancels[0].path
            assert sim.counters.faults_injected["late_answer"] == 1
            assert session.stats.invitations_abandoned == 1
            assert session.stats.invitations_started == 1
            assert session.stats.invitations_cancelled == 1
            assert len(_requests(sim, "continue")) == 1
        await assert_no_leftover_tasks(no_leftover_tasks)


async def test_caller_cancelled_in_the_turn_the_201_lands_still_abandons(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The caller's cancel lands in the very turn the 201 settles the POST (an
    # asyncio.timeout expiring then): the handle never reaches it, and the session had
    # counted it as waiting; the call must be cancelled all the same, not left ringing.
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.3, target="continue")
        caller = asyncio.create_task(session.continue_phone_audio(logs[0], PHONE))
        await until(lambda: bool(session._ops._starting))
        (entry,) = session._ops._starting.values()
        entry.posted.add_done_callback(lambda _: caller.cancel())  # after the caller's wake-up
        with pytest.raises(asyncio.CancelledError):
            await caller
        await until(lambda: session.pending_invitations == 0)
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert len(_requests(sim, "cancel")) == 1
        assert session.stats.invitations_abandoned == 1


async def test_abandoned_continue_without_a_cancel_link_in_events_gets_it(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Link-only events carry no cancel link: the session GETs the invitation for it.
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.4, target="continue")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await session.continue_messaging(logs[0], message="never mind")
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert len(_requests(sim, "invitation", "GET")) >= 1
        assert len(_requests(sim, "cancel")) == 1
        await until(lambda: session.pending_invitations == 0)
        assert session.stats.invitations_abandoned == 1


async def test_abandoned_continue_whose_post_fails_cancels_nothing(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.3, target="continue")
        sim.faults.conflict()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await session.continue_messaging(logs[0])
        await until(lambda: len(_requests(sim, "continue")) == 1)
        await until(lambda: session.pending_invitations == 0)
        await asyncio.sleep(0.1)
        assert [r.status for r in _requests(sim, "continue")] == [409]
        assert _requests(sim, "cancel") == []
        assert session.stats.invitations_abandoned == 0
        assert session.stats.invitations_started == 0
        assert sim.counters.invitations_created == 0


def _hold_events(session: ucwa_async.Session) -> Callable[[], None]:
    """Hold the batches the event channel reads until the returned function releases
    them (in order): events that come after a POST's failure, deterministically."""
    host = session._host
    assert host is not None
    deliver, held = host.deliver, []
    host.deliver = held.append  # type: ignore[method-assign]

    def release() -> None:
        host.deliver = deliver  # type: ignore[method-assign]
        for batch in held:
            deliver(batch)

    return release


async def _lose_the_answer(
    session: ucwa_async.Session, sim: UcwaSimulator, call: Awaitable[Any]
) -> Callable[[], None]:
    """Hold the channel's batches, then make ``call`` (a continue) whose POST the server
    acts on but whose answer is lost: it raises ``TransportError``. Returns the release of
    the held batches."""
    release = _hold_events(session)
    sim.faults.late_answer(0.1, drop=True)
    with pytest.raises(ucwa_async.TransportError):
        await call
    return release


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the channel's word on a POST that got no answer: 0.2 s, not 2."""
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)


@pytest.mark.parametrize("how", ["connection lost", "request timeout"])
async def test_continue_whose_answer_is_lost_gets_its_invitation_from_the_channel(
    make_session: SessionFactory, wire_format: str, how: str
) -> None:
    # The server makes the invitation (the phone rings) but its 201 never arrives: the
    # connection drops, or the answer comes after the request's timeout. The channel has
    # named the call's operationId: the server made it, and the call returns it as if
    # the 201 had come.
    overrides = {"request_timeout": 0.3} if how == "request timeout" else {}
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim, **overrides) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.1 if how == "connection lost" else 1.0, drop=True)
        invitation = await session.continue_phone_audio(logs[0], PHONE, timeout=30)
        assert invitation.href is not None
        assert invitation.href.endswith("/communication/invitations/1")
        assert not invitation.done()
        assert invitation.state == "Connecting"
        assert session.pending_invitations == 1
        assert session.stats.invitations_started == 1
        assert invitation._deadline is not None  # the call's own timeout runs
        assert invitation._deadline - asyncio.get_running_loop().time() > 20
        assert _requests(sim, "cancel") == []
        assert sim.counters.faults_injected["late_answer"] == 1
        assert invitation.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert len(_requests(sim, "continue")) == 1
        assert session._ops._unanswered == {}


@pytest.mark.parametrize("hrefs", ["relative", "absolute"])
async def test_continue_whose_answer_is_lost_gets_its_invitation_from_a_link_only_event(
    make_session: SessionFactory, wire_format: str, hrefs: HrefStyle
) -> None:
    # The server's events embed nothing (messagingInvitation_ref.md's started sample is
    # link-only): the operationId is the invitation's own (its GET). The call reads the
    # invitation the unclaimed event names and returns it (it raised, and the call it was
    # told failed was left ringing on the server: nothing could name it).
    # (messagingInvitation_ref.md's event samples write absolute hrefs.)
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False, event_href_style=hrefs)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.1, drop=True)
        invitation = await session.continue_phone_audio(logs[0], PHONE, timeout=30)
        assert invitation.href is not None
        assert invitation.href.endswith("/communication/invitations/1")
        assert not invitation.done()
        assert session.pending_invitations == 1
        assert session.stats.invitations_started == 1
        assert _requests(sim, "cancel") == []
        assert session._ops._unanswered == {}
        assert invitation.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})


@pytest.mark.parametrize("delay", [0.0, 0.05], ids=["completed at once", "completed soon"])
async def test_continue_whose_answer_is_lost_gets_its_connected_invitation_from_link_only_events(
    make_session: SessionFactory, wire_format: str, delay: float
) -> None:
    # Link-only events, and the invitation connects before (or while) the call learns its
    # answer is lost: its completed event names it, and the session reads the invitation
    # back to learn the outcome. That read was still under way when the call looked, so
    # the call raised TransportError while the server had connected the conversation (and
    # nobody left it): the caller was told a call failed that went on.
    config = SimulatorConfig(
        outcome_rule=lambda req, rng: Outcome(success=True, delay=delay), embed_resources=False
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.1, drop=True)
        invitation = await session.continue_messaging(logs[0], "hello again")
        assert invitation.href is not None
        assert invitation.href.endswith("/communication/invitations/1")
        final = await invitation.wait(5)
        assert final.state == "Connected"
        assert sim.counters.invitations_by_state == {"Connected": 1}
        assert session.stats.invitations_started == 1
        assert session.stats.invitations_connected == 1
        assert session.stats.invitations_abandoned == 0
        assert _requests(sim, "stopMessaging") == []
        assert session._ops._unanswered == {}


@pytest.mark.parametrize("outcome", ["connected", "declined"])
@pytest.mark.parametrize("call", ["continue", "start"])
async def test_a_lost_answer_whose_invitation_ended_before_it_was_read_returns_it(
    make_session: SessionFactory, wire_format: str, outcome: str, call: str
) -> None:
    # Link-only events (messagingInvitation_ref.md's samples), and the invitation ends
    # before the 201 would have come: its started and completed events are unclaimed when
    # the call looks for them. The read of the invitation names the call's operationId,
    # the completed event then needs a read of how it ended: the call returns the
    # invitation, which ends as the server says (it raised the TransportError, for a
    # conversation the server had connected: a retry would have started a second one).
    config = SimulatorConfig(
        embed_resources=False,
        event_href_style="absolute",
        completion_delay=0.01,
        fail_rate=1.0 if outcome == "declined" else 0.0,
        people=(Person(LENE, "Lene Aaling", Behaviour.decline()),)
        if outcome == "declined"
        else None,
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        target = "continue" if call == "continue" else "startMessaging"
        sim.faults.late_answer(0.1, target=target, drop=True)
        async with asyncio.timeout(5):
            if call == "continue":
                invitation = await session.continue_messaging(logs[0], "hello")
            else:
                invitation = await session.start_messaging(LENE, "hello")
            assert sim.counters.faults_injected["late_answer"] == 1
            assert invitation.href is not None
            if outcome == "connected":
                assert (await invitation).state == "Connected"
            else:
                with pytest.raises(ucwa_async.InvitationFailedError):
                    await invitation
        assert session.stats.invitations_started == 1
        assert _requests(sim, "cancel") == []
        assert session._ops._unanswered == {}
        assert session.pending_invitations == 0


async def test_a_continue_waiting_for_the_channel_after_a_lost_answer_is_pending(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # While the call waits for the channel's word (the grace), its invitation counts in
    # pending_invitations, as during the POST (it dropped out, then came back).
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = _hold_events(session)
        sim.faults.late_answer(0.1, drop=True)
        caller = asyncio.create_task(session.continue_phone_audio(logs[0], PHONE))
        await until(lambda: len(session._ops._unanswered) == 1)
        assert session.pending_invitations == 1
        with pytest.raises(ucwa_async.TransportError):
            await caller
        assert session.pending_invitations == 0  # watched: nobody holds it
        release()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})


async def test_continue_whose_answer_is_lost_and_named_late_is_cancelled_on_the_server(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The channel names the call only after the grace: the caller has been told the POST
    # failed; the session must not leave that call ringing on the server.
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = _hold_events(session)
        sim.faults.late_answer(0.1, drop=True)
        with pytest.raises(ucwa_async.TransportError) as failed:
            await session.continue_phone_audio(logs[0], PHONE)
        assert failed.value.request_sent is None  # it may have reached the server
        assert sim.counters.invitations_created == 1
        assert session.pending_invitations == 0  # watched, but nobody holds it
        release()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        await until(lambda: session.pending_invitations == 0)
        cancels = _requests(sim, "cancel")
        assert [r.status for r in cancels] == [204]
        assert "/communication/invitations/1/cancel" in cancels[0].path
        assert session.stats.invitations_abandoned == 1
        assert session.stats.invitations_started == 0
        assert len(_requests(sim, "continue")) == 1
        assert session._ops._unanswered == {}


@pytest.mark.parametrize("lost", [True, False], ids=["answer lost", "caller gave up"])
async def test_a_call_nobody_holds_that_connected_first_is_left(
    make_session: SessionFactory, wire_format: str, short_grace: None, lost: bool
) -> None:
    # Its started and completed (Success) events come in one batch, after its caller was
    # told the POST failed (or gave up): it connected before any cancel could land, and
    # nobody holds it. The session leaves its conversation rather than leave it connected.
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.05))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        release = _hold_events(session)
        if lost:
            sim.faults.late_answer(0.1, drop=True)
            with pytest.raises(ucwa_async.TransportError):
                await session.continue_messaging(logs[0], "hello again")
        else:
            sim.faults.late_answer(0.4)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await session.continue_messaging(logs[0], "hello again")
            await until(lambda: len(_requests(sim, "continue")) == 1)
            await asyncio.sleep(0.5)  # its 201 has come: the session holds it, nobody else
        await until(lambda: sim.counters.invitations_by_state == {"Connected": 1})
        release()
        await until(lambda: len(_requests(sim, "stopMessaging")) == 1)
        assert session.stats.invitations_abandoned == 1
        assert session.pending_invitations == 0


async def test_a_retry_of_a_continue_whose_answer_is_lost_joins_its_invitation(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The caller retries at once with the call's own operation_id, before the channel
    # has named the first POST's invitation: the retry waits for it and joins it, so
    # the server is asked once and one call rings.
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(
            session, sim, session.continue_phone_audio(logs[0], PHONE, operation_id="order-7")
        )
        retry = asyncio.create_task(
            session.continue_phone_audio(logs[0], PHONE, operation_id="order-7", timeout=30)
        )
        await asyncio.sleep(0.1)
        assert not retry.done()  # waiting for the channel's word on the first POST
        release()
        invitation = await asyncio.wait_for(retry, 5)
        assert invitation.operation_id == "order-7"
        assert invitation.href is not None
        assert invitation.href.endswith("/invitations/1")
        await until(lambda: invitation.state == "Connecting")
        assert len(_requests(sim, "continue")) == 1
        assert _requests(sim, "cancel") == []
        assert session.pending_invitations == 1
        assert session.stats.invitations_started == 1
        assert session.stats.invitations_abandoned == 0
        assert invitation._deadline is not None  # the retry's own timeout runs
        assert invitation._deadline - asyncio.get_running_loop().time() > 20


async def test_a_continue_whose_post_reached_nothing_is_watched_then_forgotten(
    make_session: SessionFactory,
    wire_format: str,
    short_grace: None,
    no_leftover_tasks: Callable[[], None],
) -> None:
    # The POST failed, and nothing ever names it: the server made nothing. The call
    # raises after the grace, the watch ends by itself, nothing is cancelled, and a retry
    # with the same operation_id POSTs afresh once its own grace has passed.
    async with UcwaSimulator() as sim:
        session = make_session(sim)
        await session.open()
        logs = await session.conversation_logs(limit=1)
        post = session._ops._post_continue

        async def lost(url: str, body: Any) -> Any:
            raise ucwa_async.TransportError("POST failed: connection reset (injected)")

        session._ops._post_continue = lost  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_messaging(logs[0], timeout=0.5)
        assert loop.time() - began >= 0.15  # it waited for the channel's word
        assert len(session._ops._unanswered) == 1
        assert session.pending_invitations == 0
        await until(lambda: session._ops._unanswered == {})
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_messaging(logs[0], operation_id="order-8")
        session._ops._post_continue = post  # type: ignore[method-assign]
        began = loop.time()
        retry = await session.continue_messaging(logs[0], operation_id="order-8")
        assert loop.time() - began >= 0.15  # it waited for the first POST's events
        assert (await retry.wait(5)).state == "Connected"
        assert len(_requests(sim, "continue")) == 1
        assert _requests(sim, "cancel") == []
        assert session.stats.invitations_abandoned == 0
        assert session._ops._unanswered == {}
        await session.aclose()
        await assert_no_leftover_tasks(no_leftover_tasks)


async def test_a_continue_whose_post_was_never_sent_fails_at_once(
    make_session: SessionFactory, wire_format: str
) -> None:
    # No connection could be made (request_sent False): nothing to wait for, nothing
    # to watch.
    async with UcwaSimulator() as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)

        async def refused(url: str, body: Any) -> Any:
            error = ucwa_async.TransportError("POST failed: cannot connect (injected)")
            error.request_sent = False
            raise error

        session._ops._post_continue = refused  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_messaging(logs[0])
        assert loop.time() - began < 1.0
        assert session._ops._unanswered == {}
        assert session.pending_invitations == 0


async def test_a_continue_stopped_by_its_token_request_fails_at_once(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The server answered the POST 401, and the new token's request got no answer: the
    # POST made nothing (request_sent False), so the call raises at once (it waited for
    # the channel's word, then watched for a call that cannot exist).
    async with UcwaSimulator() as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        transport = session._client_transport

        async def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise ucwa_async.TransportError("POST token: connection reset (injected)")

        transport.authenticate = unreachable  # type: ignore[method-assign]
        sim.faults.expire_tokens()
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ucwa_async.TransportError) as failed:
            await session.continue_messaging(logs[0])
        assert failed.value.request_sent is False
        assert loop.time() - began < 1.0
        assert session._ops._unanswered == {}
        assert sim.counters.invitations_created == 0


async def test_closing_ends_the_watch_of_an_unanswered_continue(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    async with UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim:
        session = make_session(sim)
        await session.open()
        logs = await session.conversation_logs(limit=1)
        _hold_events(session)
        sim.faults.late_answer(0.1, drop=True)
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_messaging(logs[0])
        assert len(session._ops._unanswered) == 1
        async with asyncio.timeout(3):
            await session.aclose()
        assert session._ops._unanswered == {}
        assert session.stats.invitations_closed == 0  # nobody held it
        assert sim.application_ids == []  # the DELETE ended the call on the server


async def test_a_channel_failed_during_the_watch_of_an_unanswered_continue_forgets_it(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The channel fails for good while a POST without an answer is watched: the watch
    # ended with everything else (it stayed, its invitation gone: pending_invitations
    # went negative, len() and repr(session) raised ValueError, and it was never freed).
    config = SimulatorConfig(outcome_rule=_ringing, pget_timeout_cap=0.2)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        _hold_events(session)
        sim.faults.late_answer(0.1, drop=True)
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_phone_audio(logs[0], PHONE)
        assert len(session._ops._unanswered) == 1
        async with session.events() as stream, asyncio.timeout(10):
            sim.faults.unauthorized_forever(target="pget", next_n=None)
            async for item in stream:
                if isinstance(item, ucwa_async.ChannelFailed):
                    break
        assert session._ops._unanswered == {}
        assert session.pending_invitations == 0
        assert "pending=0" in repr(session)


async def test_an_invitation_timeout_shorter_than_the_grace_still_raises(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The call's own timeout ends the watch during the grace: nothing named the call, so
    # it raises the TransportError (it returned an invitation cancelled here, as if the
    # server had made it, and stopped watching for it).
    async with UcwaSimulator() as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)

        async def lost(url: str, body: Any) -> Any:
            raise ucwa_async.TransportError("POST failed: connection reset (injected)")

        session._ops._post_continue = lost  # type: ignore[method-assign]
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_messaging(logs[0], timeout=0.05)
        assert session.stats.invitations_started == 0
        assert session._ops._unanswered == {}
        assert session.pending_invitations == 0


async def test_two_retries_joining_an_unanswered_continue_count_one_call(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # Two retries with the first POST's operation_id wait together for its invitation:
    # both get the one handle, and it is one call started (it counted two).
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(
            session, sim, session.continue_phone_audio(logs[0], PHONE, operation_id="order-9")
        )
        retries = [
            asyncio.create_task(
                session.continue_phone_audio(logs[0], PHONE, operation_id="order-9")
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        release()
        first, second = await asyncio.wait_for(asyncio.gather(*retries), 5)
        assert first is second
        assert session.stats.invitations_started == 1
        assert session.pending_invitations == 1
        assert len(_requests(sim, "continue")) == 1


async def test_a_retry_of_another_kind_does_not_take_an_unanswered_continue(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The operation_id of a watched phone call, retried as a messaging invitation: a
    # ValueError at once, and the call the server may have made stays watched (it was
    # taken for the retry, then nobody held it: left ringing until its timeout).
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(
            session, sim, session.continue_phone_audio(logs[0], PHONE, operation_id="order-10")
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        retry = asyncio.create_task(session.continue_messaging(logs[0], operation_id="order-10"))
        await asyncio.sleep(0.05)
        release()
        with pytest.raises(ValueError, match="in use by a phoneAudioInvitation"):
            await asyncio.wait_for(retry, 5)
        assert loop.time() - began < 0.15
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert session.stats.invitations_abandoned == 1
        assert session.stats.invitations_started == 0
        assert session._ops._unanswered == {}


async def test_a_retry_cancelled_in_the_turn_the_call_is_named_abandons_it(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The channel names the watched call, and the retry that was to take it is cancelled
    # before it runs again: nobody holds it, so it is cancelled on the server (it was
    # left ringing, then timed out here).
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(
            session, sim, session.continue_phone_audio(logs[0], PHONE, operation_id="order-11")
        )
        retry = asyncio.create_task(
            session.continue_phone_audio(logs[0], PHONE, operation_id="order-11")
        )
        await asyncio.sleep(0.05)
        release()  # named now: the retry is woken, and cancelled before it runs
        retry.cancel()
        with pytest.raises(asyncio.CancelledError):
            await retry
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert session.stats.invitations_abandoned == 1
        assert session.pending_invitations == 0


async def test_closing_during_the_grace_of_an_unanswered_continue(
    make_session: SessionFactory, wire_format: str, no_leftover_tasks: Callable[[], None]
) -> None:
    # The session closes while the call waits for the channel's word on its lost
    # answer: the call gets SessionClosedError, nothing stays watched, no task is left.
    async with UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim:
        session = make_session(sim)
        await session.open()
        logs = await session.conversation_logs(limit=1)
        _hold_events(session)
        sim.faults.late_answer(0.1, drop=True)
        caller = asyncio.create_task(session.continue_phone_audio(logs[0], PHONE))
        await until(lambda: len(session._ops._unanswered) == 1)
        async with asyncio.timeout(3):
            await session.aclose()
        with pytest.raises(ucwa_async.SessionClosedError):
            await caller
        assert session._ops._unanswered == {}
        assert session.pending_invitations == 0
        assert session.stats.invitations_started == 0
        await assert_no_leftover_tasks(no_leftover_tasks)


async def test_close_while_an_abandoned_post_runs_leaves_nothing(
    make_session: SessionFactory, wire_format: str, no_leftover_tasks: Callable[[], None]
) -> None:
    async with UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim:
        session = make_session(sim)
        await session.open()
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.5, target="continue")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await session.continue_messaging(logs[0])
        assert session.pending_invitations == 1
        async with asyncio.timeout(3):
            await session.aclose()
        assert session.pending_invitations == 0
        # Closing deleted the application: nothing of ours is left ringing on the server.
        assert sim.application_ids == []
        await assert_no_leftover_tasks(no_leftover_tasks)


async def test_a_continue_call_waiting_at_close_gets_session_closed(
    make_session: SessionFactory, wire_format: str, no_leftover_tasks: Callable[[], None]
) -> None:
    async with UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim:
        session = make_session(sim)
        await session.open()
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(2.0, target="continue")
        caller = asyncio.create_task(session.continue_messaging(logs[0]))
        await until(lambda: sim.counters.invitations_created == 1)
        async with asyncio.timeout(3):
            await session.aclose()
        with pytest.raises(ucwa_async.SessionClosedError):
            await caller
        assert session.stats.invitations_abandoned == 0
        await assert_no_leftover_tasks(no_leftover_tasks)


# --- 3. operation_id: an idempotent retry --------------------------------------------------


async def test_retry_with_the_same_operation_id_while_the_post_runs_posts_once(
    make_session: SessionFactory, wire_format: str
) -> None:
    seen: list[str] = []

    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        seen.append(request.operation_id)
        return Outcome(success=True, delay=0.8)

    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=rule)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.4, target="continue")
        # The first attempt gives up while the POST is under way; the retry re-attaches.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await session.continue_messaging(logs[0], "hi", operation_id="order-42:try")
        retry = await session.continue_messaging(logs[0], "hi", operation_id="order-42:try")
        assert retry.operation_id == "order-42:try"
        assert retry.href is not None
        # Pending now: a third call returns the very same handle, without a request.
        again = await session.continue_messaging(logs[0], "hi", operation_id="order-42:try")
        assert again is retry
        assert (await retry.result(timeout=5)).state == "Connected"
        assert seen == ["order-42:try"]
        assert len(_requests(sim, "continue")) == 1
        assert _requests(sim, "cancel") == []  # adopted by the retry, not abandoned
        assert session.stats.invitations_abandoned == 0
        assert session.stats.invitations_started == 1
        assert session.stats.invitations_connected == 1


async def test_retry_while_the_abandoned_invitation_is_being_cancelled_starts_afresh(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Too late to adopt: the 201 came with nobody waiting and the session is cancelling
    # that invitation. The retry waits for the cancel, then places the call again (and
    # the cancelled one's events, same operationId, do not end the new one).
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.2, target="continue")
        sim.faults.latency(0.4, target="cancel")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await session.continue_phone_audio(logs[0], PHONE, operation_id="ring-7")
        await until(lambda: session.stats.invitations_abandoned == 1)
        assert _requests(sim, "cancel") == []  # the cancel POST is held
        retry = await session.continue_phone_audio(logs[0], PHONE, operation_id="ring-7")
        assert [r.status for r in _requests(sim, "cancel")] == [204]
        assert retry.operation_id == "ring-7"
        assert retry.href is not None
        assert retry.href.endswith("/invitations/2")
        assert sim.counters.invitations_by_state == {"Failed": 1, "Connecting": 1}
        sim.faults.duplicate_events(next_n=5)
        await asyncio.sleep(0.3)  # the first one's Cancelled events have come and gone
        assert not retry.done()
        sim.release_held()
        assert (await retry.result(timeout=5)).state == "Connected"
        assert len(_requests(sim, "continue")) == 2
        assert session.stats.invitations_cancelled == 1
        assert session.stats.invitations_connected == 1


async def test_concurrent_calls_with_one_operation_id_share_the_post(
    make_session: SessionFactory, wire_format: str
) -> None:
    config = SimulatorConfig(outcome_rule=lambda req, rng: Outcome(success=True, delay=0.1))
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.2, target="continue")
        first, second = await asyncio.gather(
            session.continue_phone_audio(logs[0], PHONE, operation_id="call.1"),
            session.continue_phone_audio(logs[0], PHONE, operation_id="call.1"),
        )
        assert first is second
        assert len(_requests(sim, "continue")) == 1
        # Another kind under a pending id is a caller's mistake, not a retry.
        pending = await session.continue_phone_audio(logs[0], PHONE, operation_id="call.2")
        with pytest.raises(ValueError, match="in use"):
            await session.continue_messaging(logs[0], operation_id="call.2")
        assert (await first.result(timeout=5)).state == "Connected"
        assert (await pending.result(timeout=5)).state == "Connected"
        assert len(_requests(sim, "continue")) == 2


@pytest.mark.parametrize(
    "bad", ["", "x" * 51, "has space", "caf\u00e9", "new\nline", "semi;colon", 42, None]
)
async def test_operation_id_is_validated(
    make_session: SessionFactory, wire_format: str, simulator: UcwaSimulator, bad: Any
) -> None:
    async with make_session(simulator) as session:
        logs = await session.conversation_logs(limit=1)
        if bad is None:  # None means "generate one": valid
            invitation = await session.continue_messaging(logs[0], operation_id=bad)
            assert len(invitation.operation_id) == 32
            return
        with pytest.raises(ValueError, match="operation_id"):
            await session.continue_messaging(logs[0], operation_id=bad)
        with pytest.raises(ValueError, match="operation_id"):
            await session.continue_phone_audio(logs[0], PHONE, operation_id=bad)
        assert _requests(simulator, "continue") == []
        ok = await session.continue_messaging(logs[0], operation_id="A-z_0.9:" + "x" * 42)
        assert (await ok.result(timeout=5)).state == "Connected"


# --- 4. session.invitation(href) ----------------------------------------------------------


async def test_invitation_by_href_returns_the_tracked_handle(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        assert invitation.href is not None
        assert await session.invitation(invitation.href) is invitation
        # Any href style of it names the same invitation.
        relative = invitation.href.removeprefix(sim.base_url)
        assert await session.invitation(relative) is invitation
        assert _requests(sim, "invitation", "GET") == []  # tracked: nothing to read
        sim.release_held()
        assert (await invitation.result(timeout=5)).state == "Connected"


async def test_invitation_by_href_in_a_final_state_resolves_at_once(
    make_session: SessionFactory, wire_format: str
) -> None:
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        if request.number == 1:
            return Outcome(success=True)
        return Outcome(success=False, reason=DECLINED)

    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=rule)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        connected = await session.continue_messaging(logs[0])
        declined = await session.continue_messaging(logs[0])
        await connected.result(timeout=5)
        with pytest.raises(ucwa_async.InvitationFailedError):
            await declined.result(timeout=5)
        assert connected.href is not None
        assert declined.href is not None

        again = await session.invitation(connected.href)
        assert again is not connected
        assert again.done()
        result = await again
        assert isinstance(result, ucwa_async.MessagingInvitation)
        assert result.state == "Connected"
        assert result.operation_id == connected.operation_id
        assert again.operation_id == connected.operation_id

        failed = await session.invitation(declined.href)
        assert failed.done()
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await failed
        assert info.value.href == declined.href
        assert failed.state == "Declined"
        assert len(_requests(sim, "invitation", "GET")) == 2
        assert session.pending_invitations == 0


async def test_invitation_by_href_tracks_a_pending_invitation(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The session gave up on it (timeout), the server still rings: re-attach, and the
    # events end the new handle.
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        first = await session.continue_phone_audio(logs[0], PHONE, timeout=0.2)
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await first.result(timeout=5)
        assert first.href is not None
        assert sim.invitation_state(first.href) == "Connecting"
        attached = await session.invitation(first.href, timeout=5)
        assert not attached.done()
        assert attached.operation_id == first.operation_id
        assert attached.state == "Connecting"
        assert session.pending_invitations == 1
        assert await session.invitation(first.href) is attached
        sim.release_held()
        result = await attached.result(timeout=5)
        assert isinstance(result, ucwa_async.PhoneAudioInvitation)
        assert result.state == "Connected"
        assert session.pending_invitations == 0


async def test_invitation_by_href_takes_over_an_unanswered_continue(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The href of a call whose POST got no answer (from events(), say), re-attached: the
    # handle is the caller's now; the session no longer treats it as nobody's (its
    # events cancelled it on the server as abandoned, or the watch's end cancelled it).
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(session, sim, session.continue_phone_audio(logs[0], PHONE))
        assert session.application_url is not None
        href = session.application_url + "/communication/invitations/1"
        attached = await session.invitation(href, timeout=30)
        assert session.pending_invitations == 1
        assert session._ops._unanswered == {}
        release()
        await until(lambda: attached.state == "Connecting")
        await asyncio.sleep(0.3)  # past the watch's grace
        assert not attached.done()
        assert _requests(sim, "cancel") == []
        assert session.stats.invitations_abandoned == 0
        assert attached._deadline is not None
        assert attached._deadline - asyncio.get_running_loop().time() > 20
        assert attached.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})


async def test_invitation_by_href_can_be_cancelled_and_times_out_from_now(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=2)
        first = await session.continue_messaging(logs[0], timeout=0.1)
        second = await session.continue_messaging(logs[1], timeout=0.1)
        for inv in (first, second):
            with pytest.raises(ucwa_async.InvitationTimeoutError):
                await inv.result(timeout=5)
        assert first.href is not None
        assert second.href is not None
        attached = await session.invitation(first.href)
        assert attached.cancel() is True
        assert await attached.cancel_outcome() is True
        assert sim.invitation_state(first.href) == "Failed"
        loop = asyncio.get_running_loop()
        began = loop.time()
        short = await session.invitation(second.href, timeout=0.3)
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await short.result(timeout=5)
        assert loop.time() - began >= 0.25
        # Not an invitation: a typed error, nothing tracked.
        assert logs[0].href is not None
        with pytest.raises(ucwa_async.UcwaError, match="not an invitation"):
            await session.invitation(logs[0].href)
        assert session.pending_invitations == 0


# --- 5. resync re-reads: once per wave, bounded -------------------------------------------


async def test_endless_resync_with_many_pending_stays_bounded(
    make_session: SessionFactory, wire_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The channel's own pacing (tests/integration/test_hardening_channel.py) would slow
    # the resyncs to one every 0.5-2 s; switched off here, so the re-read waves alone
    # must bound the GETs under a resync on every poll.
    monkeypatch.setattr(
        channel_core, "PollPacer", functools.partial(channel_core.PollPacer, floor=0.0, cap=0.0)
    )
    count = 20
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitations = [await session.continue_messaging(logs[0]) for _ in range(count)]
        await until(lambda: all(inv.state == "Connecting" for inv in invitations))
        sim.clear_request_log()
        loop = asyncio.get_running_loop()
        most_tasks = 0
        began = loop.time()
        for _ in range(200):  # ~2 s of "resync" on every poll
            while sim.faults.armed.get("resync", 0) < 50:
                sim.faults.resync()
            most_tasks = max(most_tasks, len(asyncio.all_tasks()))
            await asyncio.sleep(0.01)
            if loop.time() - began >= 2.0:
                break
        elapsed = loop.time() - began
        sim.faults.clear()
        resyncs = sim.counters.faults_injected["resync"]
        gets = len(_requests(sim, "invitation", "GET"))
        assert resyncs >= 20, "the fault did not fire on poll after poll"
        # One read per invitation per wave, waves >= 1 s apart: three waves at most.
        assert count <= gets <= 3 * count, (gets, resyncs, elapsed)
        assert most_tasks < 50, most_tasks
        # Every invitation is still pending, and still ends once the server speaks.
        assert session.pending_invitations == count
        sim.release_held()
        results = await asyncio.gather(*(inv.result(timeout=8) for inv in invitations))
        assert {r.state for r in results} == {"Connected"}
        assert session.stats.invitations_connected == count


async def test_discarding_resync_during_a_read_reads_again(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The re-read GET has seen "Connecting" (its answer is late); the invitation then
    # completes and a second, discarding resync throws the completed event away. Only
    # one more read tells how it ended: the wave after the running one.
    config = SimulatorConfig(outcome_rule=_ringing, pget_timeout_cap=0.2)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        async with session.events() as stream:
            invitation = await session.continue_messaging(logs[0])
            await _connecting(invitation)
            sim.faults.latency(0.3, target="pget")
            sim.faults.late_answer(0.5, target="invitation")
            sim.faults.resync(discard_events=True)
            await until(lambda: sim.counters.faults_injected["late_answer"] == 1)
            # The next P-GET is in its latency: the completion waits for it, and the
            # resync it answers discards it.
            sim.release_held()
            sim.faults.resync(discard_events=True)
            assert (await invitation.result(timeout=8)).state == "Connected"
            sim.faults.clear()
            events = []
            while True:
                try:
                    events.append(await asyncio.wait_for(anext(stream), 0.3))
                except TimeoutError:
                    break
        completed = [e for e in events if isinstance(e, ucwa_async.Event) and e.type == "completed"]
        assert completed == []  # the completed event never reached the session
        assert sim.counters.faults_injected["resync"] == 2
        assert len(_requests(sim, "invitation", "GET")) >= 2
        assert session.stats.invitations_connected == 1


async def test_completion_during_a_resync_read_reads_once_more(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Link-only events: the Success event says nothing of the resource, so the session
    # must GET it; a resync read of that invitation is in flight already (late answer).
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        await until(lambda: session.stats.events_received >= 1)  # started: link only
        sim.faults.late_answer(0.4, target="invitation")
        sim.faults.resync()
        await until(lambda: sim.counters.faults_injected["late_answer"] == 1)
        sim.release_held()
        result = await invitation.result(timeout=5)
        assert isinstance(result, ucwa_async.MessagingInvitation)
        assert result.state == "Connected"
        assert invitation.state == "Connected"
        gets = _requests(sim, "invitation", "GET")
        assert [r.fault for r in gets] == ["late_answer", None]  # one after the other
        assert session.stats.invitations_connected == 1


# --- 6. cancel races ---------------------------------------------------------------------


async def test_concurrent_cancels_share_one_post(
    make_session: SessionFactory, wire_format: str
) -> None:
    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=_ringing)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_messaging(logs[0])
        await _connecting(invitation)
        sim.faults.latency(0.2, target="cancel")
        assert [invitation.cancel() for _ in range(3)] == [True, True, True]
        results = await asyncio.gather(*(invitation.cancel_outcome() for _ in range(3)))
        assert results == [True, True, True]
        assert len(_requests(sim, "cancel")) == 1
        with pytest.raises(asyncio.CancelledError):
            await invitation
        assert session.stats.invitations_cancelled == 1
        assert invitation.cancel() is False


@pytest.mark.parametrize("callers", [1, 2])
async def test_declined_while_the_cancel_is_in_flight_is_kept(
    make_session: SessionFactory, wire_format: str, callers: int
) -> None:
    # The callee declines while our cancel POST is held: the server's outcome stands.
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        return Outcome(success=False, reason=DECLINED, delay=0.4)

    async with (
        UcwaSimulator(SimulatorConfig(outcome_rule=rule)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitation = await session.continue_phone_audio(logs[0], PHONE)
        await _connecting(invitation)
        sim.faults.latency(0.8, target="cancel")
        assert [invitation.cancel() for _ in range(callers)] == [True] * callers
        results = await asyncio.gather(*(invitation.cancel_outcome() for _ in range(callers)))
        assert results == [False] * callers
        with pytest.raises(ucwa_async.InvitationFailedError) as info:
            await invitation
        assert info.value.reason is not None
        assert info.value.reason.subcode == "Declined"
        assert invitation.state == "Declined"
        assert len(_requests(sim, "cancel")) == 1
        assert sim.invitation_state(invitation.href or "") == "Declined"
        assert session.stats.invitations_failed == 1
        assert session.stats.invitations_cancelled == 0
        assert session.pending_invitations == 0


# --- rev13 audit -------------------------------------------------------------------------


async def test_a_lost_answer_whose_call_connected_while_named_returns_it(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The server's events embed nothing; the call connects at once (its started and
    # completed Success events come before the POST's answer is lost). The call reads
    # the unclaimed invitation, which names its operationId; its completion is then read
    # back ("success"). It raised the TransportError while that read was under way, and
    # the call the caller was told failed stayed connected, nobody holding it.
    config = SimulatorConfig(
        outcome_rule=lambda req, rng: Outcome(success=True, delay=0.02), embed_resources=False
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.3, drop=True)
        invitation = await session.continue_messaging(logs[0], "hello again")
        await invitation.wait(5)
        assert invitation.state == "Connected"
        assert invitation.href is not None
        assert invitation.href.endswith("/communication/invitations/1")
        assert _requests(sim, "cancel") == []
        assert _requests(sim, "stopMessaging") == []
        assert session.stats.invitations_started == 1
        assert session.stats.invitations_connected == 1
        assert session.stats.invitations_abandoned == 0
        assert session._ops._unanswered == {}


async def test_many_continues_whose_answers_are_lost_at_once_are_each_named(
    make_session: SessionFactory, wire_format: str
) -> None:
    # A connection drop loses the answers of 20 continue POSTs at once, on a server whose
    # events embed nothing: 20 unclaimed link-only invitations. Each call read the same
    # oldest 8 (MAX_LOOKUPS each, 160 GETs), so 12 never found theirs: they raised, and
    # their calls were left ringing on the server, watched by nothing that could name them.
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.late_answer(0.3, next_n=20, drop=True)
        calls = [
            asyncio.create_task(session.continue_phone_audio(logs[0], PHONE, timeout=30))
            for _ in range(20)
        ]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed == []
        assert len({r.href for r in results}) == 20  # type: ignore[union-attr]
        assert session.pending_invitations == 20
        # Each read once for the calls (it was up to 8 times), once by the conversations'
        # reader (is it an incoming invitation?).
        assert len(_requests(sim, "invitation", "GET")) <= 40
        assert session._ops._unanswered == {}


@pytest.mark.parametrize("lost", [True, False], ids=["answer lost", "caller gave up"])
async def test_a_call_nobody_holds_that_connected_first_is_left_with_link_only_events(
    make_session: SessionFactory, wire_format: str, lost: bool
) -> None:
    # As test_a_call_nobody_holds_that_connected_first_is_left, on a server whose events
    # embed nothing: the completed Success is read back ("success"), and while that read
    # ran the call was in no table the abandon looked at. Nobody left its conversation:
    # a call its caller was told failed (or gave up on) stayed connected.
    config = SimulatorConfig(
        outcome_rule=lambda req, rng: Outcome(success=True, delay=0.05), embed_resources=False
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        release = _hold_events(session)
        if lost:
            # Named after the grace: another call's read of the unclaimed invitations
            # names it (a retry with another operation_id, say, whose answer is lost too).
            sim.faults.late_answer(0.1, drop=True)
            with pytest.raises(ucwa_async.TransportError):
                async with asyncio.timeout(5):
                    await session.continue_messaging(logs[0], "hello again")
            await until(lambda: sim.counters.invitations_by_state == {"Connected": 1})
            release()
            sim.faults.late_answer(0.1, drop=True)
            second = await session.continue_messaging(logs[0], "hello again")
            await second.wait(5)
            await until(lambda: len(_requests(sim, "stopMessaging")) == 1)
        else:
            sim.faults.late_answer(0.4)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await session.continue_messaging(logs[0], "hello again")
            await until(lambda: sim.counters.invitations_by_state == {"Connected": 1})
            release()
            await until(lambda: len(_requests(sim, "stopMessaging")) == 1)
        assert session.stats.invitations_abandoned == 1


async def test_a_retry_of_a_lost_answer_joins_its_invitation_from_a_link_only_event(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # The server's events embed nothing, and they come after the first call's grace: the
    # retry with the call's operation_id must read the unclaimed invitation to know it
    # is the first POST's. It only waited for the channel to name it, which link-only
    # events cannot: it POSTed again, and the first call was left ringing, nobody
    # holding it (cancelled here only).
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(
            session, sim, session.continue_phone_audio(logs[0], PHONE, operation_id="order-12")
        )
        release()
        await until(lambda: session._ops._correlator.orphan_count > 0)
        retry = await asyncio.wait_for(
            session.continue_phone_audio(logs[0], PHONE, operation_id="order-12"), 5
        )
        assert retry.href is not None
        assert retry.href.endswith("/invitations/1")
        assert len(_requests(sim, "continue")) == 1
        assert sim.counters.invitations_created == 1
        assert session.stats.invitations_started == 1
        assert session.pending_invitations == 1
        assert retry.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})


# --- rev13 audit 2 -----------------------------------------------------------------------


def _orphan_invitations(session: ucwa_async.Session, count: int, read: bool = True) -> list[str]:
    """Feed ``count`` link-only started events of invitations that are not ours (as
    messagingInvitation_ref.md's sample: no embedded resource), and (``read``) mark them
    read already, for other operations: orphans no waiting call can claim."""
    ops = session._ops
    assert ops is not None
    assert ops._app.url is not None
    base = ops._app.url
    hrefs = [f"{base}/communication/phoneAudioInvitations/other-{i}" for i in range(count)]
    link = functools.partial(ucwa_async._core.models.Link, "phoneAudioInvitation")
    events = tuple(ucwa_async._core.models.Event("started", link(href)) for href in hrefs)
    before = ops._correlator.orphan_count
    ops.deliver(ucwa_async._core.models.EventBatch(events=events))
    for i, href in enumerate(hrefs):
        if read:
            ops._looked[href] = f"someone-else-{i}"
    assert ops._correlator.orphan_count == before + count
    return hrefs


async def test_many_calls_waiting_for_lost_answers_share_the_scan_of_unclaimed_events(
    make_session: SessionFactory, wire_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1000 continue POSTs lose their answers at once (the server never got them), while
    # the correlator holds 1000 link-only invitations of other people, all read already.
    # Each waiting call scanned every orphan event every _LOOKUP_STEP of its grace: 1000
    # calls x 40 steps x 1000 events, a loop saturated for the whole grace. The scan is
    # shared: its count does not grow with the number of waiting calls.
    from ucwa_async import _outcome

    monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
    calls = 1000
    async with UcwaSimulator() as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        ops = session._ops
        assert ops is not None
        _orphan_invitations(session, 1000)

        async def lost(url: str, body: Any) -> Any:
            raise ucwa_async.TransportError("connection reset")  # (may have reached it)

        monkeypatch.setattr(ops, "_post_continue", lost)
        scans = 0
        orphans = ops._correlator.orphans

        def counted(since: float | None = None) -> Any:
            nonlocal scans
            scans += 1
            return orphans(since)

        monkeypatch.setattr(ops._correlator, "orphans", counted)
        tasks = [
            asyncio.create_task(session.continue_phone_audio(logs[0], PHONE)) for _ in range(calls)
        ]
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        assert all(isinstance(r, ucwa_async.TransportError) for r in results)
        assert _requests(sim, "invitation", "GET") == []
        # One scan per step (and per change) for all of them: 0.2 s / 0.05 s, not 1000 x 4.
        assert scans <= 20, scans
        assert session.pending_invitations == 0


async def test_a_read_under_way_when_the_grace_ends_still_names_the_call(
    make_session: SessionFactory, wire_format: str, short_grace: None
) -> None:
    # Link-only events, and the GET of the unclaimed invitation is slower than what is
    # left of the grace: its answer (the call's own operationId) came after the grace,
    # and was thrown away with the cancelled read. The operation stays watched for that
    # (an invitation named later is cancelled on the server), but nothing read it again:
    # the call its caller was told failed went on ringing, nobody holding it.
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        sim.faults.latency(0.4, target="invitation")
        sim.faults.late_answer(0.05, drop=True)
        with pytest.raises(ucwa_async.TransportError):
            await asyncio.wait_for(session.continue_phone_audio(logs[0], PHONE), 5)
        assert sim.counters.invitations_by_state == {"Connecting": 1}
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert session.stats.invitations_abandoned == 1
        assert session.stats.invitations_started == 0
        assert session.pending_invitations == 0
        assert session._ops._unanswered == {}  # type: ignore[union-attr]


async def test_a_lost_answer_finds_its_invitation_behind_older_unclaimed_ones(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Link-only events: 8 unclaimed invitations came before the call (someone else's:
    # a link-only incoming invitation is one, and they stay a minute). The call read
    # the oldest first, spent its MAX_LOOKUPS on them, and never read its own, the
    # newest (its started event comes after its POST): it raised, and its call rang on.
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        _orphan_invitations(session, 8, read=False)
        sim.faults.late_answer(0.1, drop=True)
        invitation = await session.continue_phone_audio(logs[0], PHONE, timeout=30)
        assert invitation.href is not None
        assert invitation.href.endswith("/communication/invitations/1")
        assert session.stats.invitations_started == 1
        assert session.pending_invitations == 1
        assert invitation.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})


async def test_an_unclaimed_invitation_that_is_gone_is_read_once_for_all_the_calls(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Link-only events; an unclaimed invitation that is gone (404: it ended) came while
    # 4 continue POSTs that lose their answers at once were on their way. A failed read
    # was not remembered ("another call may read it again"), so each call read it again,
    # for a 404 that says the same to all: it spent a GET and one of each call's
    # MAX_LOOKUPS.
    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        release = _hold_events(session)  # the calls' own events come after it
        sim.faults.late_answer(0.3, next_n=4, drop=True)
        calls = [
            asyncio.create_task(session.continue_phone_audio(logs[0], PHONE, timeout=30))
            for _ in range(4)
        ]
        await asyncio.sleep(0.05)  # the POSTs are made (an older event is no candidate)
        (gone,) = _orphan_invitations(session, 1, read=False)
        release()
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        assert [r for r in results if isinstance(r, BaseException)] == []
        path = gone.split("://", 1)[-1]
        reads = [r for r in sim.request_log if r.method == "GET" and path.endswith(r.path)]
        assert len(reads) == 1, reads
        for invitation in results:
            assert invitation.cancel()  # type: ignore[union-attr]
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 4})


# --- rev14 audit -------------------------------------------------------------------------


@pytest.mark.parametrize("dedup", [True, False], ids=["409 on a duplicate", "second call"])
async def test_a_retry_whose_grace_ends_during_a_read_still_joins_the_call_it_names(
    make_session: SessionFactory, wire_format: str, short_grace: None, dedup: bool
) -> None:
    # Link-only events, and the retry's read of the unclaimed invitation (the first
    # POST's) is slower than the retry's grace. The retry forgot the watch when its grace
    # ended and POSTed again; the read then named the first invitation, but no watch was
    # left to act on it: the first call rang on, nobody holding it, and the retry raised
    # 409 AlreadyExists (a server that refuses a duplicate operationId) or made a second
    # call.
    config = SimulatorConfig(
        outcome_rule=_ringing, embed_resources=False, reject_duplicate_operation_id=dedup
    )
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        release = await _lose_the_answer(
            session, sim, session.continue_phone_audio(logs[0], PHONE, operation_id="order-14")
        )
        release()
        await until(lambda: session._ops._correlator.orphan_count > 0)  # type: ignore[union-attr]
        sim.faults.latency(0.4, target="invitation")  # the read outlasts the 0.2 s grace
        retry = await asyncio.wait_for(
            session.continue_phone_audio(logs[0], PHONE, operation_id="order-14"), 5
        )
        sim.faults.latency(0, target="invitation")
        assert retry.href is not None
        assert retry.href.endswith("/invitations/1")
        assert len(_requests(sim, "continue")) == 1
        assert sim.counters.invitations_created == 1
        assert session.stats.invitations_started == 1
        assert session.pending_invitations == 1
        assert retry.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
        assert session._ops._unanswered == {}  # type: ignore[union-attr]


async def test_a_lost_answer_finds_its_invitation_behind_unclaimed_ones_older_than_its_post(
    make_session: SessionFactory, wire_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An earlier continue lost its answer (the server never got it): its operationId
    # stays watched for a minute after its call raised. Then 8 link-only invitations of
    # other people come, then a second call loses its answer too. The scan kept what came
    # since the *oldest* watched POST was made, for every call: the second call read the
    # 8 older ones first, spent its MAX_LOOKUPS, and never read its own, the newest.
    from ucwa_async import _outcome

    config = SimulatorConfig(outcome_rule=_ringing, embed_resources=False)
    async with UcwaSimulator(config) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=1)
        ops = session._ops
        assert ops is not None
        post_continue = ops._post_continue

        async def lost(url: str, body: Any) -> Any:
            raise ucwa_async.TransportError("connection reset")  # (may have reached it)

        monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 0.2)
        monkeypatch.setattr(ops, "_post_continue", lost)
        with pytest.raises(ucwa_async.TransportError):
            await session.continue_phone_audio(logs[0], PHONE, operation_id="earlier")
        assert list(ops._unanswered) == ["earlier"]  # still watched
        monkeypatch.setattr(ops, "_post_continue", post_continue)
        monkeypatch.setattr(_outcome, "UNANSWERED_GRACE", 2.0)
        _orphan_invitations(session, 8, read=False)
        await asyncio.sleep(0.01)  # (the clock moves on: the next POST is made later)
        sim.faults.late_answer(0.1, drop=True)
        invitation = await asyncio.wait_for(
            session.continue_phone_audio(logs[0], PHONE, timeout=30), 5
        )
        assert invitation.href is not None
        assert invitation.href.endswith("/communication/invitations/1")
        assert session.stats.invitations_started == 1
        assert invitation.cancel()
        await until(lambda: sim.counters.invitations_by_state == {"Failed": 1})
