"""The event loop keeps breathing while the channel processes big batches (issue 13).

A 1 ms heartbeat task measures how late the loop lets it run while (a) one batch of
60 000 events is decoded, parsed and dispatched, and (b) held invitations are released
in 500-event batches; their futures must resolve while their batch is still being
processed, not after it. A regression to batch-at-once processing froze the loop for
3-4 s (60 000 events) and resolved every future of a batch after its last event.

Bounds are loose on purpose (4 xdist workers on 2 busy cores); ``python -m benchmarks``
measures the same on a quiet machine (p99 and max lateness in BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import random

from ucwa_async.testing import InvitationRequest, Outcome, SimulatorConfig, UcwaSimulator

from ._support import SessionFactory, heartbeat, until

# A stall is CPU time of the loop's thread between two beats (Heartbeat.max_busy); the
# wall-clock lateness gets a loose bound.
MAX_STALL = 0.2  # seconds; measured on a quiet machine: ~10 ms
MAX_LATENESS = 2.0


async def test_a_giant_batch_does_not_hold_the_loop(
    make_session: SessionFactory, wire_format: str
) -> None:
    count = 60_000
    async with (
        UcwaSimulator(SimulatorConfig(completion_delay=0.01)) as sim,
        make_session(sim) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        received = session.stats.events_received
        sim.faults.giant_batch(count)
        async with heartbeat(0.001) as beat:
            # The held P-GET takes the fault once it is answered: an invitation ends it.
            invitation = await session.continue_messaging(logs[0], message="wake")
            await until(lambda: session.stats.events_received >= received + count, 60)
        assert (await invitation.wait(timeout=8)).state == "Connected"
    assert beat.max_busy <= MAX_STALL, f"the loop stalled {beat.max_busy * 1000:.0f} ms"
    assert beat.max_late <= MAX_LATENESS, f"a beat was {beat.max_late * 1000:.0f} ms late"
    assert beat.beats > 10


def _hold(_request: InvitationRequest, _rng: random.Random) -> Outcome:
    return Outcome(complete=False)


async def test_futures_resolve_while_their_batch_is_processed(
    make_session: SessionFactory, wire_format: str
) -> None:
    total = 600  # one 500-event batch and one of 100
    config = SimulatorConfig(outcome_rule=_hold, max_events_per_batch=500)
    async with (
        UcwaSimulator(config) as sim,
        make_session(sim, invitation_timeout=120.0) as session,
    ):
        logs = await session.conversation_logs(limit=1)
        invitations = await asyncio.gather(
            *(session.continue_messaging(logs[0], message=str(n)) for n in range(total))
        )
        await until(lambda: session.pending_invitations == total, 60)
        await until(lambda: session.stats.events_received >= total, 60)
        received = session.stats.events_received
        seen_at_first: list[int] = []
        invitations[0].add_done_callback(
            lambda _f: seen_at_first.append(session.stats.events_received - received)
        )
        async with heartbeat(0.001) as beat:
            assert sim.release_held() == total
            await asyncio.wait_for(asyncio.gather(*invitations), 60)
    # The first invitation's callback ran while its batch (500 completed events) was
    # still being dispatched: a batch handed over at once would have counted all 500.
    assert seen_at_first
    assert seen_at_first[0] < 500, seen_at_first
    assert beat.max_busy <= MAX_STALL, f"the loop stalled {beat.max_busy * 1000:.0f} ms"
    assert beat.max_late <= MAX_LATENESS, f"a beat was {beat.max_late * 1000:.0f} ms late"
