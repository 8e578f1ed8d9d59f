"""Microsoft's reference flows beyond the happy paths of test_reference_flows.py, both wires.

A follow-up bot hearing the reply (continueMessaging, then the reply's event before or with
the invitation's completed one), an incoming invitation the caller withdraws, several at
once, messages of the reference's ``message`` resource forms, and an incoming call in a
messaging daemon's inbox. Bodies are the reference's (ReceiveAnIM.md, SendAnIM.md, the
``*_ref.md`` pages), served by the ``Replay`` harness.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ._replay import Replay, created, no_content, ok
from ._server import HostileServer
from .test_reference_flows import (
    CONV137,
    LOG,
    LOGS,
    V,
    _application,
    _batch,
    _body,
    _invitation_resource,
    _link_only,
    _log,
    _session,
)

pytestmark = pytest.mark.parametrize("wire", ["json", "xml"])


# -- a follow-up bot: continueMessaging, then the reply ------------------------------------


def _reply(origin: str, n: int, text: str, embedded: bool) -> dict[str, Any]:
    """ReceiveAnIM.md step 16's message event for conversation 137 (message_ref.md's
    Started sample when link-only: absolute href, no resource)."""
    href = f"{CONV137}/messaging/messages/{n}"
    event: dict[str, Any] = {"link": {"rel": "message", "href": origin + href}, "type": "started"}
    if embedded:
        event = {
            "link": {"rel": "message", "href": href},
            "status": "Success",
            "_embedded": {"message": _message_resource(href, text)},
            "type": "completed",
        }
    return _batch(("conversation", origin + CONV137, [event]))


def _message_resource(href: str, data: str) -> dict[str, Any]:
    return {
        "direction": "Incoming",
        "timeStamp": "/Date(1474932027613)/",
        "_links": {
            "self": {"href": href},
            "contact": {"href": V + "/people/282"},
            "participant": {"href": CONV137 + "/participants/831", "title": "Joe Smith"},
            "messaging": {"href": CONV137 + "/messaging"},
            "plainMessage": {"href": data},
        },
        "rel": "message",
    }


@pytest.mark.parametrize("reply_embedded", [False, True], ids=["reply-link-only", "reply-embedded"])
@pytest.mark.parametrize(
    "invitation_embedded", [False, True], ids=["inv-link-only", "inv-embedded"]
)
@pytest.mark.parametrize("when", ["same-batch", "before"])
async def test_follow_up_hears_a_reply_that_comes_before_the_completed_event(
    server: HostileServer, wire: str, reply_embedded: bool, invitation_embedded: bool, when: str
) -> None:
    """continueMessaging (the seeds), and the remote side's answer to the invitation's
    first message: its event comes in the batch of the invitation's completed event, ahead
    of it (EventsInUCWA.md: "all of the events currently in the queue will be sent along
    with and ahead of that event"), or in a batch of its own before it. The bot that then
    opens ``conversation.messages()`` reads it."""
    replay = Replay(
        server, wire, V, _application(V, {"conversationLogs": "/communication/conversationLogs"})
    )
    replay.install()
    replay.route("POST", V + "/me/makeMeAvailable", no_content())
    replay.route("DELETE", V, no_content())
    replay.route(
        "GET",
        LOGS,
        ok(
            {
                "rel": "conversationLogs",
                "_links": {"self": {"href": LOGS}, "conversationLog": [{"href": LOG}]},
            }
        ),
    )
    replay.route("GET", LOG, ok(_log()))
    origin = server.origin
    reply_href = CONV137 + "/messaging/messages/3"
    data = "data:text/plain;charset=utf-8,Yes%2C+on+it"
    replay.route("GET", reply_href, ok(_message_resource(reply_href, data)))
    operation_ids: list[str] = []

    def post(request: Any) -> Any:
        operation_id = _body(request, wire)["operationId"]
        operation_ids.append(operation_id)

        def event(kind: str, state: str, **extra: Any) -> dict[str, Any]:
            if invitation_embedded:
                resource = _invitation_resource("messagingInvitation", 700, operation_id, state)
                extra["_embedded"] = {"messagingInvitation": resource}
            return _link_only(origin, "messagingInvitation", 700, kind, **extra)

        replay.release(event("started", "Connecting"))
        reply = _reply(origin, 3, data, reply_embedded)
        completed = event("completed", "Connected", status="Success")
        if when == "same-batch":
            replay.release({"sender": reply["sender"] + completed["sender"]})
        else:
            replay.release(reply, completed)
        return created("//v1/applications/833/communication/invitations/700")

    replay.route("POST", LOG + "/continueMessaging", post)
    replay.route(
        "GET",
        V + "/communication/invitations/700",
        lambda request: ok(
            _invitation_resource("messagingInvitation", 700, operation_ids[0], "Connected")
        ),
    )

    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            (log,) = await session.conversation_logs()
            im = await session.continue_messaging(log, "Is the build green?")
            conversation = await im.conversation()
            assert conversation.href == origin + CONV137
            async with conversation.messages() as messages:
                reply = await anext(messages)
        assert reply.text == "Yes, on it"
        assert reply.href == origin + reply_href
        assert reply.direction == "Incoming"
    assert replay.unexpected == []
