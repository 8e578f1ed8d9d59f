"""``ucwa-async demo``: the embedded simulator, one session, N continues in total.

``--count N`` invitations in all, alternately by IM and by phone audio (IM gets the odd
one).

The operations start in a steady trickle (so the live view has something to show)
and end after a random, seeded delay; ``--fail-rate`` of them are declined by the
simulated peer. Traffic goes both ways: each connected IM conversation gets a follow-up
message (``set_typing``, then ``Conversation.send``), the demo reads the simulated
person's replies (``Conversation.messages()``) and leaves; connected phone calls are
hung up (``Conversation.hang_up()``); and with each IM continue an IM from a simulated
colleague is injected into the simulator, accepted from ``session.incoming()`` by an
echo handler that answers it and leaves. With ``--faults`` the simulator answers
continue POSTs with ``500 ServiceFailure/CallbackChannelError``, drops long polls and
fails the delivery of one message, and the demo prints the session's
``ChannelReconnecting`` / ``ChannelReconnected`` signals as they arrive.

Exit status: 0 when every invitation ended with an outcome (connected, or failed for
a reason the server gave) and every incoming IM was answered; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.table import Table

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
    Behaviour,
    InvitationRequest,
    Outcome,
    Person,
    SimulatorConfig,
    UcwaSimulator,
)

_SPREAD = 1.5
"""Seconds over which the operations are started (at most)."""
_DELAY = (0.1, 0.6)
"""Range of the simulated time from ``started`` to ``completed``."""
_REPLY_WAIT = 10.0
"""Seconds a conversation waits for the simulated person's reply to its follow-up."""
_ON_THE_LINE = 0.2
"""Seconds a connected demo phone call stays up before it is hung up."""
_ANSWER_WAIT = 30.0
"""Seconds the echo handler has, after the continues, to answer the incoming IMs."""
COLLEAGUE = Person(uri="sip:chris@contoso.com", name="Chris Green", behaviour=Behaviour.silent())
"""Who sends the demo's incoming IMs (silent: the echo handler's answer ends the exchange)."""

Plan = dict[int, list[tuple[str, Callable[[], None]]]]


