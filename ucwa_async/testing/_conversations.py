"""Conversation lifecycle: what happens, and the events it emits, in the order of the
reference flows (SendAnIM, ReceiveAnIM).

- outgoing (startMessaging/startPhoneAudio): invitation ``started`` + conversation
  ``added`` (communication), localParticipant ``added`` + modality ``updated``
  (conversation); the person's behaviour then accepts (participant ``added``, modality
  ``updated`` Connected, conversation ``updated``, invitation ``completed`` Success),
  declines (invitation ``completed`` Failure + reason, conversation ``deleted``) or
  never answers;
- incoming (``sim.incoming_message`` / ``incoming_call``): invitation ``started`` with
  ``accept``/``decline`` and an embedded ``from``, conversation ``added`` (state
  Incoming), localParticipant and participant ``added``; accept -> modality ``updated``
  Connected, conversation ``updated``, invitation ``completed`` Success, then the first
  message again as a message event (ReceiveAnIM step 16);
- a sent message: message ``started`` then ``completed`` (Success, or Failure with a
  reason); incoming messages: ``config.incoming_message_events`` (``completed``/Success);
- the end (stopMessaging, remote leaves, server ends it): participant ``deleted``,
  modality ``updated`` Disconnected, conversation ``deleted``.

Timers are loop handles kept per conversation (cancelled when it ends, when its
application goes and at shutdown); replies are strictly ordered per conversation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

from ucwa_async.testing._channel import Emitted
from ucwa_async.testing._config import CANCELLED, Reason
from ucwa_async.testing._conv_events import EventBatch
from ucwa_async.testing._conv_model import Conversation, ConvInvitation, Message, Modality
from ucwa_async.testing._people import Person
from ucwa_async.testing._state import Application, World

__all__ = [
    "NOT_FOUND",
    "WITHDRAWN",
    "accept",
    "create",
    "decline",
    "end",
    "remote_leave",
    "say",
    "send",
    "start_incoming",
    "start_outgoing",
]

NOT_FOUND = Reason("NotFound", None, "The target of the invitation does not exist.")
WITHDRAWN = Reason("Gone", None, "The caller withdrew the invitation.")
_ORDER_STEP = 1e-6  # keeps one conversation's timers strictly ordered


# --- creation ------------------------------------------------------------------------


def create(
    world: World,
    app: Application,
    person: Person,
    modality: Modality,
    *,
    direction: Literal["Incoming", "Outgoing"],
    subject: str,
    importance: str = "Normal",
    operation_id: str | None = None,
    text: str | None = None,
    html: str | None = None,
    phone_number: str | None = None,
) -> Conversation | None:
    """A new conversation with its invitation, or None when the application holds
    ``max_conversations`` live ones already."""
    if not _make_room(world, app):
        return None
    number = world.next_invitation = world.next_invitation + 1
    conv = Conversation(
        id=str(number),
        app=app,
        person=person,
        modality=modality,
        subject=subject,
        thread_id=f"AdK{world.rng.getrandbits(64):016x}==",
        importance=importance,
        state="Incoming" if direction == "Incoming" else "Connecting",
    )
    rel: Literal["messagingInvitation", "phoneAudioInvitation"] = (
        "messagingInvitation" if modality == "Messaging" else "phoneAudioInvitation"
    )
    inv = ConvInvitation(
        number=number,
        path=f"{app.path}/communication/{rel}s/{number}",
        rel=rel,
        direction=direction,
        conversation=conv,
        operation_id=operation_id,
        text=text,
        html=html,
        phone_number=phone_number,
    )
    conv.invitation = inv
    app.conversations[conv.id] = conv
    app.conv_invitations[str(number)] = inv
    world.counters.invitations_created += 1
    world.counters.invitations_by_state["Connecting"] += 1
    return conv


def adopt(world: World, app: Application, conv: Conversation) -> None:
    """Register a conversation made elsewhere (a continue invitation's), bounded."""
    _make_room(world, app, force=True)
    app.conversations[conv.id] = conv


def _make_room(world: World, app: Application, *, force: bool = False) -> bool:
    limit = world.config.max_conversations
    convs = app.conversations
    if len(convs) < limit:
        return True
    for key in [k for k, c in convs.items() if c.deleted][: len(convs) - limit + 1]:
        _forget(app, convs.pop(key))
    if len(convs) < limit:
        return True
    if force:  # a continue invitation is never refused: the oldest goes
        oldest = next(iter(convs))
        _forget(app, convs.pop(oldest))
        return True
    return False


def _forget(app: Application, conv: Conversation) -> None:
    conv.cancel_timers()
    if conv.invitation is not None:
        app.conv_invitations.pop(str(conv.invitation.number), None)


def _set_invitation(world: World, inv: ConvInvitation, state: str) -> None:
    by_state = world.counters.invitations_by_state
    by_state[inv.state] -= 1
    if not by_state[inv.state]:
        del by_state[inv.state]
    by_state[state] += 1
    inv.state = state


# --- outgoing ------------------------------------------------------------------------


def start_outgoing(world: World, conv: Conversation) -> None:
    """Emit the invitation's start; the remote person's behaviour decides the rest."""
    ev = EventBatch(world, conv)
    ev.invitation("started")
    ev.conversation("added")
    ev.local_participant()
    conv.modality_state = "Connecting"
    ev.modality()
    behaviour = conv.person.behaviour
    if behaviour.kind == "never_answer":
        ev.push()
        return
    if behaviour.delay <= 0:
        _answer(world, conv, ev)  # one push: the whole start in one batch if possible
        ev.push()
        return
    ev.push()
    _later(world, conv, behaviour.delay, lambda: _answer_now(world, conv))


def _answer_now(world: World, conv: Conversation) -> None:
    ev = EventBatch(world, conv)
    _answer(world, conv, ev)
    ev.push()


def _answer(world: World, conv: Conversation, ev: EventBatch) -> None:
    inv = conv.invitation
    if inv is None or inv.state != "Connecting" or conv.deleted:
        return
    behaviour = conv.person.behaviour
    if behaviour.kind == "decline":
        _fail(world, conv, ev, behaviour.reason or Reason("RemoteFailure", "Declined"))
        return
    _connect(world, conv, ev)
    if conv.reply_first_message and inv.text is not None:
        _client_message(world, conv, inv.text)


def fail_unknown(world: World, conv: Conversation) -> None:
    """The ``to`` of an outgoing invitation is not in the directory."""
    ev = EventBatch(world, conv)
    ev.invitation("started")
    ev.conversation("added")
    _fail(world, conv, ev, NOT_FOUND)
    ev.push()


def _connect(world: World, conv: Conversation, ev: EventBatch) -> None:
    conv.remote_present = True
    conv.state = conv.modality_state = "Connected"
    ev.participant("added")
    ev.modality()
    ev.conversation("updated")
    if conv.invitation is not None:
        _set_invitation(world, conv.invitation, "Connected")
        ev.invitation("completed", "Success")


def _fail(world: World, conv: Conversation, ev: EventBatch, reason: Reason) -> None:
    inv = conv.invitation
    assert inv is not None
    inv.reason = reason
    _set_invitation(world, inv, "Failed")
    conv.modality_state = "Disconnected"
    ev.modality()
    ev.invitation("completed", "Failure")
    _delete(conv, ev)


def _delete(conv: Conversation, ev: EventBatch) -> None:
    conv.state = "Disconnected"
    conv.deleted = True
    conv.cancel_timers()
    ev.conversation("deleted")


# --- continue invitations (conversation logs) ---------------------------------------


def continued(
    world: World,
    app: Application,
    number: int,
    person: Person,
    modality: Modality,
    subject: str,
    thread_id: str,
) -> Conversation:
    """The conversation of a continue invitation (``conversations/{number}``)."""
    conv = Conversation(
        id=str(number),
        app=app,
        person=person,
        modality=modality,
        subject=subject,
        thread_id=thread_id,
    )
    adopt(world, app, conv)
    return conv


def continued_outcome(world: World, conv: Conversation, success: bool) -> list[Emitted]:
    """The continue invitation ended: Connected with its recipient, or gone. Its own
    events come only with ``config.continue_conversation_events``."""
    ev = EventBatch(world, conv)
    if success:
        _connect(world, conv, ev)
    else:
        conv.modality_state = "Disconnected"
        ev.modality()
        _delete(conv, ev)
    return ev.items if world.config.continue_conversation_events else []


# --- incoming ------------------------------------------------------------------------


def start_incoming(world: World, conv: Conversation) -> None:
    ev = EventBatch(world, conv)
    conv.remote_present = True
    ev.invitation("started")
    ev.conversation("added")
    ev.local_participant()
    ev.participant("added")
    ev.push()


def accept(world: World, conv: Conversation) -> None:
    inv = conv.invitation
    assert inv is not None
    ev = EventBatch(world, conv)
    conv.state = conv.modality_state = "Connected"
    ev.modality()
    ev.conversation("updated")
    _set_invitation(world, inv, "Connected")
    ev.invitation("completed", "Success")
    if conv.modality == "Messaging" and inv.text is not None and world.config.repeat_first_message:
        ev.incoming_message(_incoming(world, conv, conv.person, inv.text, inv.html))
    ev.push()


def decline(world: World, conv: Conversation, reason_word: str) -> None:
    _end_invitation(world, conv, Reason("Declined", reason_word, "Declined by the local user."))


def withdraw(world: World, conv: Conversation) -> None:
    """The caller gives up: invitation Failed (Gone), conversation deleted, the
    invitation forgotten (a later accept answers 404)."""
    _end_invitation(world, conv, WITHDRAWN)
    inv = conv.invitation
    assert inv is not None
    conv.app.conv_invitations.pop(str(inv.number), None)


def _end_invitation(world: World, conv: Conversation, reason: Reason) -> None:
    ev = EventBatch(world, conv)
    _fail(world, conv, ev, reason)
    ev.push()


# --- messages ------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _incoming(
    world: World, conv: Conversation, person: Person, text: str | None, html: str | None
) -> Message:
    msg = Message(
        conv.new_message_number(), "Incoming", text, html, person, _now_ms(), status="Succeeded"
    )
    conv.add_message(msg, world.config.max_messages_per_conversation)
    world.counters.messages_sent += 1
    return msg


