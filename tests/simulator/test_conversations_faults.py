"""Conversation faults, event-shape switches, bounds and speed of the simulator."""

from __future__ import annotations

import asyncio
import time

import pytest

from ucwa_async.testing import SimulatorConfig

from ._conv_support import is_, message_text, read_batch
from ._support import MakeClient
from .test_conversations import LENE, _driver, config
from .test_conversations_behaviours import _connected, _incoming_text, _replies

WIRES = pytest.mark.parametrize("wire", ["json", "xml"])


@WIRES
async def test_callback_channel_error_on_send_message(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    _, messaging = await _connected(d, LENE)
    d.sim.faults.callback_channel_error(next_n=1, target="sendMessage")
    refused = await d.send(messaging, "first try", "op-1")
    assert refused.status == 500
    assert b"CallbackChannelError" in refused.body
    assert d.sim.counters.faults_injected["callback_channel_error"] == 1
    retried = await d.send(messaging, "first try", "op-1")  # same operationId
    assert retried.status == 201
    assert await _replies(d, 1) == ["echo: first try"]
    conv_url = d.client.url(messaging.link("conversation"))
    assert d.sim.messages_from_client(conv_url) == ["first try"]


@WIRES
async def test_message_delivery_failed(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    _, messaging = await _connected(d, LENE)
    d.sim.faults.message_delivery_failed(next_n=1, code="Gone", subcode="Offline", message="gone")
    failed = await d.send(messaging, "lost", "op-1")
    assert failed.status == 201
    path = failed.headers["Location"].split("/ucwa/", 1)[1]
    done = await d.until(lambda e: e.type == "completed" and e.href.endswith(path))
    assert done.status == "Failure"
    assert done.reason == {"code": "Gone", "subcode": "Offline", "message": "gone"}
    assert done.resource is not None
    assert "failedDeliveryParticipant" in done.resource.links
    assert d.sim.counters.faults_injected["message_delivery_failed"] == 1
    ok = await d.send(messaging, "kept", "op-2")
    assert ok.status == 201
    assert await _replies(d, 1) == ["echo: kept"]  # no reply to the lost one
    assert d.sim.messages_from_client(d.client.url(messaging.link("conversation"))) == ["kept"]
    assert d.sim.faults.armed == {}


@WIRES
async def test_send_message_refusals(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    _, messaging = await _connected(d, LENE)
    href = messaging.link("sendMessage")
    wrong_type = await d.client.request("POST", href, body=b"{}", content_type="application/json")
    assert wrong_type.status == 415
    empty = await d.client.request("POST", href, body=b" ", content_type="text/plain")
    assert empty.status == 400
    # OperationContext (SendAnIM's name for it) and a latin-1 body
    sent = await d.client.request(
        "POST",
        href + "?OperationContext=abc",
        body="café".encode("latin-1"),
        content_type="text/plain; charset=iso-8859-1",
    )
    assert sent.status == 201
    assert await _replies(d, 1) == ["echo: café"]
    html = await d.send(messaging, "<b>bold</b>", "op-h", html=True)
    assert html.status == 201
    assert (await _replies(d, 2))[1] == "echo: <b>bold</b>"


async def test_event_switches_link_only_absolute_status_attribute(make_client: MakeClient) -> None:
    cfg = config(
        embed_resources=False,
        event_href_style="absolute",
        xml_status_as_attribute=True,
        incoming_message_events=("started", "completed"),
        repeat_first_message=False,
    )
    d = await _driver(make_client, "xml", cfg)
    await d.make_available("Messaging")
    url = await d.sim.incoming_message(LENE, "hello")
    started = await d.until(is_("started", "messagingInvitation"))
    assert started.resource is None
    assert started.href == url  # absolute
    assert started.sender_href.startswith("http://")
    invitation = await d.get(started.href)
    assert (await d.post(invitation.link("accept"))).status == 204
    done = await d.until(is_("completed", "messagingInvitation"))
    assert done.status == "Success"  # read from the attribute
    await d.poll()
    assert not any(e.rel == "message" for e in d.seen)  # repeat_first_message=False
    conversation = await d.get(invitation.link("conversation"))
    messaging = await d.get(conversation.link("messaging"))
    assert (await d.send(messaging, "x", "op")).status == 201
    reply_events = []
    while len(reply_events) < 2:
        await d.poll()
        reply_events = [
            e for e in d.seen if e.rel == "message" and e.type in ("started", "completed")
        ]
        reply_events = [e for e in reply_events if "/messages/2" in e.href]
    assert [e.type for e in reply_events] == ["started", "completed"]  # same message, twice
    message = await d.get(reply_events[0].href)
    assert message.props["direction"] == "Incoming"
    assert message_text(message) == "echo: x"


async def test_message_operation_id_switch(make_client: MakeClient) -> None:
    d = await _driver(make_client, "json", config(message_operation_id=True))
    _, messaging = await _connected(d, LENE)
    sent = await d.send(messaging, "x", "op-77")
    started = await d.until(lambda e: e.type == "started" and e.rel == "message")
    assert started.resource is not None
    assert started.resource.props["operationId"] == "op-77"
    assert (await d.get(sent.headers["Location"])).props["operationId"] == "op-77"


async def test_bounds_and_application_deletion(make_client: MakeClient) -> None:
    cfg = config(max_conversations=2, max_messages_per_conversation=3)
    d = await _driver(make_client, "json", cfg)
    first, messaging = await _connected(d, LENE)
    for i in range(5):
        assert (await d.send(messaging, f"m{i}", f"op-{i}")).status == 201
    await _replies(d, 5)
    first_url = d.client.url(first.href)
    assert d.sim.messages_from_client(first_url) == ["m2", "m3", "m4"]
    old = await d.client.request("GET", first.href + "/messaging/messages/1")
    assert old.status == 404
    await _connected(d, LENE)
    refused = await d.post(d.comm.link("startMessaging"), {"to": LENE, "operationId": "o"})
    assert refused.status == 409
    # an ended conversation makes room
    assert (await d.post(messaging.link("stopMessaging"))).status == 204
    again = await d.post(d.comm.link("startMessaging"), {"to": LENE, "operationId": "o"})
    assert again.status == 201
    assert d.sim.conversation_state(first_url) is None  # forgotten
    # deleting the application drops everything of it
    app_id = d.sim.application_ids[0]
    assert d.sim.faults.delete_application(app_id) == 1
    assert d.sim.conversation_urls() == []
    with pytest.raises(ValueError, match="max_conversations"):
        SimulatorConfig(max_conversations=0)


async def test_200_conversations_ten_messages_each_way(make_client: MakeClient) -> None:
    """200 concurrent conversations x 10 messages each way over loopback: seconds."""
    d = await _driver(make_client, "json", config(pget_timeout_cap=0.5))
    client = d.client
    start = d.comm.link("startMessaging")
    began = time.perf_counter()
    created = await asyncio.gather(
        *(client.post_json(start, {"to": LENE, "operationId": f"op-{i}"}) for i in range(200))
    )
    assert all(r.status == 201 for r in created)
    urls = d.sim.conversation_urls()
    assert len(urls) == 200
    send_hrefs = [u + "/messaging/messages" for u in urls]

    async def talk(href: str, n: int) -> None:
        for k in range(10):
            reply = await client.request(
                "POST",
                f"{href}?operationId={n}-{k}",
                body=f"{n}:{k}".encode(),
                content_type="text/plain",
            )
            assert reply.status == 201

    received: dict[str, list[str]] = {}

    async def listen() -> None:
        href = d.events_href
        while sum(map(len, received.values())) < 2000:
            events, href = read_batch(await client.request("GET", href))
            for e in events:
                text = _incoming_text(e)
                if text is not None:
                    received.setdefault(e.href.rsplit("/messaging/", 1)[0], []).append(text)

    listener = asyncio.create_task(listen())
    await asyncio.gather(*(talk(h, n) for n, h in enumerate(send_hrefs)))
    await asyncio.wait_for(listener, 20)
    elapsed = time.perf_counter() - began
    assert sum(map(len, received.values())) == 2000
    for n, url in enumerate(urls):
        assert d.sim.messages_from_client(url) == [f"{n}:{k}" for k in range(10)]
        path = url.split(d.sim.base_url, 1)[1]
        assert received[path] == [f"echo: {n}:{k}" for k in range(10)]  # once, in order
    assert elapsed < 30  # generous under load; about 2 s on an idle machine


@WIRES
async def test_events_before_201_on_send_message(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    _, messaging = await _connected(d, LENE)
    await d.poll()  # drain the conversation's start
    d.sim.faults.events_before_201(target="sendMessage")
    pget = await d.client.start_pget(d.events_href)
    sent = await d.send(messaging, "early", "op-e")
    assert sent.status == 201
    assert pget.done()  # the events were answered before the 201
    events, _ = read_batch(pget.result())
    path = sent.headers["Location"].split("/ucwa/", 1)[1]
    assert any(e.type == "completed" and e.href.endswith(path) for e in events)
    assert d.sim.counters.faults_injected["events_before_201"] == 1


async def test_typing_events_before_a_reply(make_client: MakeClient) -> None:
    d = await _driver(make_client, "json", config(typing_events=True))
    _, messaging = await _connected(d, LENE)
    await d.send(messaging, "x", "op")
    await _replies(d, 1)
    typing = [(e.type, e.in_rel) for e in d.seen if e.in_rel == "typingParticipants"]
    assert typing == [("added", "typingParticipants"), ("deleted", "typingParticipants")]
    kinds = [(e.type, e.rel, e.in_rel) for e in d.seen]
    assert ("deleted", "participant", "participants") not in kinds  # typing is not leaving


@WIRES
async def test_incoming_call_declined(make_client: MakeClient, wire: str) -> None:
    d = await _driver(make_client, wire)
    await d.make_available("Messaging", "PhoneAudio")
    url = await d.sim.incoming_call(LENE)
    invitation = await d.get(url)
    assert invitation.rel == "phoneAudioInvitation"
    assert (await d.post(invitation.link("decline"))).status == 204  # no body: reason Local
    done = await d.until(is_("completed", "phoneAudioInvitation"))
    assert done.status == "Failure"
    assert done.reason["subcode"] == "Local"
    assert d.sim.counters.invitations_by_state["Failed"] == 1


async def test_message_status_property_follows_delivery(make_client: MakeClient) -> None:
    d = await _driver(make_client, "json")
    _, messaging = await _connected(d, LENE)
    d.sim.faults.message_delivery_failed()
    failed = await d.send(messaging, "lost", "op-1")
    path = failed.headers["Location"].split("/ucwa/", 1)[1]
    started = await d.until(lambda e: e.type == "started" and e.href.endswith(path))
    assert started.resource is not None
    assert started.resource.props["status"] == "Pending"
    assert (await d.get(failed.headers["Location"])).props["status"] == "Failed"
    ok = await d.send(messaging, "kept", "op-2")
    assert (await d.get(ok.headers["Location"])).props["status"] == "Succeeded"
