"""A small, scriptable, *hostile* UCWA server (aiohttp.web on 127.0.0.1) and a recorder.

The simulator plays by the rules; this one lets a test decide, route by route, what
the server answers: hostile hrefs, hostile XML, huge bodies. ``Recorder`` is a second
origin (another port) that records every request it receives with its headers: the
place a leaked ``Authorization`` header would show up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

TOKEN = "cwt=hostile-test-token-6f1c2a"
PASSWORD = "hostile-P@ss"
USER = "mallory@contoso.com"
APP = "/ucwa/oauth/v1/applications/1"
JSON = "application/json"
XML = "application/vnd.microsoft.com.ucwa+xml"

BOTH_WIRES = pytest.mark.parametrize("hostile_wire", ["json", "xml"])
"""Runs a test against the ``server`` fixture in each wire (it is JSON unless told)."""

Hook = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


async def request_fields(request: web.Request) -> dict[str, Any]:
    """The properties of a request body in either wire (JSON, or PayloadFormat.md's
    ``<input>`` of ``<property>`` elements), read here, not by the client."""
    body = await request.read()
    if request.content_type.endswith("json"):
        return dict(json.loads(body))
    import xml.etree.ElementTree as ET

    ns = "{http://schemas.microsoft.com/rtc/2012/03/ucwa}"
    root = ET.fromstring(body)
    assert root.tag == ns + "input", root.tag
    return {c.get("name", ""): c.text for c in root if c.tag == ns + "property"}


@dataclass
class Seen:
    method: str
    url: str
    authorization: str | None


@dataclass
class HostileServer:
    """Routes a normal sign-in; ``hooks[name]`` overrides one route (return None: default).

    Hook names: ``pget``, ``logs`` (the conversationLogs listing), ``log`` (one log),
    ``continue`` (the continue POST), ``invitation`` (GET of an invitation), ``any``
    (before every route, e.g. to answer something else entirely).
    """

    wire: str = "json"
    """What ``answer`` (and every default route but the OAuth token's) writes: ``json``, or
    ``xml`` as the reference's XML samples write it (``_replay.xml_document``)."""
    hooks: dict[str, Hook] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    log_links: dict[str, str] = field(default_factory=dict)
    """Extra links of the conversationLog resource (rel -> href)."""
    port: int = 0
    _runner: web.AppRunner | None = None
    _ack: int = 1

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return self.origin + "/autodiscover"

    async def start(self) -> None:
        app = web.Application()
        r = app.router
        r.add_get("/autodiscover", self._wrap("discovery", self._discovery))
        r.add_get("/user", self._wrap("user", self._user))
        r.add_post("/token", self._wrap("token", self._token))
        r.add_post("/ucwa/oauth/v1/applications", self._wrap("applications", self._create))
        r.add_delete(APP, self._wrap("delete", self._no_content))
        r.add_post(APP + "/communication/makeMeAvailable", self._wrap("mma", self._no_content))
        r.add_get(APP + "/events", self._wrap("pget", self._pget))
        r.add_get(APP + "/communication/conversationLogs", self._wrap("logs", self._logs))
        r.add_get(APP + "/communication/conversationLogs/1", self._wrap("log", self._log))
        r.add_post(
            APP + "/communication/conversationLogs/1/continueMessaging",
            self._wrap("continue", self._continue),
        )
        r.add_get(
            APP + "/communication/invitations/{n}", self._wrap("invitation", self._invitation)
        )
        r.add_route("*", "/{tail:.*}", self._wrap("other", self._not_found))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing --------------------------------------------------------------------

    def _wrap(
        self, name: str, default: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.seen.append(
                Seen(request.method, str(request.url), request.headers.get("Authorization"))
            )
            for key in ("any", name):
                hook = self.hooks.get(key)
                if hook is not None:
                    answer = await hook(request)
                    if answer is not None:
                        return answer
            return await default(request)

        return handler

    @staticmethod
    def json(data: Any, status: int = 200, **headers: str) -> web.Response:
        return web.Response(
            status=status, body=json.dumps(data).encode(), content_type=JSON, headers=headers
        )

    def answer(self, data: Any, status: int = 200, **headers: str) -> web.Response:
        """``data`` (the JSON shape) in the server's wire."""
        if self.wire != "xml":
            return self.json(data, status, **headers)
        from ._replay import xml_document  # (it imports this module)

        # The type the reference's XML response samples show (message_ref.md...): the
        # simulator and the Replay harness answer the precise vnd.microsoft.com.ucwa+xml.
        return web.Response(
            status=status,
            body=xml_document(data).encode(),
            headers={**headers, "Content-Type": "application/xml; charset=utf-8"},
        )

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    # -- default routes ----------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.StreamResponse:
        return self.answer({"rel": "root", "_links": {"user": {"href": self.origin + "/user"}}})

    async def _user(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            challenge = f'MsRtcOAuth href="{self.origin}/token",grant_type="password"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return self.answer(
            {"rel": "user", "_links": {"applications": {"href": "/ucwa/oauth/v1/applications"}}}
        )

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("password") != PASSWORD:
            return self.json({"error": "invalid_grant"}, status=400)
        return self.json({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401)
        communication = {
            "rel": "communication",
            "_links": {
                "self": {"href": APP + "/communication"},
                "conversationLogs": {"href": APP + "/communication/conversationLogs"},
                "makeMeAvailable": {"href": APP + "/communication/makeMeAvailable"},
            },
        }
        return self.answer(
            {
                "rel": "application",
                "_links": {
                    "self": {"href": APP},
                    "events": {"href": APP + "/events?ack=1"},
                },
                "_embedded": {"communication": communication, "me": {"rel": "me"}},
            },
            status=201,
        )

    async def _no_content(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def _pget(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.2)
        self._ack += 1
        return self.answer({"_links": {"next": {"href": f"{APP}/events?ack={self._ack}"}}})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        href = APP + "/communication/conversationLogs/1"
        return self.answer(
            {"rel": "conversationLogs", "_links": {"conversationLog": [{"href": href}]}}
        )

    async def _log(self, request: web.Request) -> web.StreamResponse:
        base = APP + "/communication/conversationLogs/1"
        links = {"self": {"href": base}, "continueMessaging": {"href": base + "/continueMessaging"}}
        links.update({rel: {"href": href} for rel, href in self.log_links.items()})
        return self.answer({"rel": "conversationLog", "_links": links, "subject": "hostile"})

    async def _continue(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=201, headers={"Location": APP + "/communication/invitations/1"})

    async def _invitation(self, request: web.Request) -> web.StreamResponse:
        return self.answer({"rel": "messagingInvitation", "state": "Connecting"})

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return self.answer({"code": "ResourceNotFound"}, status=404)


@dataclass
class Recorder:
    """Another origin on 127.0.0.1 that records every request (with its Authorization)."""

    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _record(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(request.method, str(request.url), request.headers.get("Authorization"))
        )
        return web.Response(
            status=200, body=b'{"rel": "conversationLog"}', content_type="application/json"
        )


async def serve(obj: HostileServer | Recorder) -> AsyncIterator[Any]:
    await obj.start()
    try:
        yield obj
    finally:
        await obj.stop()
