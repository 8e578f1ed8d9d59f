"""Every remote-person behaviour and every injection of the simulator, both wires."""

from __future__ import annotations

import asyncio

import pytest

from ucwa_async.testing import Behaviour, Person

from ._conv_support import Driver, Event, Resource, is_, message_text
from ._support import MakeClient
from .test_conversations import LENE, _driver, config

WIRES = pytest.mark.parametrize("wire", ["json", "xml"])
BOB = "sip:bob@contoso.com"


def _incoming_text(e: Event) -> str | None:
    res = e.resource
    if e.rel != "message" or res is None or res.props.get("direction") != "Incoming":
        return None
    return message_text(res)


async def _start(d: Driver, to: str, **props: object) -> str:
    reply = await d.post(d.comm.link("startMessaging"), {"to": to, "operationId": "op", **props})
    assert reply.status == 201, reply.body
    return str(reply.headers["Location"])


async def _connected(d: Driver, to: str) -> tuple[Resource, Resource]:
    """startMessaging to ``to``; its (conversation, messaging) once connected."""
    location = await _start(d, to)
    path = location.split("/ucwa/", 1)[1]
    done = await d.until(lambda e: e.type == "completed" and e.href.endswith(path))
    assert done.status == "Success"
    conversation = await d.get((await d.get(location)).link("conversation"))
    return conversation, await d.get(conversation.link("messaging"))


async def _replies(d: Driver, n: int, within: float = 5.0) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        texts = [t for e in d.seen if (t := _incoming_text(e)) is not None]
        if len(texts) >= n or loop.time() > deadline:
            return texts
        await d.poll()