def send(
    world: World,
    conv: Conversation,
    text: str | None,
    html: str | None,
    operation_id: str | None,
    failure: Reason | None,
) -> Message:
    """A message from the client: started, then completed (Success or Failure)."""
    msg = Message(conv.new_message_number(), "Outgoing", text, html, None, _now_ms(), operation_id)
    conv.add_message(msg, world.config.max_messages_per_conversation)
    ev = EventBatch(world, conv)
    ev.message(msg, "started")
    if failure is not None:
        msg.status, msg.reason = "Failed", failure
        ev.message(msg, "completed", "Failure")
        ev.push()
        return msg
    msg.status = "Succeeded"
    ev.message(msg, "completed", "Success")
    ev.push()
    _client_message(world, conv, text if text is not None else html or "")
    return msg


def _client_message(world: World, conv: Conversation, text: str) -> None:
    """Record a delivered client message; the person's behaviour answers (and leaves)."""
    cfg = world.config
    conv.record_client_text(text, cfg.max_messages_per_conversation)
    conv.client_count += 1
    count = conv.client_count
    behaviour = conv.person.behaviour
    reply = behaviour.reply_to(text, count)
    leaves = behaviour.leave_after_messages is not None and count == behaviour.leave_after_messages
    if reply is None and not leaves:
        return
    typing = reply is not None and cfg.typing_events
    if typing:
        ev = EventBatch(world, conv)
        ev.typing("added")
        ev.push()

    def act() -> None:
        if conv.deleted or conv.modality_state != "Connected":
            return
        if reply is not None:
            if typing:
                ev = EventBatch(world, conv)
                ev.typing("deleted")
                ev.push()
            say(world, conv, conv.person, reply, None)
        if leaves:
            remote_leave(world, conv)

    _later(world, conv, behaviour.delay, act)


