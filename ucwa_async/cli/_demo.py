"""``ucwa-async demo``: the embedded simulator, one session, N continues in total.

``--count N`` invitations in all, alternately by IM and by phone audio (IM gets the odd
one).

The operations start in a steady trickle (so the live view has something to show)
and end after a random, seeded delay; ``--fail-rate`` of them are declined by the
simulated peer. With ``--faults`` the simulator answers continue POSTs with
``500 ServiceFailure/CallbackChannelError`` and drops long polls at three moments, and
the demo prints the session's ``ChannelReconnecting`` / ``ChannelReconnected`` signals
as they arrive.

Exit status: 0 when every invitation ended with an outcome (connected, or failed for
a reason the server gave); 1 when one ended with an error (timeout, lost, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any

import ucwa_async
from ucwa_async.cli._console import OK, PROBLEM
from ucwa_async.cli._progress import (
    ProgressView,
    Tally,
    channel_table,
    make_console,
    summary_table,
)
from ucwa_async.testing import (
    DECLINED,
    InvitationRequest,
    Outcome,
    SimulatorConfig,
    UcwaSimulator,
)

_SPREAD = 1.5
"""Seconds over which the operations are started (at most)."""
_DELAY = (0.1, 0.6)
"""Range of the simulated time from ``started`` to ``completed``."""


def _outcome_rule(fail_rate: float) -> Callable[[InvitationRequest, random.Random], Outcome]:
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        delay = rng.uniform(*_DELAY)
        if rng.random() < fail_rate:
            return Outcome(success=False, reason=DECLINED, delay=delay, updated=True)
        return Outcome(success=True, delay=delay, updated=True)

    return rule


def _fault_plan(sim: UcwaSimulator, count: int) -> dict[int, tuple[str, Callable[[], None]]]:
    """Before operation ``i`` starts: what to arm, and how to say it."""
    return {
        0: (
            "fault: the next continue POST gets 500 ServiceFailure/CallbackChannelError",
            lambda: sim.faults.callback_channel_error(next_n=1),
        ),
        max(count // 3, 1): (
            "fault: the next long poll (P-GET) is dropped mid-poll",
            # aiohttp re-sends a dropped idempotent GET once by itself: drop two.
            lambda: sim.faults.drop_pget(next_n=2),
        ),
        max(2 * count // 3, 2): (
            "fault: the next 2 continue POSTs get 500 ServiceFailure/CallbackChannelError",
            lambda: sim.faults.callback_channel_error(next_n=2),
        ),
    }


async def run_demo(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        outcome_rule=_outcome_rule(args.fail_rate),
        conversation_logs=min(max(args.count, 2), 20),
    )
    console = make_console()
    tally = Tally(total=args.count)
    by_im, by_phone = _split(args.count)
    async with UcwaSimulator(config=config, seed=args.seed) as sim:
        view = ProgressView(tally, console)
        console.print(
            f"UCWA simulator at {sim.discovery_url}; signing in as {sim.username} "
            f"(wire format {args.wire})",
            soft_wrap=True,
        )
        async with ucwa_async.Session(
            sim.discovery_url,
            auth=ucwa_async.PasswordAuth(sim.username, sim.password),
            wire_format=args.wire,
            invitation_timeout=args.timeout,
        ) as session:
            logs = await session.conversation_logs(limit=20)
            console.print(
                f"{len(logs)} conversation logs; continuing {by_im} by IM and "
                f"{by_phone} by phone audio, concurrently",
                soft_wrap=True,
            )
            plan = _fault_plan(sim, args.count) if args.faults else {}
            async with session.events() as events:
                watcher = asyncio.create_task(_watch(events, tally, view), name="demo-watch")
                try:
                    with view:
                        await _run_all(session, logs, args.count, tally, view, plan)
                finally:
                    events.close()
                    await watcher
                dropped = events.dropped
            post_retries = session.stats.callback_channel_retries
        faults_fired = dict(sim.counters.faults_injected)
        by_state = dict(sim.counters.invitations_by_state)

    console.print(summary_table(tally, wire=args.wire))
    for reason, n in sorted(tally.reasons.items()):
        console.print(f"  {n} x {reason}", soft_wrap=True)
    console.print(
        channel_table(tally, post_retries=post_retries, faults_fired=faults_fired, dropped=dropped)
    )
    states = ", ".join(f"{k} {v}" for k, v in sorted(by_state.items()))
    console.print(f"invitations on the server by final state: {states}", soft_wrap=True)
    ok = tally.count("error") == 0 and tally.ended == tally.total
    if ok:
        console.print(
            f"all {tally.total} invitations ended: {tally.count('connected')} connected, "
            f"{tally.count('failed')} failed",
            style=OK,
            soft_wrap=True,
        )
        return 0
    console.print(
        f"{tally.count('error')} of {tally.total} invitations ended with an error",
        style=PROBLEM,
        soft_wrap=True,
    )
    return 1


async def _run_all(
    session: ucwa_async.Session,
    logs: list[ucwa_async.ConversationLog],
    count: int,
    tally: Tally,
    view: ProgressView,
    plan: dict[int, tuple[str, Callable[[], None]]],
) -> None:
    gap = min(_SPREAD / count, 0.05)
    async with asyncio.TaskGroup() as group:
        for i in range(count):
            if i in plan:
                text, arm = plan[i]
                arm()
                view.note(text)
            log = logs[(i // 2) % len(logs)]
            if i % 2 == 0:  # alternately: IM, phone audio, IM...
                start = functools.partial(
                    session.continue_messaging, log, message=f"Following up #{i}"
                )
                group.create_task(_one(start, "messaging", tally, view))
            else:
                call = functools.partial(
                    session.continue_phone_audio,
                    log,
                    phone_number=f"tel:+1425555{i % 10000:04d}",
                )
                group.create_task(_one(call, "phoneAudio", tally, view))
            await asyncio.sleep(gap)


def _split(count: int) -> tuple[int, int]:
    """``--count`` invitations in total: how many by IM and by phone audio."""
    return (count + 1) // 2, count // 2


async def _one(
    start: Callable[[], Awaitable[ucwa_async.Invitation[Any]]],
    modality: str,
    tally: Tally,
    view: ProgressView,
) -> None:
    accepted = False
    try:
        invitation = await start()
        accepted = True
        tally.accepted()
        view.changed()
        await invitation
    except ucwa_async.InvitationFailedError as exc:
        parts = (getattr(exc.reason, "code", None), getattr(exc.reason, "subcode", None))
        label = "/".join(str(p) for p in parts if p)
        tally.record(modality, "failed", label or "no reason given", was_accepted=accepted)
    except ucwa_async.UcwaError as exc:
        tally.record(modality, "error", type(exc).__name__, was_accepted=accepted)
        view.note(f"{modality}: {type(exc).__name__}: {exc}", style=PROBLEM)
    else:
        tally.record(modality, "connected", was_accepted=accepted)
    view.changed()


async def _watch(events: ucwa_async.EventStream, tally: Tally, view: ProgressView) -> None:
    async for event in events:
        if isinstance(event, ucwa_async.ChannelReconnecting):
            tally.reconnecting += 1
            tally.channel = "reconnecting"
            view.note(f"channel reconnecting: {event.reason}")
        elif isinstance(event, ucwa_async.ChannelReconnected):
            tally.reconnected += 1
            tally.channel = "connected"
            view.note(
                f"channel reconnected after {event.attempts} attempt(s), "
                f"{event.downtime * 1000:.0f} ms down",
                style=OK,
            )
        elif isinstance(event, ucwa_async.ApplicationRecreated):
            view.note(
                f"application re-created; {event.lost_invitations} invitation(s) lost with it"
            )
        elif isinstance(event, ucwa_async.ChannelFailed):
            tally.channel = "failed"
            view.note(f"channel failed: {event.error}", style=PROBLEM)
