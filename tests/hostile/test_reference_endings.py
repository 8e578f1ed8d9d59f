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

import ucwa_async

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


# -- a chat-ops daemon's inbox: many invitations, withdrawn ones, calls --------------------

A = "/ucwa/oauth/v1/applications/104"  # ReceiveAnIM.md's application
C = A + "/communication"
LENE = ("sip:lenea@contoso.com", "Lene Aaling")
JOE = ("sip:john@contoso.com", "Joe Smith")


def _conv(n: int) -> str:
    return f"{C}/conversations/c{n}"


def _inv(n: int) -> str:
    return f"{C}/invitations/{n}"


def _caller(n: int, who: tuple[str, str]) -> dict[str, Any]:
    href = f"{_conv(n)}/participants/{who[0][4:]}"
    return {
        "sourceNetwork": "SameEnterprise",
        "anonymous": False,
        "name": who[1],
        "uri": who[0],
        "_links": {"self": {"href": href}, "conversation": {"href": _conv(n)}},
        "rel": "participant",
    }


def _incoming(
    n: int, who: tuple[str, str], rel: str, state: str, text: str | None
) -> dict[str, Any]:
    """ReceiveAnIM.md step 8's invitation (messagingInvitation_ref / phoneAudioInvitation_ref
    for a call) for conversation c<n>, from ``who``."""
    links: dict[str, Any] = {
        "self": {"href": _inv(n)},
        "to": {"href": A + "/people/toshm@contoso.com"},
        "conversation": {"href": _conv(n)},
    }
    if state == "Connecting":
        links["accept"] = {"href": _inv(n) + "/accept"}
        links["decline"] = {"href": _inv(n) + "/decline"}
    if rel == "messagingInvitation":
        links["messaging"] = {"href": _conv(n) + "/messaging"}
    else:
        links["phoneAudio"] = {"href": _conv(n) + "/phoneAudio"}
    if text is not None:
        links["message"] = {"href": "data:text/plain;charset=utf-8," + text}
    body: dict[str, Any] = {
        "direction": "Incoming",
        "importance": "Normal",
        "threadId": f"thread{n}",
        "state": state,
        "subject": "",
        "_links": links,
        "_embedded": {"from": _caller(n, who)},
        "rel": rel,
    }
    if rel == "phoneAudioInvitation":
        body["phoneNumber"] = "tel:+14255551234"
    return body


def _invitation_event(
    n: int, who: tuple[str, str], kind: str, *, rel: str = "messagingInvitation", **extra: Any
) -> dict[str, Any]:
    state = {"started": "Connecting", "updated": "Connecting"}.get(kind, "Failed")
    if extra.get("status") == "Success":
        state = "Connected"
    return {
        "link": {"rel": rel, "href": _inv(n)},
        "_embedded": {rel: _incoming(n, who, rel, state, "Hi+Tosh" if rel[0] == "m" else None)},
        "type": kind,
        **extra,
    }


def _messaging(n: int, state: str) -> dict[str, Any]:
    conv = _conv(n)
    links: dict[str, Any] = {"self": {"href": conv + "/messaging"}, "conversation": {"href": conv}}
    if state == "Connected":
        links["sendMessage"] = {"href": conv + "/messaging/messages"}
        links["stopMessaging"] = {"href": conv + "/messaging/terminate"}
    return {"state": state, "_links": links, "rel": "messaging"}


def _accepted(n: int, who: tuple[str, str], *before_completed: dict[str, Any]) -> dict[str, Any]:
    """ReceiveAnIM.md step 15 for conversation c<n> (its messaging Connected, then the
    invitation completed), with ``before_completed`` events of the conversation ahead of the
    completed event."""
    return _batch(
        (
            "conversation",
            _conv(n),
            [
                {
                    "link": {"rel": "messaging", "href": _conv(n) + "/messaging"},
                    "_embedded": {"messaging": _messaging(n, "Connected")},
                    "type": "updated",
                },
                *before_completed,
            ],
        ),
        (
            "communication",
            C,
            [
                {
                    "link": {"rel": "conversation", "href": _conv(n)},
                    "_embedded": {
                        "conversation": {
                            "state": "Connected",
                            "subject": "",
                            "_links": {
                                "self": {"href": _conv(n)},
                                "messaging": {"href": _conv(n) + "/messaging"},
                                "localParticipant": {
                                    "href": _conv(n) + "/participants/toshm@contoso.com"
                                },
                            },
                            "rel": "conversation",
                        }
                    },
                    "type": "updated",
                },
                _invitation_event(n, who, "completed", status="Success"),
            ],
        ),
    )


