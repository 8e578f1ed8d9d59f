"""CallbackChannelError on a continue POST: reconnect the channel, then retry the POST
with the same operationId; never a lost or doubled invitation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import (
    InvitationRequest,
    Outcome,
    Reason,
    SimulatorConfig,
    UcwaSimulator,
)

from ._support import BOTH_SHAPES, EVENT_SHAPES, SessionFactory

PHONE = "tel:+14255551234"


class Witness:
    """Records, on the simulator side, every continue POST that passed validation
    (``conflict_rule``: called before the channel check) and every invitation created
    (``outcome_rule``)."""

    def __init__(self, outcome: Outcome | None = None) -> None:
        self.attempts: list[str] = []
        self.created: list[InvitationRequest] = []
        self._outcome = outcome or Outcome(success=True, delay=0.02)

    def conflict_rule(self, request: InvitationRequest) -> Reason | None:
        self.attempts.append(request.operation_id)
        return None

    def outcome_rule(self, request: InvitationRequest, rng: random.Random) -> Outcome:
        self.created.append(request)
        return self._outcome

    def config(self, **overrides: Any) -> SimulatorConfig:
        return SimulatorConfig(
            conflict_rule=self.conflict_rule, outcome_rule=self.outcome_rule, **overrides
        )


class StateSampler:
    """Samples ``session.channel_state`` on every loop iteration (bounded), keeping changes."""

    def __init__(self, session: ucwa_async.Session) -> None:
        self.session = session
        self.states: list[str] = [session.channel_state.value]

    async def run(self) -> None:
        for _ in range(200_000):
            state = self.session.channel_state.value
            if state != self.states[-1]:
                self.states.append(state)
            await asyncio.sleep(0)


@asynccontextmanager
async def sampling(session: ucwa_async.Session) -> AsyncIterator[StateSampler]:
    sampler = StateSampler(session)
    task = asyncio.create_task(sampler.run())
    try:
        yield sampler
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _signals(stream: ucwa_async.EventStream, until: type, limit: float = 5.0) -> list[Any]:
    """Channel signals from ``stream`` up to and including the first ``until`` (bounded)."""
    got: list[Any] = []
    async with asyncio.timeout(limit):
        async for item in stream:
            if isinstance(item, ucwa_async.Event):
                continue
            got.append(item)
            if isinstance(item, until):
                return got
    raise AssertionError(f"stream ended before {until.__name__}: {got}")


@pytest.mark.parametrize(
    ("failures", "shape"),
    [(1, "embedded"), (2, "embedded"), (3, "embedded"), (1, "link-only-absolute")],
)
async def test_callback_channel_error_reconnects_and_retries_same_operation_id(
    make_session: SessionFactory, wire_format: str, failures: int, shape: str
) -> None:
    witness = Witness()
    async with (
        UcwaSimulator(witness.config(**EVENT_SHAPES[shape])) as sim,
        make_session(sim, max_callback_retries=3) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        pgets_before = sim.counters.pgets
        sim.faults.callback_channel_error(next_n=failures)
        async with session.events() as stream, sampling(session) as sampler:
            invitation = await session.continue_messaging(logs[0], message="retry me")
            signals = await _signals(stream, ucwa_async.ChannelReconnected)
        # the signals, in order: reconnecting (with the reason) then reconnected
        assert isinstance(signals[0], ucwa_async.ChannelReconnecting)
        assert "CallbackChannelError" in signals[0].reason
        assert isinstance(signals[0].error, ucwa_async.CallbackChannelError)
        assert isinstance(signals[-1], ucwa_async.ChannelReconnected)
        assert signals[-1].attempts >= 1
        assert signals[-1].downtime >= 0
        # channel_state went through "reconnecting" and came back
        assert "reconnecting" in sampler.states
        assert sampler.states[-1] == "connected"
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        # the held P-GET was abandoned (the server saw the client go: 499) and a fresh
        # one started on the same events URL
        assert sim.counters.pgets > pgets_before
        for _ in range(100):
            if any(r.kind == "pget" and r.status == 499 for r in sim.request_log):
                break
            await asyncio.sleep(0.01)
        abandoned = [r for r in sim.request_log if r.kind == "pget" and r.status == 499]
        assert abandoned
        # the POST was retried with the same operationId; exactly one invitation exists
        statuses = [r.status for r in sim.request_log if r.kind == "continue"]
        assert statuses == [500] * failures + [201]
        assert witness.attempts == [invitation.operation_id] * (failures + 1)
        assert [r.operation_id for r in witness.created] == [invitation.operation_id]
        assert sim.counters.invitations_created == 1
        assert sim.counters.callback_channel_errors == failures
        assert session.stats.callback_channel_retries == failures
        result = await invitation.result(timeout=8)
        assert result.state == "Connected"
        assert result.operation_id == invitation.operation_id
        assert session.stats.invitations_started == 1
        assert session.stats.invitations_connected == 1


@pytest.mark.parametrize("retries", [0, 1, 2])
async def test_callback_channel_error_beyond_the_retries_reaches_the_caller(
    make_session: SessionFactory, wire_format: str, retries: int
) -> None:
    witness = Witness()
    async with (
        UcwaSimulator(witness.config()) as sim,
        make_session(sim, max_callback_retries=retries) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        sim.faults.callback_channel_error(next_n=retries + 1)
        with pytest.raises(ucwa_async.CallbackChannelError) as info:
            await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert isinstance(info.value, ucwa_async.ServiceFailureError)
        assert info.value.status == 500
        assert info.value.subcode == "CallbackChannelError"
        # nothing created, nothing left pending, no operationId reused
        assert sim.counters.invitations_created == 0
        assert witness.created == []
        assert len(witness.attempts) == retries + 1
        assert len(set(witness.attempts)) == 1
        assert session.pending_invitations == 0
        assert session.stats.invitations_started == 0
        assert session.stats.callback_channel_retries == retries
        # the session recovered: the next continue works
        await session.wait_connected(timeout=5)
        invitation = await session.continue_phone_audio(logs[0], phone_number=PHONE)
        assert (await invitation.result(timeout=8)).state == "Connected"
        assert sim.counters.invitations_created == 1
        assert len(witness.created) == 1
        assert witness.created[0].operation_id == invitation.operation_id
        assert witness.created[0].operation_id != witness.attempts[0]


async def test_burst_of_callback_channel_errors_causes_one_reconnect(
    make_session: SessionFactory, wire_format: str
) -> None:
    count = 12
    witness = Witness()
    async with UcwaSimulator(witness.config()) as sim, make_session(sim) as session:
        logs = await session.conversation_logs(limit=2)
        sim.faults.callback_channel_error(next_n=count)
        async with session.events() as stream:
            invitations = await asyncio.gather(
                *(
                    session.continue_messaging(logs[i % 2], message=f"burst {i}")
                    for i in range(count)
                )
            )
            results = await asyncio.gather(*(inv.result(timeout=8) for inv in invitations))
            signals = await _signals(stream, ucwa_async.ChannelReconnected)
        assert all(r.state == "Connected" for r in results)
        reconnecting = [s for s in signals if isinstance(s, ucwa_async.ChannelReconnecting)]
        assert len(reconnecting) == 1  # one reconnect for the whole burst, not twelve
        assert sim.counters.callback_channel_errors == count
        assert sim.counters.invitations_created == count
        created = sorted(r.operation_id for r in witness.created)
        assert created == sorted(inv.operation_id for inv in invitations)
        assert len(set(created)) == count
        # each operationId was tried exactly twice: once refused, once accepted
        assert sorted(witness.attempts) == sorted(created * 2)


@BOTH_SHAPES
async def test_callback_channel_error_with_an_invitation_pending(
    make_session: SessionFactory, wire_format: str, shape: str
) -> None:
    # An invitation already bound must survive the forced reconnect of another POST.
    witness = Witness(Outcome(success=True, delay=0.4))
    async with (
        UcwaSimulator(witness.config(**EVENT_SHAPES[shape])) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        first = await session.continue_messaging(logs[0], message="first")
        sim.faults.callback_channel_error(next_n=2)
        second = await session.continue_messaging(logs[0], message="second")
        results = await asyncio.gather(first.result(timeout=8), second.result(timeout=8))
        assert [r.operation_id for r in results] == [first.operation_id, second.operation_id]
        assert sim.counters.invitations_created == 2
        assert sim.counters.invitations_by_state == {"Connected": 2}
        assert session.stats.invitations_connected == 2
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED


async def test_the_server_really_needs_the_channel(
    make_session: SessionFactory, wire_format: str
) -> None:
    # Not injected: with no P-GET for longer than the grace period the simulator
    # answers CallbackChannelError by itself. Stall the P-GETs with latency, and the
    # session must still get its POST through once the channel is back.
    witness = Witness()
    config = witness.config(channel_grace=0.05, pget_timeout_cap=0.2)
    # Each retry of the POST waits for a P-GET held reconnect_settle: the default 0.1 s
    # (not the fixtures' 0.05 s) keeps the retries going until the 0.4 s stall is over.
    async with UcwaSimulator(config) as sim, make_session(sim, reconnect_settle=0.1) as session:
        logs = await session.conversation_logs(limit=1)
        await asyncio.sleep(0.3)
        sim.faults.latency(0.4, target="pget")
        await asyncio.sleep(0.3)  # the held P-GET ended; the next one is stalled
        task = asyncio.create_task(session.continue_messaging(logs[0], message="late"))
        await asyncio.sleep(0.1)
        sim.faults.latency(0, target="pget")
        invitation = await asyncio.wait_for(task, 8)
        assert (await invitation.result(timeout=8)).state == "Connected"
        # the server refused at least once on its own (nothing was injected)
        assert sim.counters.callback_channel_errors >= 1
        assert sim.counters.faults_injected["callback_channel_error"] == 0
        assert session.stats.callback_channel_retries >= 1
        assert sim.counters.invitations_created == 1
        assert len(witness.attempts) >= 2
        assert len(set(witness.attempts)) == 1
        assert witness.created[0].operation_id == invitation.operation_id
