"""The conversationLog pages (conversationLogs_ref, conversationLog_ref, continueMessaging_ref,
continuePhoneAudio_ref) through the public API, in both wires: the listing's shapes, the
continue POSTs' error tables, a log that offers no continue link. The seeds' replay itself
is tests/hostile/test_reference_flows.py; this reuses its bodies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ucwa_async

from ._replay import Replay, created, no_content, ok
from ._server import HostileServer
from .test_reference_flows import LOG, LOGS, V, _application, _log, _session

pytestmark = pytest.mark.parametrize("wire", ["json", "xml"])

LOG2 = LOGS + "/conversationLog2"


def _replay(server: HostileServer, wire: str) -> Replay:
    """conversationLogs_ref.md's listing (one log) and conversationLog_ref.md's log."""
    replay = Replay(
        server, wire, V, _application(V, {"conversationLogs": "/communication/conversationLogs"})
    )
    replay.install()
    replay.route("POST", V + "/me/makeMeAvailable", no_content())
    replay.route("DELETE", V, no_content())
    listing = {"rel": "conversationLogs", "_links": {"self": {"href": LOGS}}}
    listing["_links"]["conversationLog"] = [{"href": LOG}]
    replay.route("GET", LOGS, ok(listing))
    replay.route("GET", LOG, ok(_log()))
    return replay


def _second_log(prefix: str = "") -> dict[str, Any]:
    body = _log()
    for link in body["_links"].values():
        link["href"] = prefix + link["href"].replace(LOG, LOG2)
    body["subject"] = "The second one."
    return body


@pytest.mark.parametrize("shape", ["embedded-only", "linked-and-embedded", "absolute-links"])
async def test_listing_shapes(server: HostileServer, wire: str, shape: str) -> None:
    """PayloadFormat.md: "A resource can not only point to other resources with links, but it
    can include the complete contents of the target resource" (in XML, a nested
    ``<resource rel="conversationLog" href>``). A listing that embeds its logs without
    linking them lists them all the same, and sends no GET of them."""
    replay = _replay(server, wire)
    origin = server.origin
    listing: dict[str, Any] = {"rel": "conversationLogs", "_links": {"self": {"href": LOGS}}}
    if shape == "embedded-only":
        listing["_embedded"] = {"conversationLog": [_log(), _second_log()]}
    elif shape == "linked-and-embedded":
        listing["_links"]["conversationLog"] = [{"href": LOG}, {"href": LOG2}]
        listing["_embedded"] = {"conversationLog": [_log(), _second_log()]}
    else:
        listing["_links"]["conversationLog"] = [{"href": origin + LOG}, {"href": origin + LOG2}]
        replay.route("GET", LOG2, ok(_second_log(origin)))
    replay.route("GET", LOGS, ok(listing))
    replay.route("POST", LOG2 + "/continueMessaging", created(V + "/communication/invitations/9"))
    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            logs = await session.conversation_logs()
            assert [log.subject for log in logs] == ["Conversation with xxx.", "The second one."]
            assert [log.href for log in logs] == [origin + LOG, origin + LOG2]
            assert (await session.conversation_logs(limit=1))[0].href == origin + LOG
            invitation = await session.continue_messaging(logs[1], "Following up")
            assert invitation.href == origin + V + "/communication/invitations/9"
            invitation.cancel()
    fetched = [r.path for r in replay.requests if r.method == "GET" and r.path.startswith(LOG)]
    assert fetched == ([] if shape != "absolute-links" else [LOG, LOG2, LOG])
    assert len(replay.sent("POST", LOG2 + "/continueMessaging")) == 1


@pytest.mark.parametrize("rel", ["continueMessaging", "continuePhoneAudio"])
async def test_a_log_without_its_continue_link(server: HostileServer, wire: str, rel: str) -> None:
    """conversationLog_ref.md lists continueMessaging and continuePhoneAudio among the links
    a log *can* have: without one (a log that cannot be continued that way, or one the
    server let expire), the continue is refused by a typed error before any POST. A log
    deleted since (DELETE in conversationLog_ref.md), given by its href: the server's 404."""
    replay = _replay(server, wire)
    body = _log()
    del body["_links"][rel]
    replay.route("GET", LOG, ok(body))

    async def go(session: ucwa_async.Session, log: ucwa_async.ConversationLog | str) -> Any:
        if rel == "continueMessaging":
            return await session.continue_messaging(log, "Following up")
        return await session.continue_phone_audio(log, "tel:+14255551234")

    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            (log,) = await session.conversation_logs()
            for target in (log, log.href):
                with pytest.raises(ucwa_async.UnsupportedModalityError) as info:
                    await go(session, target)
                assert rel in str(info.value)
                assert log.href in str(info.value)
            replay.route("GET", LOG, (404, {"code": "NotFound", "message": "Gone."}, {}))
            with pytest.raises(ucwa_async.NotFoundError) as gone:
                await go(session, log.href)
            assert (gone.value.status, gone.value.code) == (404, "NotFound")
            assert session.pending_invitations == 0
    assert [r.path for r in replay.requests if r.method == "POST" and "/continue" in r.path] == []
