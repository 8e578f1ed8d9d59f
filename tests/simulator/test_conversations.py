"""Conversations in the simulator, driven by a plain aiohttp client in both wires:
incoming IMs (accept, decline, withdraw), startMessaging/startPhoneAudio with every
behaviour, messages both ways, the end of a conversation."""

from __future__ import annotations

import datetime
import re

import pytest

from ucwa_async.testing import SimulatorConfig

from ._conv_support import Driver, Event, is_, message_text
from ._support import MakeClient

WIRES = pytest.mark.parametrize("wire", ["json", "xml"])
LENE = "sip:lenea@contoso.com"


def config(**changes: object) -> SimulatorConfig:
    """Short P-GETs; a P-GET ended within 10 s still counts as the channel."""
    values: dict[str, object] = {"pget_timeout_cap": 0.2, "channel_grace": 10.0, **changes}
    return SimulatorConfig(**values)  # type: ignore[arg-type]


async def _driver(make_client: MakeClient, wire: str, cfg: SimulatorConfig | None = None) -> Driver:
    d = Driver(await make_client(cfg or config(), wire=wire))
    await d.poll()  # the event channel exists from here on
    return d


def _incoming_from(e: Event, uri: str) -> bool:
    res = e.resource
    return (
        res is not None
        and e.rel == "message"
        and res.props.get("direction") == "Incoming"
        and res.embedded == {}
        and res.link("participant").endswith(uri.removeprefix("sip:"))
    )


@WIRES
async def test_incoming_im_accept_reply_and_receive(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    await d.make_available("Messaging")
    url = await d.sim.incoming_message(LENE, "deploy status", subject="ops")
    assert url.startswith(d.sim.base_url)
    assert "/messagingInvitations/" in url

    started = await d.until(is_("started", "messagingInvitation"))
    assert started.sender == "communication"
    inv = started.resource
    assert inv is not None
    assert inv.props["direction"] == "Incoming"
    assert inv.props["state"] == "Connecting"
    assert inv.props["subject"] == "ops"
    assert {"accept", "decline", "conversation", "messaging", "message"} <= set(inv.links)
    from_ = inv.embedded["from"][0]
    assert from_.rel == "participant"
    assert from_.props["uri"] == LENE
    assert from_.props["name"] == "Lene Aaling"
    assert d.client.url(inv.href) == url or inv.href == url.removeprefix(d.sim.base_url)
    await d.until(is_("added", "conversation"))
    await d.until(is_("added", "localParticipant", sender="conversation"))
    await d.until(is_("added", "participant", sender="conversation"))

    assert (await d.post(inv.link("accept"))).status == 204
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Success"
    messaging_ev = await d.until(
        lambda e: (
            e.rel == "messaging"
            and e.resource is not None
            and e.resource.props["state"] == "Connected"
        )
    )
    assert messaging_ev.sender == "conversation"
    # ReceiveAnIM step 16: the first message arrives again as a message event.
    first = await d.until(lambda e: _incoming_from(e, LENE))
    assert first.type == "completed"
    assert first.status == "Success"
    assert first.resource is not None
    assert message_text(first.resource) == "deploy status"
    # PayloadFormat.md: dates in JSON as /Date(ms)/, in XML ISO 8601 (message_ref's XML
    # sample: <property name="timeStamp">2016-09-26T16:20:27.6158253-07:00</property>).
    stamp = first.resource.props["timeStamp"]
    if wire == "json":
        assert re.fullmatch(r"/Date\(\d+\)/", stamp), stamp
    else:
        assert datetime.datetime.fromisoformat(stamp).tzinfo is not None, stamp

    conv_href = inv.link("conversation")
    assert d.sim.conversation_state(d.client.url(conv_href)) == "Connected"
    assert d.sim.conversation_peer(d.client.url(conv_href)) == LENE
    assert d.sim.conversation_peer(d.client.url(conv_href) + "0") is None  # unknown
    conversation = await d.get(conv_href)
    assert conversation.props["state"] == "Connected"
    messaging = await d.get(conversation.link("messaging"))
    assert {"sendMessage", "stopMessaging", "setIsTyping", "typingParticipants"} <= set(
        messaging.links
    )

    sent = await d.send(messaging, "Rolling back now", "op-7")
    assert sent.status == 201
    location = sent.headers["Location"]
    assert location.endswith("/messaging/messages/2")
    completed = await d.until(
        lambda e: (
            e.type == "completed"
            and e.rel == "message"
            and e.href.endswith(location.rsplit("/ucwa", 1)[-1])
        )
    )
    assert completed.status == "Success"
    assert completed.resource is not None
    assert completed.resource.props["direction"] == "Outgoing"
    reply = await d.until(
        lambda e: (
            _incoming_from(e, LENE)
            and e.resource is not None
            and message_text(e.resource) == "echo: Rolling back now"
        )
    )
    assert reply.sender == "conversation"
    assert d.sim.messages_from_client(d.client.url(conv_href)) == ["Rolling back now"]

    assert (await d.post(messaging.link("setIsTyping"))).status == 204
    assert (await d.post(messaging.link("stopMessaging"))).status == 204
    await d.until(is_("deleted", "conversation"))
    assert d.sim.conversation_state(d.client.url(conv_href)) == "Disconnected"
    assert d.sim.conversation_peer(d.client.url(conv_href)) is None  # ended
    gone = await d.client.request("GET", conv_href)
    assert gone.status == 404
    # stopMessaging again: idempotent
    assert (await d.post(messaging.link("stopMessaging"))).status == 204


@WIRES
async def test_start_messaging_echo(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    start = d.comm.link("startMessaging")
    reply = await d.post(
        start,
        {
            "to": LENE,
            "subject": "CI",
            "operationId": "op-start",
            "importance": "Normal",
            "_links": {"message": {"href": "data:text/plain;base64,QnVpbGQgNDIgZmFpbGVk"}},
        },
    )
    assert reply.status == 201, reply.body
    location = reply.headers["Location"]
    assert "/communication/messagingInvitations/" in location
    started = await d.until(is_("started", "messagingInvitation"))
    assert started.resource is not None
    assert started.resource.props["operationId"] == "op-start"
    assert started.resource.props["direction"] == "Outgoing"
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Success"
    assert done.resource is not None
    assert done.resource.embedded["acceptedByParticipant"][0].props["uri"] == LENE
    await d.until(is_("added", "participant"))
    # the invitation's message is answered like any other
    echo = await d.until(lambda e: _incoming_from(e, LENE))
    assert echo.resource is not None
    assert message_text(echo.resource) == "echo: Build 42 failed"

    conv = await d.get(done.resource.link("conversation"))
    assert conv.props["state"] == "Connected"
    assert conv.props["activeModalities"] in (
        ["Messaging"],
        ["Messaging"],
    )
    invitation = await d.get(location)
    assert invitation.props["state"] == "Connected"
