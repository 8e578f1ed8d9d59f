"""Security: where the Authorization header goes, hostile hrefs, secrets in logs and reprs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

import ucwa_async
from ucwa_async.testing import UcwaSimulator

SessionFactory = Callable[..., ucwa_async.Session]


class ForeignServer:
    """A tiny server on another origin that records what it was sent and answers 404."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {"method": request.method, "path": request.path, "headers": dict(request.headers)}
        )
        return web.Response(status=404, text="nothing here", content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def foreign() -> AsyncIterator[ForeignServer]:
    server = ForeignServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_authorization_never_sent_to_another_origin(
    simulator: UcwaSimulator, make_session: SessionFactory, foreign: ForeignServer
) -> None:
    assert foreign.port != simulator.port
    async with make_session(simulator) as session:
        with pytest.raises(ucwa_async.ResponseError) as caught:
            await session.conversation_log(foreign.url("/x"))
        assert caught.value.status == 404
        with pytest.raises(ucwa_async.ResponseError):
            await session.continue_messaging(foreign.url("/log/1"), message="hi")
        # The session still works on its own origin, with its token.
        assert len(await session.conversation_logs()) == 3
    assert [r["path"] for r in foreign.requests] == ["/x", "/log/1"]
    for request in foreign.requests:
        headers = {k.lower() for k in request["headers"]}
        assert "authorization" not in headers, request
    # ...while every request to the simulator after sign-in carried it.
    own = [r for r in simulator.request_log if r.kind in ("conversationLogs", "conversationLog")]
    assert own
    assert all(r.authorized for r in own)


async def test_same_host_other_port_is_another_origin(
    simulator: UcwaSimulator, make_session: SessionFactory, foreign: ForeignServer
) -> None:
    # Same host name as the simulator, and an href the *server* could hand out: still
    # no token, because the origin (scheme, host, port) differs.
    async with make_session(simulator) as session:
        url = f"http://127.0.0.1:{foreign.port}/ucwa/oauth/v1/applications/833"
        with pytest.raises(ucwa_async.UcwaError):
            await session.conversation_log(url)
    assert len(foreign.requests) == 1
    assert "Authorization" not in foreign.requests[0]["headers"]


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/plain;base64,aGk=",
        "ftp://127.0.0.1/x",
        "http://user:pw@127.0.0.1:{port}/x",
        "http://user@127.0.0.1:{port}/x",
        "http://127.0.0.1:{port}/x\r\nX-Injected: 1",
    ],
)
async def test_hostile_hrefs_are_refused_and_nothing_sent(
    simulator: UcwaSimulator, make_session: SessionFactory, foreign: ForeignServer, href: str
) -> None:
    href = href.format(port=foreign.port)
    async with make_session(simulator) as session:
        before = len(simulator.request_log)
        with pytest.raises(ucwa_async.UnsafeHrefError) as caught:
            await session.conversation_log(href)
        assert isinstance(caught.value, ucwa_async.UcwaError)
        assert isinstance(caught.value, ValueError)
        with pytest.raises(ucwa_async.UnsafeHrefError):
            await session.continue_messaging(href, message="hi")
        with pytest.raises(ucwa_async.UnsafeHrefError):
            await session.continue_phone_audio(href, phone_number="tel:+14255551234")
        assert len(simulator.request_log) == before
    assert foreign.requests == []


async def test_secrets_never_in_logs_reprs_or_errors(
    simulator: UcwaSimulator,
    make_session: SessionFactory,
    caplog: pytest.LogCaptureFixture,
    foreign: ForeignServer,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ucwa_async")
    password = simulator.password
    session = make_session(simulator, keepalive_interval=0.1)
    auth = session._auth
    assert isinstance(auth, ucwa_async.PasswordAuth)
    assert auth.password == password
    tokens: set[str] = set()
    texts: list[str] = []

    def remember_tokens() -> None:
        for value in session._transport.tokens.values():
            tokens.add(value)
            tokens.add(value.split(" ", 1)[-1])  # the raw "cwt=..." part too

    async with session:
        remember_tokens()
        texts.append(repr(session))
        texts.append(str(session))
        logs = await session.conversation_logs()
        invitation = await session.continue_messaging(logs[0], message="Following up")
        texts.append(repr(invitation))
        final = await invitation
        texts.append(repr(final))
        call = await session.continue_phone_audio(logs[1], phone_number="tel:+14255551234")
        await call
        # Force a re-authentication: a second token and a second password grant.
        simulator.faults.expire_tokens()
        await session.conversation_logs(limit=1)
        remember_tokens()
        # Errors of several kinds, with the session's state at its richest.
        for action in (
            session.conversation_log(foreign.url("/x")),
            session.conversation_log("javascript:alert(1)"),
            session.conversation_log(simulator.url("/nope")),
        ):
            try:
                await action
            except ucwa_async.UcwaError as exc:
                texts.extend([str(exc), repr(exc), repr(exc.args)])
            else:  # pragma: no cover
                pytest.fail("expected an error")
        await session.wait_connected(timeout=5)
        texts.append(repr(session))
        texts.append(repr(session.stats))
    remember_tokens()
    texts.append(repr(session))
    texts.append(repr(auth))
    texts.append(str(auth))
    # A refused password grant's error, too.
    bad = ucwa_async.Session(
        simulator.discovery_url,
        auth=ucwa_async.PasswordAuth(simulator.username, password + "-wrong"),
        wire_format=session.wire_format,
        keepalive_interval=None,
    )
    try:
        await bad.open()
    except ucwa_async.AuthenticationError as exc:
        texts.extend([str(exc), repr(exc)])
    else:  # pragma: no cover
        pytest.fail("expected AuthenticationError")
    texts.append(repr(bad))

    assert simulator.counters.tokens_issued == 2
    assert len(tokens) == 4, "expected two tokens, with and without the Bearer prefix"
    # The tokens we look for are the ones the server issued (valid and revoked).
    issued = set(simulator._world.tokens) | set(simulator._world.revoked)
    assert issued
    assert issued <= tokens
    assert caplog.records, "the session logged nothing at DEBUG"
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    secrets = [password, password + "-wrong", *tokens]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]!r}"
    assert "***" in repr(auth)
