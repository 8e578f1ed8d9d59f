"""Event-channel answers shaped as Microsoft's reference describes them, scripted on the
hostile server (the simulator does not send these shapes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

import ucwa_async

from ._server import APP, BOTH_WIRES, HostileServer

LOG = APP + "/communication/conversationLogs/1"
INVITATION = APP + "/communication/invitations/1"


def _resume_batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    # EventsInUCWA.md, Resume/resynchronize: "the server will return a 'resume' link as
    # opposed to a 'next' link in the first event response after a long period of
    # inactivity".
    batch: dict[str, Any] = {
        "_links": {
            "self": {"href": APP + "/events?ack=2"},
            "resume": {"href": APP + "/events?ack=3"},
        }
    }
    if events:
        batch["sender"] = [
            {"rel": "communication", "href": APP + "/communication", "events": events}
        ]
    return batch


def _script(server: HostileServer, batch: dict[str, Any]) -> list[str]:
    """The continue POST answers 201; the next P-GET answers ``batch``; the invitation
    reads Connected only once the resume has been answered. Returns the log of what
    happened."""
    happened: list[str] = []
    queued: list[dict[str, Any]] = []

    async def continue_(request: web.Request) -> web.StreamResponse:
        queued.append(batch)
        return web.Response(status=201, headers={"Location": INVITATION})

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if queued:
            happened.append("resume")
            return server.answer(queued.pop())
        return None

    async def invitation(request: web.Request) -> web.StreamResponse | None:
        happened.append("GET invitation")
        state = "Connected" if "resume" in happened else "Connecting"
        return server.answer(
            {
                "rel": "messagingInvitation",
                "state": state,
                "_links": {"self": {"href": INVITATION}},
            }
        )

    server.hooks["continue"] = continue_
    server.hooks["pget"] = pget
    server.hooks["invitation"] = invitation
    return happened


@BOTH_WIRES
async def test_events_of_a_resume_answer_are_delivered(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    """A resume link has "the same function as next": following it acknowledges the
    batch, so the events it came with are processed (not dropped)."""
    completed = {
        "type": "completed",
        "status": "Failure",
        "reason": {"code": "RemoteFailure", "subcode": "Declined", "message": "declined"},
        "link": {"rel": "messagingInvitation", "href": INVITATION},
    }
    _script(server, _resume_batch([completed]))
    async with make_session() as session, session.events() as stream:
        log = await session.conversation_log(LOG)
        invitation = await session.continue_messaging(log, "hello")
        async with asyncio.timeout(3):
            try:
                await invitation
            except ucwa_async.InvitationFailedError as exc:
                failure = exc
            else:
                raise AssertionError("the invitation did not fail")
            seen = None
            async for item in stream:
                if isinstance(item, ucwa_async.Event) and item.type == "completed":
                    seen = item
                    break
        assert "Declined" in str(failure)
        assert seen is not None
        assert seen.link.href == INVITATION


@BOTH_WIRES
async def test_resume_rereads_pending_invitations(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    """A resume link "notifies the client that the transient state such as active
    conversations and subscriptions has been reset": what was in flight is read again
    (as after a resync), not left waiting for events that will never come."""
    happened = _script(server, _resume_batch([]))
    async with make_session() as session:
        log = await session.conversation_log(LOG)
        invitation = await session.continue_messaging(log, "hello")
        async with asyncio.timeout(3):
            result = await invitation
        assert result.state == "Connected"
        assert happened.index("resume") < happened.index("GET invitation")


@BOTH_WIRES
async def test_completed_with_only_a_reason_block_fails_with_that_reason(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    """EventChannelDetails.md: "For failed operations ..., a 'reason' block that
    describes the details of the change". A link-only completed event (as the invitation
    pages write their events) with a reason and no status: the invitation fails with the
    server's reason, not with what a GET of it says."""
    completed = {
        "link": {"rel": "messagingInvitation", "href": INVITATION},
        "reason": {"code": "RemoteFailure", "subcode": "Declined", "message": "Declined"},
        "type": "completed",
    }
    queued: list[dict[str, Any]] = []

    async def continue_(request: web.Request) -> web.StreamResponse:
        queued.append(
            {
                "_links": {"next": {"href": APP + "/events?ack=3"}},
                "sender": [
                    {
                        "rel": "communication",
                        "href": APP + "/communication",
                        "events": [completed],
                    }
                ],
            }
        )
        return web.Response(status=201, headers={"Location": INVITATION})

    async def pget(request: web.Request) -> web.StreamResponse | None:
        return server.answer(queued.pop()) if queued else None

    server.hooks["continue"] = continue_
    server.hooks["pget"] = pget
    async with make_session() as session:
        log = await session.conversation_log(LOG)
        invitation = await session.continue_messaging(log, "hello")
        async with asyncio.timeout(3):
            try:
                await invitation
            except ucwa_async.InvitationFailedError as exc:
                failure = exc
            else:
                raise AssertionError("the invitation did not fail")
    assert failure.reason is not None
    assert (failure.reason.code, failure.reason.subcode) == ("RemoteFailure", "Declined")