_WITHDRAWN = {"code": "Gone", "subcode": "Canceled", "message": "The caller hung up."}


def _withdrawn(n: int, who: tuple[str, str], *, embedded: bool = True) -> dict[str, Any]:
    """The caller gives up: the invitation completes with failure and a reason
    (messagingInvitation_ref.md: "complete with success or failure (in which case a reason
    is supplied)"), its conversation's messaging goes Disconnected and it is deleted."""
    completed = _invitation_event(n, who, "completed", status="Failure", reason=_WITHDRAWN)
    if not embedded:
        del completed["_embedded"]
    return _batch(
        (
            "conversation",
            _conv(n),
            [
                {
                    "link": {"rel": "messaging", "href": _conv(n) + "/messaging"},
                    "_embedded": {"messaging": _messaging(n, "Disconnected")},
                    "type": "updated",
                }
            ],
        ),
        (
            "communication",
            C,
            [completed, {"link": {"rel": "conversation", "href": _conv(n)}, "type": "deleted"}],
        ),
    )


def _daemon_replay(server: HostileServer, wire: str) -> Replay:
    replay = Replay(server, wire, A, _application(A, {}))
    replay.install()
    replay.route("POST", A + "/me/makeMeAvailable", no_content())
    replay.route("DELETE", A, no_content())
    for n in range(1, 10):
        replay.route("POST", _inv(n) + "/decline", no_content())
        replay.route("POST", _conv(n) + "/messaging/terminate", no_content())
    return replay


async def _served(replay: Replay, batches: int) -> None:
    """Until the P-GETs have served ``batches`` batches and one more was asked for (the
    client got them all), and their reads are done."""
    while len(replay.pgets) < batches + 2:  # noqa: ASYNC110 - the harness has no event
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)


@pytest.mark.parametrize("link_only", [False, True], ids=["embedded", "link-only"])
async def test_many_invitations_at_once(server: HostileServer, wire: str, link_only: bool) -> None:
    """One batch (EventsInUCWA.md aggregation) with five invitations: two from Lene, one
    of Joe's withdrawn in the same batch, a phone call from Joe and an audioVideoInvitation
    (a call this API does not model). The inbox yields the three live ones in order; each
    is accepted / declined on its own."""
    replay = _daemon_replay(server, wire)
    replay.link_only = link_only  # messagingInvitation_ref's Started sample: each one read
    # audioVideoInvitation_ref.md (an audio call from a Skype client), embedded
    video_call = {
        "rel": "audioVideoInvitation",
        "direction": "Incoming",
        "state": "Connecting",
        "_links": {
            "self": {"href": _inv(5)},
            "conversation": {"href": _conv(5)},
            "accept": {"href": _inv(5) + "/accept"},
            "decline": {"href": _inv(5) + "/decline"},
        },
        "_embedded": {"from": _caller(5, JOE)},
    }
    started = [
        _invitation_event(1, LENE, "started"),
        _invitation_event(2, JOE, "started"),
        _invitation_event(3, LENE, "started"),
        _invitation_event(4, JOE, "started", rel="phoneAudioInvitation"),
        {
            "link": {"rel": "audioVideoInvitation", "href": _inv(5)},
            "_embedded": {"audioVideoInvitation": video_call},
            "type": "started",
        },
        _invitation_event(2, JOE, "completed", status="Failure", reason=_WITHDRAWN),
    ]
    replay.release(_batch(("communication", C, started)))

    def accept(n: int, who: tuple[str, str]) -> Any:
        def post(request: Any) -> Any:
            replay.release(_accepted(n, who))
            return no_content()

        return post

    replay.route("POST", _inv(1) + "/accept", accept(1, LENE))
    replay.route("POST", _inv(3) + "/accept", accept(3, LENE))
    session = _session(server, wire, available_for=("Messaging", "PhoneAudio"))
    async with session, asyncio.timeout(10):
        await _served(replay, 1)
        async with session.incoming() as invitations:
            got = [await anext(invitations) for _ in range(3)]
        assert [(i.href, i.kind, i.sender.uri) for i in got] == [
            (server.origin + _inv(1), "messaging", LENE[0]),
            (server.origin + _inv(3), "messaging", LENE[0]),
            (server.origin + _inv(4), "phoneAudio", JOE[0]),
        ]
        first, second, call = got
        with pytest.raises(ucwa_async.UnsupportedModalityError):
            await call.accept()
        await call.decline()
        two, one = await asyncio.gather(second.accept(), first.accept())
        assert (one.href, two.href) == (server.origin + _conv(1), server.origin + _conv(3))
        assert one is not two
        assert one.state == two.state == "Connected"
        assert [p.uri for p in one.participants] == [LENE[0]]
    assert replay.sent("POST", _inv(2) + "/accept") == []
    assert replay.sent("POST", _inv(2) + "/decline") == []
    assert len(replay.sent("POST", _inv(4) + "/decline")) == 1
    assert replay.unexpected == []


