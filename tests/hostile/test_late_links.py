"""Links of ``communication`` that its embedded copy in the application's 201 lacks.

CreateAnApplication.md's 201 embeds a ``communication`` with no ``conversationLogs`` link;
communication_ref.md: the communication resource is "updated ... after the application
invokes makeMeAvailable". A link missing from the copy the session holds is looked up in
a fresh read of ``communication`` before the session gives up.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web

import ucwa_async

from ._server import APP, BOTH_WIRES, Hook, HostileServer

COMMUNICATION = APP + "/communication"


def _lurker_application(server: HostileServer) -> Hook:
    async def create(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Authorization") is None:
            return None
        communication = {
            "rel": "communication",
            "supportedModalities": [],
            "supportedMessageFormats": ["Plain"],
            "_links": {
                "self": {"href": COMMUNICATION},
                "conversations": {"href": COMMUNICATION + "/conversations?filter=active"},
                "startMessaging": {"href": COMMUNICATION + "/messagingInvitations"},
            },
        }
        me = {
            "rel": "me",
            "_links": {
                "self": {"href": APP + "/me"},
                "makeMeAvailable": {"href": COMMUNICATION + "/makeMeAvailable"},
            },
        }
        return server.answer(
            {
                "rel": "application",
                "_links": {"self": {"href": APP}, "events": {"href": APP + "/events?ack=1"}},
                "_embedded": {"communication": communication, "me": me},
            },
            status=201,
        )

    return create


@BOTH_WIRES
async def test_conversation_logs_link_added_after_make_me_available(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    reads: list[str] = []

    async def communication(request: web.Request) -> web.StreamResponse | None:
        if request.path != COMMUNICATION:
            return None
        reads.append(request.path)
        return server.answer(
            {
                "rel": "communication",
                "_links": {
                    "self": {"href": COMMUNICATION},
                    "conversationLogs": {"href": COMMUNICATION + "/conversationLogs"},
                },
            }
        )

    server.hooks["applications"] = _lurker_application(server)
    server.hooks["other"] = communication
    async with make_session() as session:
        logs = await session.conversation_logs()
        assert [log.subject for log in logs] == ["hostile"]
        assert len(await session.conversation_logs()) == 1
    assert reads == [COMMUNICATION]  # read once, then kept


@BOTH_WIRES
async def test_a_link_communication_never_offers_is_still_a_clear_error(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    async def communication(request: web.Request) -> web.StreamResponse | None:
        if request.path != COMMUNICATION:
            return None
        return server.answer({"rel": "communication", "_links": {"self": {"href": COMMUNICATION}}})

    server.hooks["applications"] = _lurker_application(server)
    server.hooks["other"] = communication
    async with make_session() as session:
        with pytest.raises(ucwa_async.UcwaError, match="conversationLogs"):
            await session.conversation_logs()