@dataclass
class Messages:
    """Messages by direction: follow-ups in continued conversations, echo answers to IMs."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    received: int = 0
    answered: int = 0
    """Incoming IMs the echo handler answered (delivered or not)."""
    hung_up: int = 0
    """Connected phone calls ended with ``Conversation.hang_up()``."""

    def line(self) -> str:
        return (
            f"messages: sent {self.sent}, delivered {self.delivered}, failed {self.failed}, "
            f"received {self.received}"
        )


def _outcome_rule(fail_rate: float) -> Callable[[InvitationRequest, random.Random], Outcome]:
    def rule(request: InvitationRequest, rng: random.Random) -> Outcome:
        delay = rng.uniform(*_DELAY)
        if rng.random() < fail_rate:
            return Outcome(success=False, reason=DECLINED, delay=delay, updated=True)
        return Outcome(success=True, delay=delay, updated=True)

    return rule


def _fault_plan(sim: UcwaSimulator, count: int) -> Plan:
    """Before operation ``i`` starts: what to arm, and how to say it."""
    plan: Plan = {}
    for at, text, arm in (
        (
            0,
            "fault: the next continue POST gets 500 ServiceFailure/CallbackChannelError",
            lambda: sim.faults.callback_channel_error(next_n=1),
        ),
        (
            max(count // 3, 1),
            "fault: the next long poll (P-GET) is dropped mid-poll",
            # aiohttp re-sends a dropped idempotent GET once by itself: drop two.
            lambda: sim.faults.drop_pget(next_n=2),
        ),
        (
            max(count // 2, 1),
            "fault: the next message sent is not delivered",
            lambda: sim.faults.message_delivery_failed(next_n=1),
        ),
        (
            max(2 * count // 3, 2),
            "fault: the next 2 continue POSTs get 500 ServiceFailure/CallbackChannelError",
            lambda: sim.faults.callback_channel_error(next_n=2),
        ),
    ):
        plan.setdefault(at, []).append((text, arm))
    return plan


async def run_demo(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        outcome_rule=_outcome_rule(args.fail_rate),
        conversation_logs=min(max(args.count, 2), 20),
        # A connected continue also announces its conversation (participant added,
        # messaging updated with its sendMessage link), as SendAnIM shows.
        continue_conversation_events=True,
    )
    console = make_console()
    tally = Tally(total=args.count)
    messages = Messages()
    by_im, by_phone = _split(args.count)
    async with UcwaSimulator(config=config, seed=args.seed) as sim:
        sim.add_person(COLLEAGUE)
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
                f"{by_phone} by phone audio, concurrently; {by_im} IMs from "
                f"{COLLEAGUE.uri} answered by an echo handler",
                soft_wrap=True,
            )
            plan = _fault_plan(sim, args.count) if args.faults else {}
            async with session.events() as events:
                watcher = asyncio.create_task(_watch(events, tally, view), name="demo-watch")
                try:
                    with view:
                        async with asyncio.TaskGroup() as group:
                            echo = group.create_task(
                                _echo_handler(session, by_im, messages, view),
                                name="demo-echo",
                            )
                            await _run_all(
                                sim, session, logs, args.count, tally, messages, view, plan
                            )
                            await _bounded(echo, _ANSWER_WAIT, view)
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
    console.print(_messages_table(messages))
    console.print(messages.line(), soft_wrap=True)
    console.print(f"phone calls hung up: {messages.hung_up}", soft_wrap=True)
    console.print(
        channel_table(tally, post_retries=post_retries, faults_fired=faults_fired, dropped=dropped)
    )
    states = ", ".join(f"{k} {v}" for k, v in sorted(by_state.items()))
    console.print(
        f"invitations on the server by final state, incoming IMs included: {states}",
        soft_wrap=True,
    )
    ok = tally.count("error") == 0 and tally.ended == tally.total
    if messages.answered != by_im:
        console.print(
            f"the echo handler answered {messages.answered} of {by_im} incoming IMs",
            soft_wrap=True,
        )
        ok = False
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


def _messages_table(messages: Messages) -> Table:
    table = Table(title="Messages")
    for column in ("sent", "delivered", "failed", "received"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(n) for n in (messages.sent, messages.delivered, messages.failed, messages.received))
    )
    return table


async def _bounded(task: asyncio.Task[None], seconds: float, view: ProgressView) -> None:
    """Wait for ``task`` at most ``seconds``, then cancel it (the summary tells the rest)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        view.note(f"{task.get_name()}: still running after {seconds:g} s; stopped")
        task.cancel()


