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
from .test_reference_flows import (
    LOG,
    LOGS,
    V,
    _application,
    _batch,
    _body,
    _invitation_resource,
    _log,
    _session,
)

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


async def _continue(
    session: ucwa_async.Session, rel: str, log: ucwa_async.ConversationLog | str
) -> ucwa_async.Invitation[Any]:
    if rel == "continueMessaging":
        return await session.continue_messaging(log, "Following up")
    return await session.continue_phone_audio(log, "tel:+14255551234")


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

    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            (log,) = await session.conversation_logs()
            for target in (log, log.href):
                with pytest.raises(ucwa_async.UnsupportedModalityError) as info:
                    await _continue(session, rel, target)
                assert rel in str(info.value)
                assert log.href in str(info.value)
            replay.route("GET", LOG, (404, {"code": "NotFound", "message": "Gone."}, {}))
            with pytest.raises(ucwa_async.NotFoundError) as gone:
                await _continue(session, rel, log.href)
            assert (gone.value.status, gone.value.code) == (404, "NotFound")
            assert session.pending_invitations == 0
    assert [r.path for r in replay.requests if r.method == "POST" and "/continue" in r.path] == []


# continueMessaging_ref.md and continuePhoneAudio_ref.md, "Synchronous errors" (the same
# table on both pages), each with its message, as ErrorsAndInformationalMessages.md writes
# an error body in either wire.
_ERRORS = [
    (500, "ServiceFailure", "CallbackChannelError", "The remote event channel is not reachable"),
    (409, "Conflict", "AlreadyExists", "The already exists error."),
    (409, "Conflict", "TooManyGroups", "The too many groups error."),
    (409, "Conflict", None, "Un-supported Service/Resource/API error."),
    (410, "Gone", "CannotRedirect", "Cannot redirect since there is no back up pool configured."),
]
_TYPES: dict[str | None, type[ucwa_async.ResponseError]] = {
    "CallbackChannelError": ucwa_async.CallbackChannelError,
    "AlreadyExists": ucwa_async.AlreadyExistsError,
    "TooManyGroups": ucwa_async.TooManyGroupsError,
    None: ucwa_async.ConflictError,
    "CannotRedirect": ucwa_async.ResponseError,
}


@pytest.mark.parametrize("rel", ["continueMessaging", "continuePhoneAudio"])
@pytest.mark.parametrize(("status", "code", "subcode", "message"), _ERRORS)
async def test_the_error_tables(
    server: HostileServer,
    wire: str,
    rel: str,
    status: int,
    code: str,
    subcode: str | None,
    message: str,
) -> None:
    """Each error of the pages' tables is its typed error with the server's reason, and
    leaves nothing pending (CallbackChannelError: after its one reconnect-and-retry)."""
    replay = _replay(server, wire)
    error = {"code": code, "message": message} | ({"subcode": subcode} if subcode else {})
    replay.route("POST", LOG + "/" + rel, (status, error, {}))
    async with _session(server, wire, available_for=(), max_callback_retries=1) as session:
        async with asyncio.timeout(10):
            (log,) = await session.conversation_logs()
            with pytest.raises(ucwa_async.ResponseError) as info:
                await _continue(session, rel, log)
        assert type(info.value) is _TYPES[subcode]
        caught = info.value
        assert (caught.status, caught.code, caught.subcode, caught.message) == (
            status,
            code,
            subcode,
            message,
        )
        assert session.pending_invitations == 0
    retried = 2 if subcode == "CallbackChannelError" else 1
    assert len(replay.sent("POST", LOG + "/" + rel)) == retried
    assert replay.unexpected == []