WITHDRAWALS = ["failure-embedded", "failure-link-only", "bare-read-failed", "bare-gone", "deleted"]


def _withdrawal(replay: Replay, how: str) -> dict[str, Any]:
    """Joe's invitation 2 withdrawn, as a server may say it: completed Failure with its
    reason (embedded or not); a bare completed (messagingInvitation_ref's event samples
    carry no status), the invitation then read Failed or gone; or deleted."""
    if how == "failure-embedded":
        return _withdrawn(2, JOE)
    if how == "failure-link-only":
        return _withdrawn(2, JOE, embedded=False)
    batch = _withdrawn(2, JOE, embedded=False)
    event = batch["sender"][1]["events"][0]
    del event["status"], event["reason"]
    if how == "bare-read-failed":
        replay.route("GET", _inv(2), ok(_incoming(2, JOE, "messagingInvitation", "Failed", None)))
    elif how == "deleted":
        event["type"] = "deleted"
    return batch


@pytest.mark.parametrize("how", WITHDRAWALS)
async def test_invitation_withdrawn_before_accept(
    server: HostileServer, wire: str, how: str
) -> None:
    """The daemon took the invitation, then the caller gave up ('updated', then the end):
    accept() says so at once (no accept POST, no wait), decline() returns quietly."""
    replay = _daemon_replay(server, wire)
    replay.release(_batch(("communication", C, [_invitation_event(2, JOE, "started")])))
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        assert not invite.withdrawn
        ringing = {  # a modality seen live: its Disconnected ends the conversation first
            "link": {"rel": "messaging", "href": _conv(2) + "/messaging"},
            "_embedded": {"messaging": _messaging(2, "Connecting")},
            "type": "updated",
        }
        replay.release(
            _batch(
                ("conversation", _conv(2), [ringing]),
                ("communication", C, [_invitation_event(2, JOE, "updated")]),
            ),
            _withdrawal(replay, how),
        )
        await _served(replay, 3)
        assert invite.withdrawn
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ucwa_async.InvitationWithdrawnError) as info:
            await invite.accept()
        assert loop.time() - began < 1.0
        if how.startswith("failure"):
            assert info.value.reason is not None
            assert (info.value.reason.code, info.value.reason.subcode) == ("Gone", "Canceled")
        await invite.decline()
    assert replay.sent("POST", _inv(2) + "/accept") == []
    assert replay.sent("POST", _inv(2) + "/decline") == []


