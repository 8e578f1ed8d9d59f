"""A continue POST answered with the invitation in its body and no ``Location``.

continuePhoneAudio_ref.md lists "Response body: phoneAudioInvitation"; some servers answer
the documented 201 with a 200 and a body. The invitation's events on the reference's pages
are link-only, so without its href they could not be matched: the body's ``self`` link is
the href when the ``Location`` header is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

import ucwa_async

from ._server import APP, BOTH_WIRES, HostileServer, request_fields

LOG = APP + "/communication/conversationLogs/1"
INVITATION = APP + "/communication/invitations/7"


@BOTH_WIRES
@pytest.mark.parametrize("status", [200, 201])
async def test_the_body_self_link_binds_the_invitation(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session], status: int
) -> None:
    batches: list[dict[str, object]] = []

    async def continue_(request: web.Request) -> web.StreamResponse:
        sent = await request_fields(request)
        batches.append(
            {
                "_links": {"next": {"href": APP + "/events?ack=100"}},
                "sender": [
                    {
                        "rel": "communication",
                        "href": server.origin + APP + "/communication",
                        "events": [
                            {
                                "type": "completed",
                                "status": "Success",
                                "link": {
                                    "rel": "messagingInvitation",
                                    "href": server.origin + INVITATION,
                                },
                            }
                        ],
                    }
                ],
            }
        )
        return server.answer(
            {
                "rel": "messagingInvitation",
                "operationId": sent["operationId"],
                "state": "Connecting",
                "direction": "Outgoing",
                "_links": {"self": {"href": INVITATION}},
            },
            status=status,
        )

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if batches:
            return server.answer(batches.pop())
        return None

    async def invitation(request: web.Request) -> web.StreamResponse | None:
        return server.answer(
            {
                "rel": "messagingInvitation",
                "state": "Connected",
                "_links": {"self": {"href": INVITATION}},
            }
        )

    server.hooks["continue"] = continue_
    server.hooks["pget"] = pget
    server.hooks["invitation"] = invitation
    async with make_session(invitation_timeout=5.0) as session:
        handle = await session.continue_messaging(await session.conversation_log(LOG), "hi")
        assert handle.href == server.origin + INVITATION
        async with asyncio.timeout(5):
            result = await handle
        assert result.state == "Connected"


@BOTH_WIRES
async def test_a_body_for_another_operation_is_not_taken(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    async def continue_(request: web.Request) -> web.StreamResponse:
        return server.answer(
            {
                "rel": "messagingInvitation",
                "operationId": "someone-else",
                "_links": {"self": {"href": INVITATION}},
            },
            status=201,
        )

    server.hooks["continue"] = continue_
    async with make_session(invitation_timeout=0.5) as session:
        handle = await session.continue_messaging(await session.conversation_log(LOG))
        assert handle.href is None
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await handle
