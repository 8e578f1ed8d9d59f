"""Invitation lifecycle (started -> optional updated -> completed) and its rendering.

Timers are loop ``call_later`` handles, not tasks: thousands of invitations per
second cost a heap entry each, and stopping the simulator just cancels them.
"""

from __future__ import annotations

import asyncio

from ucwa_async.testing import _conversations
from ucwa_async.testing._channel import ChannelEvent, SimEvent
from ucwa_async.testing._config import (
    CANCELLED,
    HrefStyle,
    InvitationRequest,
    Outcome,
    SimulatorConfig,
)
from ucwa_async.testing._render import Ev, Res
from ucwa_async.testing._state import Invitation, World
from ucwa_async.testing._urls import styled

__all__ = ["cancel", "decide", "event_view", "invitation_res", "start"]

_FINAL_FAILED = "Failed"


def decide(config: SimulatorConfig, request: InvitationRequest, world: World) -> Outcome:
    if config.outcome_rule is not None:
        return config.outcome_rule(request, world.rng)
    fail = config.fail_rate > 0 and world.rng.random() < config.fail_rate
    return Outcome(
        success=not fail,
        reason=world.rng.choice(config.failure_reasons) if fail else None,
        delay=config.completion_delay,
        updated=config.send_updated,
    )


def _set_state(world: World, inv: Invitation, state: str) -> None:
    by_state = world.counters.invitations_by_state
    by_state[inv.state] -= 1
    if not by_state[inv.state]:
        del by_state[inv.state]  # keep the Counter to states that have invitations
    by_state[state] += 1
    inv.state = state


def _emit(world: World, inv: Invitation, events: list[ChannelEvent]) -> None:
    if inv.app.id not in world.apps:
        return
    world.counters.events_emitted += len(events)
    inv.app.channel.push(events)


def _finish(world: World, inv: Invitation, outcome: Outcome) -> list[ChannelEvent]:
    """The ``completed`` event, after the conversation's own events (if any)."""
    if outcome.success:
        _set_state(world, inv, "Connected")
    else:
        inv.reason = outcome.reason
        declined = outcome.reason is not None and outcome.reason.subcode == "Declined"
        _set_state(world, inv, "Declined" if declined else _FINAL_FAILED)
    events: list[ChannelEvent] = []
    conv = inv.app.conversations.get(str(inv.number))
    if conv is not None and not conv.deleted:
        events.extend(_conversations.continued_outcome(world, conv, outcome.success))
    events.append(SimEvent("completed", inv, inv.state))
    return events


def start(world: World, inv: Invitation, outcome: Outcome) -> None:
    """Emit ``started`` and schedule the rest of the invitation's life."""
    started = SimEvent("started", inv, "Connecting")
    if not outcome.complete:
        _emit(world, inv, [started])
        return
    if outcome.delay <= 0 and not outcome.updated:
        # Zero delay: both in one push, so one batch carries the whole life (fast path).
        _emit(world, inv, [started, *_finish(world, inv, outcome)])
        return
    _emit(world, inv, [started])
    loop = asyncio.get_running_loop()
    if outcome.updated:
        inv.timers.append(loop.call_later(outcome.delay / 2, _updated, world, inv))
    inv.timers.append(loop.call_later(max(outcome.delay, 0.0), _complete, world, inv, outcome))


def _updated(world: World, inv: Invitation) -> None:
    if inv.state == "Connecting" and not world.closing:
        _emit(world, inv, [SimEvent("updated", inv, inv.state)])


def _complete(world: World, inv: Invitation, outcome: Outcome) -> None:
    inv.timers.clear()
    if inv.state == "Connecting" and not world.closing:
        _emit(world, inv, _finish(world, inv, outcome))


def release_held(world: World, outcome: Outcome) -> int:
    """End every Connecting invitation with ``outcome``: one push per application."""
    released = 0
    for app in list(world.apps.values()):
        held = [inv for inv in app.invitations.values() if inv.state == "Connecting"]
        if not held:
            continue
        for inv in held:
            inv.cancel_timers()
        events = [e for inv in held for e in _finish(world, inv, outcome)]
        world.counters.events_emitted += len(events)
        app.channel.push(events)
        released += len(held)
    return released


def cancel(world: World, inv: Invitation) -> bool:
    """Terminate a Connecting invitation (completed/Failure, reason Cancelled)."""
    if inv.state != "Connecting":
        return False
    inv.cancel_timers()
    _emit(world, inv, _finish(world, inv, Outcome(success=False, reason=CANCELLED)))
    return True


def invitation_res(inv: Invitation, state: str, style: HrefStyle, origin: str) -> Res:
    def href(path: str) -> str:
        return styled(path, style, origin)

    conversation = inv.conversation_path
    links: list[tuple[str, str]] = []
    if state == "Connecting":
        links.append(("cancel", href(inv.path + "/cancel")))
    modality = "messaging" if inv.rel == "messagingInvitation" else "phoneAudio"
    links += [
        ("conversation", href(conversation)),
        (modality, href(f"{conversation}/{modality}")),
        ("from", href(f"{conversation}/participants/me")),
    ]
    req = inv.request
    props: dict[str, object] = {
        "direction": "Outgoing",
        "importance": "Normal",
        "operationId": req.operation_id,
        "state": state,
        "subject": inv.log.subject,
        "threadId": inv.log.thread_id,
        "to": inv.log.recipients[0][1] if inv.log.recipients else None,
    }
    if req.phone_number is not None:
        props["phoneNumber"] = req.phone_number
    return Res(inv.rel, href(inv.path), links, props)


def event_view(event: SimEvent, style: HrefStyle, origin: str, embed: bool) -> Ev:
    inv = event.invitation
    ev = Ev(
        type=event.type,
        rel=inv.rel,
        href=styled(inv.path, style, origin),
        in_link=("conversation", styled(inv.conversation_path, style, origin)),
    )
    if event.type == "completed":
        ev.status = "Success" if event.state == "Connected" else "Failure"
        if ev.status == "Failure":
            ev.reason = inv.reason
    if embed:
        ev.resource = invitation_res(inv, event.state, style, origin)
    return ev