@pytest.mark.parametrize("how", [*WITHDRAWALS, "accept-404"])
async def test_invitation_withdrawn_while_accepting(
    server: HostileServer, wire: str, how: str
) -> None:
    """The caller gives up as the daemon accepts: the accept POST is taken (204) and the
    invitation then ends without success, or the POST finds it gone (404). accept() raises
    InvitationWithdrawnError promptly; nothing hangs, and the inbox goes on."""
    replay = _daemon_replay(server, wire)
    replay.release(
        _batch(
            (
                "communication",
                C,
                [_invitation_event(2, JOE, "started"), _invitation_event(3, LENE, "started")],
            )
        )
    )

    def accept(request: Any) -> Any:
        if how == "accept-404":
            replay.release(_withdrawn(2, JOE))
            return 404, {"code": "NotFound", "subcode": "ResourceNotFound"}, {}
        replay.release(_withdrawal(replay, how))
        return no_content()

    replay.route("POST", _inv(2) + "/accept", accept)
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
        assert loop.time() - began < 2.0
        assert invite.withdrawn
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
        await invite.decline()
        nxt = await anext(invitations)
        assert nxt.href == server.origin + _inv(3)
    assert len(replay.sent("POST", _inv(2) + "/accept")) == 1
    assert replay.sent("POST", _inv(2) + "/decline") == []


def _message(n: int, links: dict[str, Any], *, link_only: bool = False) -> dict[str, Any]:
    """A message of conversation c1 from Lene: message_ref.md's resource (its body links
    ``plainMessage`` / ``htmlMessage`` with ``data:`` hrefs), embedded in a completed event as
    ReceiveAnIM.md step 16, or announced link-only (message_ref.md's Started sample)."""
    href = f"{_conv(1)}/messaging/messages/{n}"
    if link_only:
        return {"link": {"rel": "message", "href": href}, "type": "started"}
    lene = f"{_conv(1)}/participants/lenea@contoso.com"
    resource = {
        "direction": "Incoming",
        "timeStamp": "/Date(1474932027613)/",
        "_links": {
            "self": {"href": href},
            "contact": {"href": A + "/people/282"},
            "messaging": {"href": _conv(1) + "/messaging"},
            "participant": {"href": lene, "title": "Lene Aaling"},
            **links,
        },
        "rel": "message",
    }
    return {
        "link": {"rel": "message", "href": href},
        "status": "Success",
        "_embedded": {"message": resource},
        "type": "completed",
    }


async def test_messages_before_the_accept_completes_and_body_forms(
    server: HostileServer, wire: str
) -> None:
    """The messages come ahead of the invitation's completed event (EventsInUCWA.md: queued
    events go ahead of the one that releases the P-GET): the repeat of the invitation's
    message (ReceiveAnIM.md step 16) is not yielded again; the others are, in order, in
    each body form message_ref.md shows: plain (``charset=utf8``, URL-encoded), HTML
    base64, both, and one announced link-only and read."""
    import base64

    replay = _daemon_replay(server, wire)
    replay.release(_batch(("communication", C, [_invitation_event(1, LENE, "started")])))
    html = base64.b64encode("<b>Grüße</b> 1+1".encode()).decode()
    read_href = f"{_conv(1)}/messaging/messages/6"
    replay.route(
        "GET",
        read_href,
        ok(
            _message(6, {"plainMessage": {"href": "data:text/plain;charset=utf-8,read+me"}})[
                "_embedded"
            ]["message"]
        ),
    )
    messages = [
        _message(2, {"plainMessage": {"href": "data:text/plain;charset=utf-8,Hi+Tosh"}}),
        _message(3, {"plainMessage": {"href": "data:text/plain;charset=utf8,A%2BB+%26+caf%C3%A9"}}),
        _message(4, {"htmlMessage": {"href": "data:text/html;base64," + html}}),
        _message(
            5,
            {
                "htmlMessage": {"href": "data:text/html;charset=utf-8,%3Cp%3Ehello%3C%2Fp%3E"},
                "plainMessage": {"href": "data:text/plain;charset=utf-8,hello"},
            },
        ),
        _message(6, {}, link_only=True),
    ]

    def accept(request: Any) -> Any:
        replay.release(_accepted(1, LENE, *messages))
        return no_content()

    replay.route("POST", _inv(1) + "/accept", accept)
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        assert invite.message == "Hi Tosh"
        conversation = await invite.accept()
        async with conversation.messages() as stream:
            got = [await anext(stream) for _ in range(4)]
    assert [(m.text, m.html) for m in got] == [
        ("A+B & café", None),
        ("<b>Grüße</b> 1+1", "<b>Grüße</b> 1+1"),
        ("hello", "<p>hello</p>"),
        ("read me", None),
    ]
    assert all(m.direction == "Incoming" for m in got)
    assert all(m.sender is not None and m.sender.uri == LENE[0] for m in got)
    assert replay.unexpected == []