def say(
    world: World, conv: Conversation, person: Person, text: str | None, html: str | None
) -> None:
    ev = EventBatch(world, conv)
    ev.incoming_message(_incoming(world, conv, person, text, html))
    ev.push()


# --- the end -------------------------------------------------------------------------


def remote_leave(world: World, conv: Conversation) -> None:
    """The remote person leaves: peer-to-peer, so the conversation ends."""
    ev = EventBatch(world, conv)
    conv.remote_present = False
    ev.participant("deleted")
    _close(world, conv, ev)
    ev.push()


def end(world: World, conv: Conversation) -> None:
    """stopMessaging / stopPhoneAudio / DELETE, or the server ending it. Idempotent."""
    if conv.deleted:
        return
    ev = EventBatch(world, conv)
    _close(world, conv, ev)
    ev.push()


def _close(world: World, conv: Conversation, ev: EventBatch) -> None:
    inv = conv.invitation
    if inv is not None and inv.state == "Connecting":
        inv.reason = CANCELLED
        _set_invitation(world, inv, "Failed")
        ev.invitation("completed", "Failure")
    conv.modality_state = "Disconnected"
    ev.modality()
    _delete(conv, ev)


def cancel(world: World, inv: ConvInvitation) -> None:
    """The client cancels its outgoing invitation (no-op when it is over)."""
    if inv.state == "Connecting":
        end(world, inv.conversation)


# --- timers --------------------------------------------------------------------------


def _later(world: World, conv: Conversation, delay: float, action: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    due = max(loop.time() + delay, conv.last_due + _ORDER_STEP)
    conv.last_due = due
    handle: asyncio.TimerHandle | None = None

    def run() -> None:
        if handle is not None:
            conv.timers.discard(handle)
        if not world.closing:
            action()

    handle = loop.call_at(due, run)
    conv.timers.add(handle)
