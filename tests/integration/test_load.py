"""Load: 1 000 concurrent continue_* calls on one session all end exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import ucwa_async
from ucwa_async.testing import DECLINED, InvitationRequest, Outcome, SimulatorConfig, UcwaSimulator

from ._support import SessionFactory

COUNT = 1000
PHONE = "tel:+14255551234"


def _outcome(request: InvitationRequest, rng: random.Random) -> Outcome:
    # deterministic by invitation number: every fifth fails, spread over 0..50 ms
    delay = (request.number % 6) * 0.01
    if request.number % 5 == 0:
        return Outcome(success=False, reason=DECLINED, delay=delay)
    return Outcome(success=True, delay=delay, updated=request.number % 7 == 0)


async def test_thousand_concurrent_invitations_end_exactly_once(
    make_session: SessionFactory, wire_format: str, no_leftover_tasks: Callable[[], None]
) -> None:
    config = SimulatorConfig(outcome_rule=_outcome, conversation_logs=4)
    loop = asyncio.get_running_loop()
    async with UcwaSimulator(config) as sim, make_session(sim, invitation_timeout=12.0) as session:
        logs = await session.conversation_logs()
        started = loop.time()

        def start(i: int) -> Any:
            log = logs[i % len(logs)]
            if i % 2:
                return session.continue_phone_audio(log, phone_number=PHONE)
            return session.continue_messaging(log, message=f"load {i}")

        invitations: list[ucwa_async.Invitation[Any]] = list(
            await asyncio.gather(*(start(i) for i in range(COUNT)))
        )
        outcomes = await asyncio.gather(
            *(inv.result(timeout=12) for inv in invitations), return_exceptions=True
        )
        elapsed = loop.time() - started
        await asyncio.sleep(0.1)  # any late or duplicate event has arrived by now
        connected = [o for o in outcomes if isinstance(o, ucwa_async.Resource)]
        failed = [o for o in outcomes if isinstance(o, ucwa_async.InvitationFailedError)]
        others = [o for o in outcomes if o not in connected and o not in failed]
        assert others == []
        assert len(connected) == COUNT * 4 // 5
        assert len(failed) == COUNT // 5
        # half of each kind, each ending with its own resource
        messaging = [o for o in connected if isinstance(o, ucwa_async.MessagingInvitation)]
        phone = [o for o in connected if isinstance(o, ucwa_async.PhoneAudioInvitation)]
        assert len(messaging) + len(phone) == len(connected)
        assert abs(len(messaging) - len(phone)) <= COUNT // 10
        for invitation, outcome in zip(invitations, outcomes, strict=True):
            assert invitation.done()
            if isinstance(outcome, ucwa_async.Resource):
                assert getattr(outcome, "operation_id", None) == invitation.operation_id
        assert len({inv.operation_id for inv in invitations}) == COUNT
        assert len({inv.href for inv in invitations}) == COUNT
        # exactly once, from both sides
        stats = session.stats
        assert stats.invitations_started == COUNT
        assert stats.invitations_connected == len(connected)
        assert stats.invitations_failed == len(failed)
        assert stats.invitations_timed_out == stats.invitations_lost == 0
        assert session.pending_invitations == 0
        assert sim.counters.invitations_created == COUNT
        assert sim.counters.invitations_by_state == {
            "Connected": COUNT * 4 // 5,
            "Declined": COUNT // 5,
        }
        assert elapsed < 12.0
        # the simulator refuses a few POSTs on its own under this load; every
        # refusal was retried, none reached the caller
        assert stats.callback_channel_retries == sim.counters.callback_channel_errors
    no_leftover_tasks()


async def test_thousand_concurrent_invitations_under_faults(
    make_session: SessionFactory, wire_format: str
) -> None:
    # The same load while the channel misbehaves: CallbackChannelErrors on POSTs,
    # duplicated and reordered batches, a dropped poll. Still each ends exactly once.
    attempts: list[str] = []

    def witness(request: InvitationRequest) -> None:
        attempts.append(request.operation_id)

    config = SimulatorConfig(outcome_rule=_outcome, conversation_logs=4, conflict_rule=witness)
    async with UcwaSimulator(config) as sim, make_session(sim, invitation_timeout=12.0) as session:
        logs = await session.conversation_logs()
        sim.faults.callback_channel_error(next_n=25)
        sim.faults.duplicate_events(next_n=10)
        sim.faults.reorder_events(next_n=10)
        sim.faults.drop_pget(next_n=2)

        def start(i: int) -> Any:
            log = logs[i % len(logs)]
            if i % 2:
                return session.continue_phone_audio(log, phone_number=PHONE)
            return session.continue_messaging(log, message=f"load {i}")

        invitations: list[ucwa_async.Invitation[Any]] = list(
            await asyncio.gather(*(start(i) for i in range(COUNT)))
        )
        outcomes = await asyncio.gather(
            *(inv.result(timeout=12) for inv in invitations), return_exceptions=True
        )
        await asyncio.sleep(0.2)
        kinds = [type(o).__name__ for o in outcomes]
        connected = sum(isinstance(o, ucwa_async.Resource) for o in outcomes)
        failed = sum(isinstance(o, ucwa_async.InvitationFailedError) for o in outcomes)
        assert connected + failed == COUNT, sorted(set(kinds))
        assert sim.counters.faults_injected["callback_channel_error"] == 25
        assert sim.counters.faults_injected["duplicate_events"] >= 1
        assert sim.counters.invitations_created == COUNT
        assert sum(sim.counters.invitations_by_state.values()) == COUNT
        assert sim.counters.invitations_by_state["Connected"] == connected
        stats = session.stats
        assert stats.invitations_started == COUNT
        assert stats.invitations_connected == connected
        assert stats.invitations_failed == failed
        assert session.pending_invitations == 0
        # the refused POSTs were retried under their own operationId, never a new one
        # (the simulator also refuses a few on its own under load: every refusal counts)
        refused = sim.counters.callback_channel_errors
        assert refused >= 25
        assert stats.callback_channel_retries == refused
        assert len(attempts) == COUNT + refused
        assert set(attempts) == {inv.operation_id for inv in invitations}