async def _run_all(
    sim: UcwaSimulator,
    session: ucwa_async.Session,
    logs: list[ucwa_async.ConversationLog],
    count: int,
    tally: Tally,
    messages: Messages,
    view: ProgressView,
    plan: Plan,
) -> None:
    gap = min(_SPREAD / count, 0.05)
    async with asyncio.TaskGroup() as group:
        for i in range(count):
            for text, arm in plan.get(i, ()):
                arm()
                view.note(text)
            log = logs[(i // 2) % len(logs)]
            if i % 2 == 0:  # alternately: IM (and an incoming IM), phone audio, IM...
                start = functools.partial(
                    session.continue_messaging, log, message=f"Following up #{i}"
                )
                follow_up = functools.partial(_follow_up, number=i, messages=messages, view=view)
                group.create_task(_one(start, "messaging", tally, view, then=follow_up))
                group.create_task(sim.incoming_message(COLLEAGUE.uri, f"ping #{i}"))
            else:
                call = functools.partial(
                    session.continue_phone_audio,
                    log,
                    phone_number=f"tel:+1425555{i % 10000:04d}",
                )
                hang_up = functools.partial(_hang_up, number=i, messages=messages, view=view)
                group.create_task(_one(call, "phoneAudio", tally, view, then=hang_up))
            await asyncio.sleep(gap)


def _split(count: int) -> tuple[int, int]:
    """``--count`` invitations in total: how many by IM and by phone audio."""
    return (count + 1) // 2, count // 2


async def _one(
    start: Callable[[], Awaitable[ucwa_async.Invitation[Any]]],
    modality: str,
    tally: Tally,
    view: ProgressView,
    *,
    then: Callable[[ucwa_async.Invitation[Any]], Awaitable[None]] | None = None,
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
        if then is not None:
            view.changed()
            await then(invitation)
    view.changed()


async def _follow_up(
    invitation: ucwa_async.Invitation[Any], *, number: int, messages: Messages, view: ProgressView
) -> None:
    """A connected IM conversation: one more message, the person's replies, then leave."""
    try:
        conversation = await invitation.conversation()
    except ucwa_async.UcwaError as exc:
        view.note(f"messaging #{number}: no conversation: {type(exc).__name__}: {exc}")
        return
    text = f"Any news on #{number}?"
    try:
        async with conversation.messages() as replies:
            await conversation.set_typing()
            if not await _send(conversation, text, messages, view):
                return
            # The simulated person answers every message (the opening one too): read
            # until the answer to the follow-up, for a bounded time.
            async with asyncio.timeout(_REPLY_WAIT):
                async for reply in replies:
                    messages.received += 1
                    if text in (reply.text or ""):
                        break
    except TimeoutError:
        view.note(f"messaging #{number}: no reply within {_REPLY_WAIT:g} s")
    except ucwa_async.UcwaError as exc:  # set_typing, or the conversation ended
        view.note(f"messaging #{number}: {type(exc).__name__}: {exc}")
    finally:
        await _leave(conversation, view)


async def _hang_up(
    invitation: ucwa_async.Invitation[Any], *, number: int, messages: Messages, view: ProgressView
) -> None:
    """A connected phone call: a moment on the line, then hang up (stopPhoneAudio)."""
    try:
        conversation = await invitation.conversation()
        await asyncio.sleep(_ON_THE_LINE)
        await conversation.hang_up()
    except ucwa_async.UcwaError as exc:
        view.note(f"phoneAudio #{number}: not hung up: {type(exc).__name__}: {exc}")
        return
    messages.hung_up += 1


async def _echo_handler(
    session: ucwa_async.Session, count: int, messages: Messages, view: ProgressView
) -> None:
    """Accept ``count`` incoming IMs from ``session.incoming()`` and answer each one."""
    async with session.incoming() as invitations, asyncio.TaskGroup() as group:
        seen = 0
        async for invite in invitations:
            group.create_task(_answer(invite, messages, view))
            seen += 1
            if seen == count:
                break


async def _answer(
    invite: ucwa_async.IncomingInvitation, messages: Messages, view: ProgressView
) -> None:
    try:
        conversation = await invite.accept()
    except ucwa_async.UcwaError as exc:
        view.note(f"incoming IM: not accepted: {type(exc).__name__}: {exc}")
        return
    messages.received += 1  # the invitation's first message
    messages.answered += 1
    try:
        await _send(conversation, f"echo: {invite.message}", messages, view)
    finally:
        await _leave(conversation, view)


async def _send(
    conversation: ucwa_async.Conversation, text: str, messages: Messages, view: ProgressView
) -> bool:
    """Send ``text`` and wait for its delivery; count it. True when delivered."""
    messages.sent += 1
    try:
        sent = await conversation.send(text)
        await sent
    except ucwa_async.UcwaError as exc:
        messages.failed += 1
        view.note(f"{type(exc).__name__}: {exc}")
        return False
    messages.delivered += 1
    return True


async def _leave(conversation: ucwa_async.Conversation, view: ProgressView) -> None:
    try:
        await conversation.leave()
    except ucwa_async.UcwaError as exc:
        view.note(f"leaving {conversation.href}: {type(exc).__name__}: {exc}")


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