@pytest.mark.parametrize("link_only", [False, True], ids=["embedded", "link-only"])
async def test_conversation_deleted_while_accepting_ends_the_accept(
    server: HostileServer, wire: str, link_only: bool
) -> None:
    """The caller hangs up as the daemon accepts, and the server says so only by its
    conversation (messaging Disconnected, conversation deleted: conversation_ref.md's
    Deleted event), its invitation's completed event merged away (EventsInUCWA.md,
    Aggregation: "status updates can skip some intermediate steps"). accept() ends at
    once with InvitationWithdrawnError, not after the invitation timeout."""
    replay = _daemon_replay(server, wire)
    replay.link_only = link_only
    replay.release(_batch(("communication", C, [_invitation_event(2, JOE, "started")])))

    def accept(request: Any) -> Any:
        batch = _withdrawn(2, JOE)
        del batch["sender"][1]["events"][0]  # no completed event
        replay.release(batch)
        return no_content()

    replay.route("POST", _inv(2) + "/accept", accept)
    replay.route("GET", _conv(2), (404, {"code": "NotFound", "subcode": "ResourceNotFound"}, {}))
    session = _session(server, wire, available_for=("Messaging",), invitation_timeout=30.0)
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
        assert loop.time() - began < 2.0
        assert invite.withdrawn


JOE137 = CONV137 + "/participants/831"


def _joe137() -> dict[str, Any]:
    """participant_ref.md's resource (the seeds' conversation 137)."""
    return {
        "rel": "participant",
        "anonymous": False,
        "name": "Joe Smith",
        "sourceNetwork": "SameEnterprise",
        "uri": "sip:john@contoso.com",
        "_links": {"self": {"href": JOE137}, "conversation": {"href": CONV137}},
    }


def _messaging137(state: str) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": {"href": CONV137 + "/messaging"},
        "conversation": {"href": CONV137},
    }
    if state == "Connected":
        links["sendMessage"] = {"href": CONV137 + "/messaging/sendMessage"}
        links["stopMessaging"] = {"href": CONV137 + "/messaging/stopMessaging"}
    return {"rel": "messaging", "state": state, "_links": links}


FOLLOW_UP_ENDINGS = {
    "participant-deleted": (
        {"link": {"rel": "participant", "href": JOE137}, "type": "deleted"},
        ucwa_async.ConversationEndReason.REMOTE_LEFT,
    ),
    "messaging-disconnected": (
        {
            "link": {"rel": "messaging", "href": CONV137 + "/messaging"},
            "_embedded": {"messaging": _messaging137("Disconnected")},
            "type": "updated",
        },
        ucwa_async.ConversationEndReason.DISCONNECTED,
    ),
}