async def test_many_continues_at_once(server: HostileServer, wire: str) -> None:
    """Several continues of one log and of another at once, each answered by the seeds'
    ``//v1/`` Location and the invitation pages' link-only events (absolute hrefs), some
    before their 201: each invitation ends once, with its own outcome."""
    replay = _replay(server, wire)
    replay.link_only = True  # the events' resources are what a GET of them answers
    listing = {"rel": "conversationLogs", "_links": {"self": {"href": LOGS}}}
    listing["_links"]["conversationLog"] = [{"href": LOG}, {"href": LOG2}]
    replay.route("GET", LOGS, ok(listing))
    replay.route("GET", LOG2, ok(_second_log()))
    numbers = iter(range(700, 800))
    outcomes: dict[str, str] = {}  # operationId -> the final state the server gives it

    def post(rel: str) -> Any:
        def answer(request: Any) -> Any:
            n = next(numbers)
            operation_id = _body(request, wire)["operationId"]
            final = "Connected" if n % 3 else "Failed"
            outcomes[operation_id] = final
            href = f"{V}/communication/invitations/{n}"
            events = [("started", "Connecting"), ("completed", final)]
            for kind, state in events:
                resource = _invitation_resource(rel, n, operation_id, state)
                extra: dict[str, Any] = {"_embedded": {rel: resource}}
                if kind == "completed":
                    extra["status"] = "Success" if final == "Connected" else "Failure"
                    if final == "Failed":
                        extra["reason"] = {"code": "RemoteFailure", "subcode": "Declined"}
                event = {"link": {"rel": rel, "href": href}, "type": kind, **extra}
                replay.release(_batch(("communication", V + "/communication", [event])))
            return created(f"//v1/applications/833/communication/invitations/{n}")

        return answer

    for log in (LOG, LOG2):
        replay.route("POST", log + "/continueMessaging", post("messagingInvitation"))
        replay.route("POST", log + "/continuePhoneAudio", post("phoneAudioInvitation"))
    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(15):
            first, second = await session.conversation_logs()
            starts = [
                _continue(session, rel, log)
                for log in (first, second, first.href)
                for rel in ("continueMessaging", "continuePhoneAudio", "continueMessaging")
            ]
            invitations = await asyncio.gather(*starts)
            results = await asyncio.gather(*invitations, return_exceptions=True)
        assert session.pending_invitations == 0
    assert len({i.href for i in invitations}) == len(invitations) == 9
    for invitation, result in zip(invitations, results, strict=True):
        if outcomes[invitation.operation_id] == "Connected":
            assert not isinstance(result, BaseException), result
            assert result.state == "Connected"
            assert result.operation_id == invitation.operation_id
        else:
            assert isinstance(result, ucwa_async.InvitationFailedError)
            assert result.reason is not None
            assert (result.reason.code, result.reason.subcode) == ("RemoteFailure", "Declined")
    assert len(replay.sent("POST", LOG + "/continueMessaging")) == 4
    assert len(replay.sent("POST", LOG2 + "/continuePhoneAudio")) == 1


async def test_a_log_deleted_since_the_listing_is_left_out(
    server: HostileServer, wire: str
) -> None:
    """conversationLog_ref.md has a DELETE ("Removes the past conversation instance"): a log
    removed between the listing and its read answers 404 and is left out; the others are
    listed. The application's own loss (404 ApplicationNotFound) still fails the call."""
    replay = _replay(server, wire)
    listing: dict[str, Any] = {"rel": "conversationLogs", "_links": {"self": {"href": LOGS}}}
    listing["_links"]["conversationLog"] = [{"href": LOG}, {"href": LOG2}]
    replay.route("GET", LOGS, ok(listing))
    replay.route("GET", LOG, (404, {"code": "NotFound", "message": "Gone."}, {}))
    replay.route("GET", LOG2, ok(_second_log()))
    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            logs = await session.conversation_logs()
            assert [log.subject for log in logs] == ["The second one."]
            replay.route("GET", LOG, (404, {"code": "NotFound", "message": "Gone."}, {}))
            replay.route(
                "GET",
                LOG2,
                (404, {"code": "NotFound", "subcode": "ApplicationNotFound", "message": "x"}, {}),
            )
            with pytest.raises(ucwa_async.ApplicationNotFoundError):
                await session.conversation_logs()


async def test_a_log_s_recipients(server: HostileServer, wire: str) -> None:
    """conversationLog_ref.md embeds its conversationLogRecipient resources (displayName,
    sipUri: conversationLogRecipient_ref.md): ``ConversationLog.recipients`` gives them, in
    either wire, so a bot can choose whom to follow up without reading properties."""
    replay = _replay(server, wire)
    body = _log()
    recipient = body["_embedded"]["conversationLogRecipient"][0]
    second = dict(recipient, displayName="Lene Aaland", sipUri="sip:lenea@contoso.com")
    second["_links"] = {"self": {"href": LOG + "/conversationLogRecipient/2"}}
    body["_embedded"]["conversationLogRecipient"] = [recipient, second, {"rel": recipient["rel"]}]
    replay.route("GET", LOG, ok(body))
    async with _session(server, wire, available_for=()) as session:
        async with asyncio.timeout(10):
            (log,) = await session.conversation_logs()
    assert log.recipients == (
        ucwa_async.ConversationLogRecipient(
            "samplevalue", "samplevalue", LOG + "/conversationLogRecipient"
        ),
        ucwa_async.ConversationLogRecipient(
            "Lene Aaland", "sip:lenea@contoso.com", LOG + "/conversationLogRecipient/2"
        ),
        ucwa_async.ConversationLogRecipient(None, None, None),
    )