@WIRES
async def test_scripted_replies_then_silence(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    d.sim.add_person(Person(BOB, "Bob Kelly", Behaviour.scripted(["hi", "bye"])))
    _, messaging = await _connected(d, BOB)
    for i, text in enumerate(("one", "two", "three"), 1):
        assert (await d.send(messaging, text, f"op-{i}")).status == 201
    await d.until(lambda e: e.type == "completed" and e.href.endswith("/messages/3"))
    assert await _replies(d, 3, within=0.8) == ["hi", "bye"]
    conv_url = d.client.url(messaging.link("conversation"))
    assert d.sim.messages_from_client(conv_url) == ["one", "two", "three"]


@WIRES
async def test_decline_fails_the_invitation_with_the_reason(
    make_client: MakeClient, wire: str
) -> None:
    d = await _driver(make_client, wire)
    d.sim.add_person(Person(BOB, "Bob", Behaviour.decline("Forbidden", "DeclinedByUser", "No.")))
    location = await _start(d, BOB)
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Failure"
    assert done.reason == {"code": "Forbidden", "subcode": "DeclinedByUser", "message": "No."}
    deleted = await d.until(is_("deleted", "conversation"))
    assert deleted.sender == "communication"
    assert d.sim.invitation_state(location) == "Failed"
    assert (await d.get(location)).props["state"] == "Failed"
    assert d.sim.conversation_state(d.sim.conversation_urls()[-1]) == "Disconnected"


@WIRES
async def test_unknown_recipient_fails_not_found(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    await _start(d, "sip:nobody@contoso.com")
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Failure"
    assert done.reason["code"] == "NotFound"
    bad = await d.post(d.comm.link("startMessaging"), {"to": "lenea", "operationId": "x"})
    assert bad.status == 400


@WIRES
async def test_never_answer_stays_connecting_until_cancelled(
    make_client: MakeClient, wire: str
) -> None:
    d = await _driver(make_client, wire)
    d.sim.add_person(Person(BOB, "Bob", Behaviour.never_answer()))
    location = await _start(d, BOB)
    started = await d.until(is_("started", "messagingInvitation"))
    await d.poll()
    assert not any(e.type == "completed" for e in d.seen)
    assert started.resource is not None
    invitation = await d.get(location)
    assert invitation.props["state"] == "Connecting"
    assert (await d.post(invitation.link("cancel"))).status == 204
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Failure"
    assert done.reason["code"] == "Cancelled"
    await d.until(is_("deleted", "conversation"))
    assert (await d.post(invitation.link("cancel"))).status == 204  # no-op once over


@WIRES
async def test_never_answer_stop_messaging_cancels(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    d.sim.add_person(Person(BOB, "Bob", Behaviour.never_answer()))
    location = await _start(d, BOB)
    messaging = await d.get((await d.get(location)).link("messaging"))
    assert messaging.props["state"] == "Connecting"
    assert "sendMessage" not in messaging.links
    assert (await d.post(messaging.link("stopMessaging"))).status == 204
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Failure"


@WIRES
async def test_leave_after_n_messages(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    d.sim.add_person(Person(BOB, "Bob", Behaviour.leave_after(2)))
    conversation, messaging = await _connected(d, BOB)
    await d.send(messaging, "a", "op-a")
    await d.send(messaging, "b", "op-b")
    left = await d.until(is_("deleted", "participant"))
    assert left.sender == "conversation"
    assert left.in_rel == "participants"
    await d.until(is_("deleted", "conversation"))
    assert await _replies(d, 2) == ["echo: a", "echo: b"]
    # the reply comes before the participant leaves
    order = [(e.type, e.rel) for e in d.seen]
    assert order.index(("deleted", "participant")) > max(
        i for i, e in enumerate(d.seen) if _incoming_text(e) == "echo: b"
    )
    late = await d.send(messaging, "c", "op-c")
    assert late.status == 404
    assert d.sim.conversation_state(d.client.url(conversation.href)) == "Disconnected"


@WIRES
async def test_silent_and_delayed_echo(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    d.sim.add_person(Person(BOB, "Bob", Behaviour.silent()))
    d.sim.add_person(Person("sip:carol@contoso.com", "Carol", Behaviour.echo(delay=0.3)))
    _, bob = await _connected(d, BOB)
    await d.send(bob, "anyone?", "op-1")
    loop = asyncio.get_running_loop()
    d.seen.clear()
    _, carol = await _connected(d, "sip:carol@contoso.com")
    sent_at = loop.time()
    await d.send(carol, "ping", "op-2")
    assert await _replies(d, 1) == ["echo: ping"]
    assert loop.time() - sent_at >= 0.25
    with pytest.raises(ValueError, match="delay"):
        Behaviour.echo(delay=-1)
    with pytest.raises(ValueError, match="sip"):
        Person("lenea@contoso.com")


@WIRES
async def test_say_leave_and_end_conversation(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    conversation, _ = await _connected(d, LENE)
    url = d.client.url(conversation.href)
    assert url in d.sim.conversation_urls()
    await d.sim.say(url, LENE, "plain one")
    await d.sim.say(url, LENE, "with html", html="<b>with html</b>")
    said = [e for e in d.seen if _incoming_text(e)]
    while len(said) < 2:
        await d.poll()
        said = [e for e in d.seen if _incoming_text(e)]
    assert [_incoming_text(e) for e in said] == ["plain one", "with html"]
    html = said[1].resource
    assert html is not None
    assert html.link("htmlMessage").startswith("data:text/html")
    with pytest.raises(LookupError):
        await d.sim.say(url, BOB, "not in it")
    await d.sim.leave(url, LENE)
    await d.until(is_("deleted", "participant"))
    await d.until(is_("deleted", "conversation"))
    with pytest.raises(LookupError):
        await d.sim.leave(url, LENE)

    other, _ = await _connected(d, LENE)
    await d.sim.end_conversation(d.client.url(other.href))
    messaging_down = await d.until(
        lambda e: (
            e.rel == "messaging"
            and e.href.startswith(other.href)
            and e.resource is not None
            and e.resource.props["state"] == "Disconnected"
        )
    )
    assert messaging_down.type == "updated"
    await d.until(is_("deleted", "conversation"))
    assert (await d.client.request("GET", other.href)).status == 404


@WIRES
async def test_incoming_decline_and_withdraw(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    with pytest.raises(LookupError, match="makeMeAvailable"):
        await d.sim.incoming_message(LENE, "too early")
    await d.make_available("Messaging")
    with pytest.raises(LookupError, match="PhoneAudio"):
        await d.sim.incoming_call(LENE)
    with pytest.raises(LookupError, match="directory"):
        await d.sim.incoming_message("sip:nobody@contoso.com", "hi")

    first = await d.sim.incoming_message(LENE, "first")
    invitation = await d.get(first)
    assert (await d.post(invitation.link("decline"), {"reason": "Local"})).status == 204
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Failure"
    assert done.reason["subcode"] == "Local"
    await d.until(is_("deleted", "conversation"))
    assert (await d.post(invitation.link("accept"))).status == 409  # already answered

    d.seen.clear()
    second = await d.sim.incoming_message(LENE, "second")
    invitation = await d.get(second)
    await d.sim.withdraw(second)
    gone = await d.until(is_("completed", "messagingInvitation"))
    assert gone.status == "Failure"
    assert gone.reason["code"] == "Gone"
    await d.until(is_("deleted", "conversation"))
    accepted = await d.post(invitation.link("accept"))
    assert accepted.status == 404  # promptly, never a hang
    assert (await d.client.request("GET", second)).status == 404
    with pytest.raises(LookupError):
        await d.sim.withdraw(second)


@WIRES
async def test_incoming_call_accept_and_hang_up(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    await d.make_available("PhoneAudio")
    url = await d.sim.incoming_call(LENE)
    assert "/phoneAudioInvitations/" in url
    started = await d.until(is_("started", "phoneAudioInvitation"))
    assert started.resource is not None
    assert started.resource.props["direction"] == "Incoming"
    assert {"accept", "decline", "phoneAudio"} <= set(started.resource.links)
    assert (await d.post(started.resource.link("accept"))).status == 204
    done = await d.until(is_("completed", "phoneAudioInvitation"))
    assert done.status == "Success"
    audio = await d.until(is_("updated", "phoneAudio"))
    assert audio.resource is not None
    assert audio.resource.props["state"] == "Connected"
    assert (await d.post(audio.resource.link("stopPhoneAudio"))).status == 204
    await d.until(is_("deleted", "conversation"))


@WIRES
async def test_start_phone_audio(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    start = d.comm.link("startPhoneAudio")
    # phoneNumber is optional (startPhoneAudio_ref.md), but when given it is a tel: URI.
    bad_number = await d.post(start, {"to": LENE, "operationId": "op", "phoneNumber": "42"})
    assert bad_number.status == 400
    reply = await d.post(
        start, {"to": LENE, "operationId": "op", "phoneNumber": "tel:+14255551234"}
    )
    assert reply.status == 201
    done = await d.until(is_("completed", "phoneAudioInvitation"))
    assert done.status == "Success"
    assert done.resource is not None
    assert done.resource.props["phoneNumber"] == "tel:+14255551234"
    conversation = await d.get(done.resource.link("conversation"))
    assert conversation.props["activeModalities"] == ["PhoneAudio"]
    audio = await d.get(conversation.link("phoneAudio"))
    messaging = await d.get(conversation.link("messaging"))
    assert messaging.props["state"] == "Disconnected"
    assert (await d.post(audio.link("stopPhoneAudio"))).status == 204
    await d.until(is_("deleted", "conversation"))


@WIRES
async def test_continue_conversation_is_connected_with_the_recipient(
    make_client: MakeClient, wire: str
) -> None:
    d = await _driver(make_client, wire)
    target = await d.client.continue_link()
    reply = await d.post(target, {"operationId": "op-c"})
    assert reply.status == 201
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Success"
    conversation = await d.get((await d.get(reply.headers["Location"])).link("conversation"))
    assert conversation.props["state"] == "Connected"
    participants = await d.get(conversation.link("participants"))
    recipient = await d.get(participants.link("participant"))
    assert d.sim._world.person(recipient.props["uri"]) is not None  # in the default directory
    messaging = await d.get(conversation.link("messaging"))
    assert (await d.send(messaging, "follow-up", "op-f")).status == 201
    assert await _replies(d, 1) == ["echo: follow-up"]
    assert d.sim.counters.messages_received == 1
    assert d.sim.counters.messages_sent == 1


@WIRES
async def test_stop_messaging_cancels_a_ringing_continue_invitation(
    make_client: MakeClient, wire: str
) -> None:
    d = await _driver(make_client, wire, config(completion_delay=30.0))
    reply = await d.post(await d.client.continue_link(), {"operationId": "op-c"})
    location = reply.headers["Location"]
    invitation = await d.get(location)
    messaging = await d.get(invitation.link("messaging"))
    assert messaging.props["state"] == "Connecting"
    assert (await d.post(messaging.link("stopMessaging"))).status == 204
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Failure"
    assert done.reason["code"] == "Cancelled"
    assert d.sim.invitation_state(location) == "Failed"
    assert (await d.client.request("GET", invitation.link("conversation"))).status == 404


@WIRES
async def test_continue_conversation_events_when_configured(
    make_client: MakeClient, wire: str
) -> None:
    d = await _driver(make_client, wire, config(continue_conversation_events=True))
    reply = await d.post(await d.client.continue_link(), {"operationId": "op-c"})
    assert reply.status == 201
    await d.until(is_("completed", "messagingInvitation"))
    kinds = [(e.type, e.rel) for e in d.seen]
    assert kinds.index(("added", "participant")) < kinds.index(("completed", "messagingInvitation"))
    assert ("updated", "messaging") in kinds
    assert ("updated", "conversation") in kinds