@pytest.mark.parametrize("ending", list(FOLLOW_UP_ENDINGS))
@pytest.mark.parametrize(
    "invitation_embedded", [False, True], ids=["inv-link-only", "inv-embedded"]
)
async def test_follow_up_sees_the_remote_side_leave(
    server: HostileServer, wire: str, invitation_embedded: bool, ending: str
) -> None:
    """continueMessaging; the conversation's own events (SendAnIM.md step 6: Joe added,
    messaging Connected) come ahead of the invitation's completed event; the bot waits for
    a reply, and Joe leaves instead (participant deleted, or messaging Disconnected, as
    ReceiveAnIM's flow ends): the message stream ends, ``wait_ended`` says why."""
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
        conversation_events = _batch(
            (
                "conversation",
                CONV137,
                [
                    {
                        "link": {"rel": "participant", "href": JOE137, "title": "Joe Smith"},
                        "_embedded": {"participant": _joe137()},
                        "type": "added",
                    },
                    {
                        "link": {"rel": "messaging", "href": CONV137 + "/messaging"},
                        "_embedded": {"messaging": _messaging137("Connected")},
                        "type": "updated",
                    },
                ],
            )
        )
        completed = event("completed", "Connected", status="Success")
        replay.release({"sender": conversation_events["sender"] + completed["sender"]})
        return created("//v1/applications/833/communication/invitations/700")

    replay.route("POST", LOG + "/continueMessaging", post)
    replay.route(
        "GET",
        V + "/communication/invitations/700",
        lambda request: ok(
            _invitation_resource("messagingInvitation", 700, operation_ids[0], "Connected")
        ),
    )
    event, reason = FOLLOW_UP_ENDINGS[ending]

    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            (log,) = await session.conversation_logs()
            im = await session.continue_messaging(log, "Is the build green?")
            conversation = await im.conversation()
            assert [p.uri for p in conversation.participants] == ["sip:john@contoso.com"]
            async with conversation.messages() as messages:
                replay.release(_batch(("conversation", CONV137, [event])))
                assert [m async for m in messages] == []
            assert await conversation.wait_ended() == reason
    assert replay.unexpected == []


@pytest.mark.parametrize("ending", ["conversation-deleted", "caller-left"])
async def test_invitation_whose_conversation_ended_before_it_was_accepted(
    server: HostileServer, wire: str, ending: str
) -> None:
    """The caller hangs up while the invitation waits, and the server says so by its
    conversation only (conversation_ref.md's Deleted; participant_ref.md's Deleted: the
    caller left), no completed event for the invitation. One taken already: accept() raises
    InvitationWithdrawnError without a POST (the server's answer would be accept_ref.md's
    409 Conflict, not a clear end). One still queued: the inbox skips it."""
    replay = _daemon_replay(server, wire)

    def end(n: int) -> dict[str, Any]:
        if ending == "conversation-deleted":
            deleted = {"link": {"rel": "conversation", "href": _conv(n)}, "type": "deleted"}
            return _batch(("communication", C, [deleted]))
        caller = f"{_conv(n)}/participants/john@contoso.com"
        left = {"link": {"rel": "participant", "href": caller, "title": "Joe Smith"}}
        return _batch(("conversation", _conv(n), [{**left, "type": "deleted"}]))

    def added(n: int) -> dict[str, Any]:  # ReceiveAnIM.md step 9: the caller joins
        caller = f"{_conv(n)}/participants/john@contoso.com"
        event = {"link": {"rel": "participant", "href": caller, "title": "Joe Smith"}}
        return _batch(("conversation", _conv(n), [{**event, "type": "added"}]))

    replay.route("GET", f"{_conv(2)}/participants/john@contoso.com", ok(_caller(2, JOE)))
    replay.route("GET", f"{_conv(4)}/participants/john@contoso.com", ok(_caller(4, JOE)))
    replay.release(
        _batch(("communication", C, [_invitation_event(2, JOE, "started")])),
        added(2),
        _batch(("communication", C, [_invitation_event(4, JOE, "started")])),
        added(4),
        _batch(("communication", C, [_invitation_event(1, LENE, "started")])),
    )
    for n in (2, 4):
        replay.route("POST", _inv(n) + "/accept", (409, {"code": "Conflict"}, {}))
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        taken = await anext(invitations)
        assert taken.href == server.origin + _inv(2)
        await _served(replay, 5)
        replay.release(end(2), end(4))
        await _served(replay, 7)
        assert taken.withdrawn
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await taken.accept()
        assert (await anext(invitations)).href == server.origin + _inv(1)
    assert replay.sent("POST", _inv(2) + "/accept") == []
    assert replay.unexpected == []


