"""Hrefs the server names in events and resources are followed on the application's origin
only: a hostile batch naming another origin's accept, decline, sendMessage, setIsTyping,
stopMessaging or cancel link gets the caller an ``UnsafeHrefError`` (a ``UcwaError``), the
other origin (the ``recorder``) receives nothing (no message text, no decline reason), and
the event channel carries on. ReceiveAnIM.md's flow, in both wires."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

import ucwa_async
from ucwa_async._core.errors import UnsafeHrefError

from ._replay import Replay, no_content, ok
from ._server import HostileServer, Recorder
from .test_reference_flows import (
    COMMUNICATION,
    CONV,
    INV,
    MESSAGING_CONNECTED,
    STEP8,
    STEP9,
    STEP10,
    STEP15,
    A,
    C,
    _application,
    _session,
)

pytestmark = pytest.mark.parametrize("wire", ["json", "xml"])


def _replay(server: HostileServer, wire: str) -> Replay:
    replay = Replay(server, wire, A, _application(A, COMMUNICATION))
    replay.install()
    replay.route("POST", A + "/me/makeMeAvailable", no_content())
    replay.route("DELETE", A, no_content())
    return replay


def _step8_with(links: dict[str, str]) -> dict[str, Any]:
    """ReceiveAnIM step 8, its invitation's links replaced by ``links``."""
    batch = copy.deepcopy(STEP8)
    invitation = batch["sender"][0]["events"][0]["_embedded"]["messagingInvitation"]
    invitation["_links"].update({rel: {"href": href} for rel, href in links.items()})
    return batch


def _step15_with(links: dict[str, str]) -> dict[str, Any]:
    """ReceiveAnIM step 15, its messaging resource's links replaced by ``links``."""
    batch = copy.deepcopy(STEP15)
    messaging = batch["sender"][0]["events"][0]["_embedded"]["messaging"]
    messaging["_links"].update({rel: {"href": href} for rel, href in links.items()})
    return batch


async def test_accept_and_decline_on_another_origin(
    server: HostileServer, recorder: Recorder, wire: str
) -> None:
    elsewhere = recorder.origin + INV
    replay = _replay(server, wire)
    replay.release(
        _step8_with({"accept": elsewhere + "/accept", "decline": elsewhere + "/decline"})
    )
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        with pytest.raises(UnsafeHrefError):
            await invite.accept(timeout=1.0)
        with pytest.raises(UnsafeHrefError):
            await invite.decline()
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert recorder.seen == []
    assert replay.unexpected == []


async def test_conversation_links_on_another_origin(
    server: HostileServer, recorder: Recorder, wire: str
) -> None:
    elsewhere = recorder.origin + CONV + "/messaging"
    replay = _replay(server, wire)
    step15 = _step15_with(
        {
            "sendMessage": elsewhere + "/messages",
            "setIsTyping": elsewhere + "/typing",
            "stopMessaging": elsewhere + "/terminate",
        }
    )

    def accept(request: Any) -> Any:
        replay.release(step15)
        return no_content()

    replay.route("POST", INV + "/accept", accept)
    replay.release(STEP8, STEP9, STEP10)
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        conversation = await (await anext(invitations)).accept()
        with pytest.raises(UnsafeHrefError):
            await conversation.send("the secret text")
        with pytest.raises(UnsafeHrefError):
            await conversation.set_typing()
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
        with pytest.raises(UnsafeHrefError):
            await conversation.leave()
        assert conversation.ended is ucwa_async.ConversationEndReason.LEFT
    assert recorder.seen == []


async def test_a_read_modality_naming_another_origin(
    server: HostileServer, recorder: Recorder, wire: str
) -> None:
    """The links come from a GET of the messaging resource (the events named it without
    them): the same rule."""
    replay = _replay(server, wire)
    step15 = _step15_with({})
    messaging_event = step15["sender"][0]["events"][0]
    del messaging_event["_embedded"]  # link-only: send() reads messaging for its link
    read = copy.deepcopy(MESSAGING_CONNECTED)
    read["_links"]["sendMessage"] = {"href": recorder.origin + CONV + "/messaging/messages"}
    replay.route("GET", CONV + "/messaging", ok(read))

    def accept(request: Any) -> Any:
        replay.release(step15)
        return no_content()

    replay.route("POST", INV + "/accept", accept)
    replay.release(STEP8, STEP9, STEP10)
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        conversation = await (await anext(invitations)).accept()
        with pytest.raises(UnsafeHrefError):
            await conversation.send("the secret text")
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert recorder.seen == []


async def test_cancel_link_on_another_origin(
    server: HostileServer, recorder: Recorder, wire: str
) -> None:
    """SendAnIM: the invitation's started event names a cancel link elsewhere; cancel()
    fails with UnsafeHrefError and the invitation stays pending."""
    replay = _replay(server, wire)
    invitation_href = C + "/messagingInvitations/7"

    def start(request: Any) -> Any:
        replay.release(
            {
                "sender": [
                    {
                        "rel": "communication",
                        "href": C,
                        "events": [
                            {
                                "link": {"rel": "messagingInvitation", "href": invitation_href},
                                "_embedded": {
                                    "messagingInvitation": {
                                        "state": "Connecting",
                                        "direction": "Outgoing",
                                        "operationId": _operation_id(request, wire),
                                        "_links": {
                                            "self": {"href": invitation_href},
                                            "cancel": {
                                                "href": recorder.origin
                                                + invitation_href
                                                + "/cancel"
                                            },
                                        },
                                        "rel": "messagingInvitation",
                                    }
                                },
                                "type": "started",
                            }
                        ],
                    }
                ]
            }
        )
        return 201, None, {"Location": invitation_href}

    replay.route("POST", C + "/messagingInvitations", start)
    session = _session(server, wire, available_for=())
    async with session, asyncio.timeout(10):
        invitation = await session.start_messaging("sip:lenea@contoso.com", "the secret text")
        while invitation.state != "Connecting":  # noqa: ASYNC110 - the started event
            await asyncio.sleep(0.02)
        assert invitation.cancel()
        with pytest.raises(UnsafeHrefError):
            await invitation.cancel_outcome()
        assert not invitation.done()
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert recorder.seen == []


def _operation_id(request: Any, wire: str) -> str:
    from .test_reference_flows import _body

    return str(_body(request, wire)["operationId"])


async def test_start_messaging_link_on_another_origin(
    server: HostileServer, recorder: Recorder, wire: str
) -> None:
    """communication's startMessaging (and startPhoneAudio) links elsewhere: the first
    message's text and the phone number are not POSTed there."""
    elsewhere = {
        "startMessaging": recorder.origin + C + "/messagingInvitations",
        "startPhoneAudio": recorder.origin + C + "/phoneAudioInvitations",
    }
    application = _application(A, COMMUNICATION)
    links = application["_embedded"]["communication"]["_links"]
    links.update({rel: {"href": href} for rel, href in elsewhere.items()})
    replay = Replay(server, wire, A, application)
    replay.install()
    replay.route("DELETE", A, no_content())
    session = _session(server, wire, available_for=())
    async with session, asyncio.timeout(10):
        with pytest.raises(UnsafeHrefError):
            await session.start_messaging("sip:lenea@contoso.com", "the secret text")
        with pytest.raises(UnsafeHrefError):
            await session.start_phone_audio("sip:lenea@contoso.com", "tel:+14255551234")
        assert session.pending_invitations == 0
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert recorder.seen == []
