"""Hostile hrefs from the server: the Authorization header never leaves the session's origin.

The ``recorder`` fixture (another origin on 127.0.0.1) asserts at teardown that it never
received an Authorization header; each test also checks what was (not) requested.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from aiohttp import web

import ucwa_async
from ucwa_async._core.errors import UcwaError, UnsafeHrefError

from ._server import APP, BOTH_WIRES, TOKEN, HostileServer, Recorder

LOG = APP + "/communication/conversationLogs/1"


def hostile_hrefs(server: HostileServer, recorder: Recorder) -> dict[str, str]:
    return {
        "other-host": recorder.origin + "/steal",
        "network-path": f"//127.0.0.1:{recorder.port}/steal",
        "javascript": "javascript:alert(document.cookie)",
        "file": "file:///etc/passwd",
        "data": "data:text/plain;base64,QUJD",
        "userinfo-same-host": f"http://user:pw@127.0.0.1:{server.port}{LOG}",
        "userinfo-other-host": f"http://{TOKEN}@127.0.0.1:{recorder.port}/x",
        "dot-segments": APP + "/../../../../../../etc/passwd",
        "encoded-dot-segments": APP + "/%2e%2e/%2e%2e/%2e%2e/other",
        "crlf": APP + "/x\r\nAuthorization: stolen",
    }


def assert_token_stays_home(server: HostileServer, recorder: Recorder) -> None:
    for seen in server.seen:
        if seen.authorization:
            assert seen.url.startswith(server.origin + "/"), seen
    assert [s for s in recorder.seen if s.authorization] == []


@BOTH_WIRES
async def test_hostile_log_hrefs_in_a_listing(
    server: HostileServer,
    recorder: Recorder,
    make_session: Callable[..., ucwa_async.Session],
    no_leftover_tasks: Callable[[], None],
) -> None:
    current: dict[str, str] = {}

    async def logs(request: web.Request) -> web.StreamResponse:
        return server.answer({"_links": {"conversationLog": [{"href": current["href"]}]}})

    server.hooks["logs"] = logs
    outcomes: dict[str, str] = {}
    async with make_session() as session:
        for name, href in hostile_hrefs(server, recorder).items():
            current["href"] = href
            try:
                result = await session.conversation_logs()
                outcomes[name] = f"ok:{len(result)}"
            except UcwaError as exc:  # only typed errors, never a crash
                outcomes[name] = type(exc).__name__
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    for name in ("javascript", "file", "data", "userinfo-same-host", "userinfo-other-host"):
        assert outcomes[name] == "UnsafeHrefError", (name, outcomes)
    assert outcomes["crlf"] == "UnsafeHrefError", outcomes
    # Hrefs the server names are followed on the application's origin only.
    assert outcomes["other-host"] == outcomes["network-path"] == "UnsafeHrefError", outcomes
    assert recorder.seen == []
    # Dot segments stay on the session's own origin (normalised by the URL layer).
    assert any(s.url == server.origin + "/etc/passwd" for s in server.seen), outcomes
    assert_token_stays_home(server, recorder)
    no_leftover_tasks()


@BOTH_WIRES
async def test_hostile_continue_links(
    server: HostileServer,
    recorder: Recorder,
    make_session: Callable[..., ucwa_async.Session],
) -> None:
    outcomes: dict[str, str] = {}
    async with make_session(invitation_timeout=1.0) as session:
        for name, href in hostile_hrefs(server, recorder).items():
            server.log_links["continueMessaging"] = href
            log = await session.conversation_log(LOG)
            try:
                await session.continue_messaging(log, "hi")
            except UcwaError as exc:
                outcomes[name] = type(exc).__name__
                continue
            # Accepted by the server (its own origin): ends with the session.
            assert name in ("dot-segments", "encoded-dot-segments")
    # The first message's text goes to the application's origin only.
    assert outcomes["other-host"] == outcomes["network-path"] == "UnsafeHrefError", outcomes
    assert recorder.seen == []
    assert_token_stays_home(server, recorder)


@BOTH_WIRES
async def test_hostile_location_and_event_hrefs(
    server: HostileServer,
    recorder: Recorder,
    make_session: Callable[..., ucwa_async.Session],
    no_leftover_tasks: Callable[[], None],
) -> None:
    """201 Location on another host, then a link-only completed event for it: the session
    does not GET the invitation there (hrefs the server names are followed on the
    application's origin only); the completed Success stands. Events with hostile hrefs
    are dropped and the channel carries on."""
    location = recorder.origin + "/ucwa/oauth/v1/applications/1/communication/invitations/9"
    hostile = hostile_hrefs(server, recorder)
    batches: list[dict[str, object]] = []

    async def continue_(request: web.Request) -> web.StreamResponse:
        events = [
            {"type": "completed", "status": "Success", "link": {"rel": "x", "href": h}}
            for h in hostile.values()
        ]
        events.append(
            {"type": "completed", "status": "Success", "link": {"rel": "x", "href": location}}
        )
        batches.append(
            {
                "_links": {"next": {"href": APP + "/events?ack=100"}},
                "sender": [
                    {"rel": "communication", "href": APP + "/communication", "events": events}
                ],
            }
        )
        return web.Response(status=201, headers={"Location": location})

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if batches:
            return server.answer(batches.pop())
        return None

    server.hooks["continue"] = continue_
    server.hooks["pget"] = pget
    async with make_session() as session:
        log = await session.conversation_log(LOG)
        invitation = await session.continue_messaging(log, "hello")
        async with asyncio.timeout(5):
            result = await invitation
        assert result.state == "Connected"
        assert invitation.href == location
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert recorder.seen == []
    assert_token_stays_home(server, recorder)
    no_leftover_tasks()


@pytest.mark.parametrize(
    "location",
    ["javascript:alert(1)", "file:///etc/passwd", "http://u:p@127.0.0.1:1/x", "\r\nX: y"],
)
async def test_unsafe_location_is_ignored_not_fatal(
    server: HostileServer,
    make_session: Callable[..., ucwa_async.Session],
    location: str,
) -> None:
    async def continue_(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=201)
        response.headers["Location"] = location.replace("\r\n", "")
        return response

    server.hooks["continue"] = continue_
    async with make_session(invitation_timeout=0.5) as session:
        invitation = await session.continue_messaging(await session.conversation_log(LOG))
        assert invitation.href is None  # correlated by operationId only
        with pytest.raises(ucwa_async.InvitationTimeoutError):
            await invitation


async def test_same_location_twice_does_not_crash_the_caller(
    server: HostileServer, make_session: Callable[..., ucwa_async.Session]
) -> None:
    async with make_session(invitation_timeout=0.5) as session:
        log = await session.conversation_log(LOG)
        first = await session.continue_messaging(log, "one")
        second = await session.continue_messaging(log, "two")  # the same Location again
        assert first.href == second.href
        for invitation in (first, second):
            with pytest.raises(ucwa_async.InvitationTimeoutError):
                await invitation


@BOTH_WIRES
async def test_next_link_to_another_host_is_polled_without_token(
    server: HostileServer,
    recorder: Recorder,
    make_session: Callable[..., ucwa_async.Session],
) -> None:
    sent = {"n": 0}

    async def pget(request: web.Request) -> web.StreamResponse | None:
        if sent["n"] == 0:
            sent["n"] += 1
            return server.answer({"_links": {"next": {"href": recorder.origin + "/events?ack=7"}}})
        return None

    server.hooks["pget"] = pget
    async with make_session() as session:
        async with asyncio.timeout(5):
            while not recorder.seen:  # noqa: ASYNC110 - polling another process's state
                await asyncio.sleep(0.02)
        assert session.channel_state is not ucwa_async.ChannelStatus.CLOSED
    assert recorder.seen[0].url.startswith(recorder.origin + "/events?ack=7")
    assert_token_stays_home(server, recorder)


def test_resolver_refuses_the_hostile_schemes() -> None:
    from ucwa_async._core.urls import resolve_href

    base = "https://fe1.contoso.com/ucwa/oauth/v1/applications/1"
    for href in ("javascript:x", "file:///etc/passwd", "data:,x", "https://a:b@h/x", "a\nb"):
        with pytest.raises(UnsafeHrefError):
            resolve_href(href, base_url=base)
    assert (
        json.dumps(resolve_href("../../x", base_url=base))
        == '"https://fe1.contoso.com/ucwa/oauth/x"'
    )


@BOTH_WIRES
async def test_failing_log_in_a_listing_raises_a_typed_error(
    server: HostileServer,
    make_session: Callable[..., ucwa_async.Session],
    no_leftover_tasks: Callable[[], None],
) -> None:
    """One log of a listing fails: a UcwaError (not an ExceptionGroup), and the caller's
    task is not left marked as cancelling (a TaskGroup does that on Python 3.11)."""

    async def logs(request: web.Request) -> web.StreamResponse:
        links = [{"href": LOG}, {"href": "/failing"}, {"href": LOG + "?again=1"}]
        return server.answer({"_links": {"conversationLog": links}})

    async def failing(request: web.Request) -> web.StreamResponse | None:
        if request.path != "/failing":
            return None
        return server.answer({"code": "Forbidden", "message": "no"}, status=403)

    server.hooks["logs"] = logs
    server.hooks["other"] = failing
    async with make_session() as session:
        with pytest.raises(ucwa_async.ResponseError) as caught:
            await session.conversation_logs()
        assert caught.value.status == 403
        current = asyncio.current_task()
        assert current is not None
        assert current.cancelling() == 0
    no_leftover_tasks()


@BOTH_WIRES
async def test_cancel_does_not_read_an_invitation_on_another_origin(
    server: HostileServer,
    recorder: Recorder,
    make_session: Callable[..., ucwa_async.Session],
) -> None:
    """No event gave the cancel link: cancel() would read the invitation for it, but its
    201 Location names another origin: refused (UnsafeHrefError), nothing sent there."""
    location = recorder.origin + APP + "/communication/invitations/9"

    async def continue_(request: web.Request) -> web.StreamResponse:
        return web.Response(status=201, headers={"Location": location})

    server.hooks["continue"] = continue_
    async with make_session(invitation_timeout=2.0) as session:
        invitation = await session.continue_messaging(await session.conversation_log(LOG))
        assert invitation.href == location
        assert invitation.cancel()
        with pytest.raises(UnsafeHrefError):
            await invitation.cancel_outcome()
        assert session.channel_state is ucwa_async.ChannelStatus.CONNECTED
    assert recorder.seen == []