async def test_caller_withdraws_then_invites_again_in_the_same_conversation(
    server: HostileServer, wire: str
) -> None:
    """Lene's invitation is withdrawn (its conversation deleted), then she invites again: a
    new messagingInvitation for the same conversation href (messagingInvitation_ref.md: an
    incoming invitation may add messaging to an existing conversation). The first one is
    skipped, the second is accepted and its conversation is live."""
    replay = _daemon_replay(server, wire)
    again = _invitation_event(6, LENE, "started")
    resource = again["_embedded"]["messagingInvitation"]
    resource["_links"]["conversation"] = {"href": _conv(1)}
    resource["_links"]["messaging"] = {"href": _conv(1) + "/messaging"}
    resource["_embedded"]["from"] = _caller(1, LENE)
    replay.release(
        _batch(("communication", C, [_invitation_event(1, LENE, "started")])),
        _withdrawn(1, LENE),
        _batch(("communication", C, [again])),
    )
    completed = _accepted(1, LENE)
    event = completed["sender"][1]["events"][1]
    event["link"]["href"] = _inv(6)
    event["_embedded"]["messagingInvitation"]["_links"]["self"] = {"href": _inv(6)}

    def accept(request: Any) -> Any:
        replay.release(completed)
        return no_content()

    replay.route("POST", _inv(6) + "/accept", accept)
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10):
        await _served(replay, 3)
        async with session.incoming() as invitations:
            invite = await anext(invitations)
        assert invite.href == server.origin + _inv(6)
        conversation = await invite.accept()
        assert conversation.href == server.origin + _conv(1)
        assert conversation.ended is None
        assert conversation.state == "Connected"
        assert [p.uri for p in conversation.participants] == [LENE[0]]
    assert replay.sent("POST", _inv(1) + "/accept") == []
    assert replay.unexpected == []


def _deleted_without_completed(n: int, who: tuple[str, str]) -> dict[str, Any]:
    """``_withdrawn`` with the invitation's completed event merged away (EventsInUCWA.md,
    Aggregation): messaging Disconnected and conversation_ref.md's Deleted event only."""
    batch = _withdrawn(n, who)
    del batch["sender"][1]["events"][0]
    return batch


async def test_conversation_deleted_while_the_accept_is_sent(
    server: HostileServer, wire: str
) -> None:
    """The caller hangs up while the accept POST is on its way: the conversation's end
    comes in while the POST waits, then the server refuses the accept (accept_ref.md's 409
    Conflict: nothing rings any more). accept() raises InvitationWithdrawnError (not the
    409's error), the invitation is withdrawn, and a later accept() says so without a
    second POST."""
    replay = _daemon_replay(server, wire)
    replay.release(_batch(("communication", C, [_invitation_event(2, JOE, "started")])))

    def accept(request: Any) -> Any:
        replay.release(_deleted_without_completed(2, JOE))
        return 409, {"code": "Conflict", "subcode": "None", "message": "Not ringing."}, {}

    replay.route("POST", _inv(2) + "/accept", accept)
    replay.delays[_inv(2) + "/accept"] = 0.8  # the P-GET brings the end meanwhile
    replay.route("GET", _conv(2), (404, {"code": "NotFound", "subcode": "ResourceNotFound"}, {}))
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
        assert invite.withdrawn
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
        await invite.decline()
    assert len(replay.sent("POST", _inv(2) + "/accept")) == 1
    assert replay.sent("POST", _inv(2) + "/decline") == []


@pytest.mark.parametrize("when", ["posting", "posted"])
async def test_conversation_deleted_after_the_accept_caller_gave_up(
    server: HostileServer, wire: str, when: str
) -> None:
    """accept() is cancelled (while its POST is on the way, or once the server took it and
    the accept waits for the invitation's outcome); then the caller hangs up, said by the
    conversation only (no completed event). The invitation is withdrawn at once, though no
    accept() waits: ``withdrawn`` says so, decline() returns quietly (it was no accepted
    conversation to leave), a later accept() raises InvitationWithdrawnError."""
    replay = _daemon_replay(server, wire)
    replay.release(_batch(("communication", C, [_invitation_event(2, JOE, "started")])))
    replay.route("POST", _inv(2) + "/accept", no_content())
    if when == "posting":
        replay.delays[_inv(2) + "/accept"] = 0.8
    replay.route("GET", _conv(2), (404, {"code": "NotFound", "subcode": "ResourceNotFound"}, {}))
    session = _session(server, wire, available_for=("Messaging",), invitation_timeout=30.0)
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        accepting = asyncio.ensure_future(invite.accept())
        while not replay.sent("POST", _inv(2) + "/accept"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if when == "posted":
            await asyncio.sleep(0.3)  # the 204 is in: accept() waits for the outcome
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting
        pgets = len(replay.pgets)
        replay.release(_deleted_without_completed(2, JOE))
        await _served(replay, pgets)
        await asyncio.sleep(0.8)  # the held POST's answer too
        assert invite.withdrawn
        await invite.decline()
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
    assert len(replay.sent("POST", _inv(2) + "/accept")) == 1
    assert replay.sent("POST", _inv(2) + "/decline") == []


@pytest.mark.parametrize("completed", [False, True], ids=["deleted-only", "completed-failure"])
async def test_caller_hangs_up_while_the_decline_is_sent(
    server: HostileServer, wire: str, completed: bool
) -> None:
    """The caller gives up while the decline POST is on its way (the invitation completes
    with Failure, or only its conversation is deleted), and the server then refuses the
    decline (decline_ref.md's 409 Conflict: nothing rings any more). The invitation was
    withdrawn first: decline() returns quietly, as it does for any withdrawn invitation,
    and a later accept() says it is withdrawn."""
    replay = _daemon_replay(server, wire)
    replay.release(_batch(("communication", C, [_invitation_event(2, JOE, "started")])))

    def decline(request: Any) -> Any:
        replay.release(_withdrawn(2, JOE) if completed else _deleted_without_completed(2, JOE))
        return 409, {"code": "Conflict", "subcode": "None", "message": "Not ringing."}, {}

    replay.route("POST", _inv(2) + "/decline", decline)
    replay.delays[_inv(2) + "/decline"] = 0.8  # the P-GET brings the end meanwhile
    replay.route("GET", _conv(2), (404, {"code": "NotFound", "subcode": "ResourceNotFound"}, {}))
    session = _session(server, wire, available_for=("Messaging",))
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        await invite.decline()
        assert invite.withdrawn
        with pytest.raises(ucwa_async.InvitationWithdrawnError):
            await invite.accept()
    assert len(replay.sent("POST", _inv(2) + "/decline")) == 1
    assert replay.sent("POST", _inv(2) + "/accept") == []


async def test_a_given_up_accept_that_connected_as_its_conversation_ended(
    server: HostileServer, wire: str
) -> None:
    """accept() is cancelled once the server took it; then one batch brings its messaging
    Connected, then Disconnected, and the invitation's completed Success after them (the
    conversation's own events ahead, EventsInUCWA.md). The server says the accept
    connected: a later accept() returns that (ended) conversation, as one still waiting
    would have; the end alone does not make the invitation withdrawn."""
    replay = _daemon_replay(server, wire)
    replay.release(_batch(("communication", C, [_invitation_event(2, JOE, "started")])))
    replay.route("POST", _inv(2) + "/accept", no_content())
    session = _session(server, wire, available_for=("Messaging",), invitation_timeout=30.0)
    async with session, asyncio.timeout(10), session.incoming() as invitations:
        invite = await anext(invitations)
        accepting = asyncio.ensure_future(invite.accept())
        while not replay.sent("POST", _inv(2) + "/accept"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the 204 is in: accept() waits for the outcome
        accepting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await accepting
        pgets = len(replay.pgets)
        disconnected = {
            "link": {"rel": "messaging", "href": _conv(2) + "/messaging"},
            "_embedded": {"messaging": _messaging(2, "Disconnected")},
            "type": "updated",
        }
        replay.release(_accepted(2, JOE, disconnected))
        await _served(replay, pgets)
        assert not invite.withdrawn
        conversation = await invite.accept()
        assert conversation.ended is ucwa_async.ConversationEndReason.DISCONNECTED
    assert len(replay.sent("POST", _inv(2) + "/accept")) == 1
