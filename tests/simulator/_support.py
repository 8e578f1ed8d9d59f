"""A deliberately plain aiohttp UCWA client for the simulator tests (not our Session)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import xmltodict

from ucwa_async.testing import UcwaSimulator

JSON = "application/json"
XML = "application/vnd.microsoft.com.ucwa+xml"


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", ""))

    def json(self) -> Any:
        return json.loads(self.body)

    def xml(self) -> Any:
        return xmltodict.parse(self.body, disable_entities=True)


@dataclass
class Client:
    """Just enough UCWA to drive the simulator by hand."""

    http: aiohttp.ClientSession
    sim: UcwaSimulator
    wire: str = "json"
    token: str | None = None
    app: dict[str, Any] = field(default_factory=dict)

    @property
    def accept(self) -> str:
        return XML if self.wire == "xml" else JSON

    def url(self, href: str, base: str | None = None) -> str:
        base = base or self.sim.base_url
        if href.startswith("//v1/"):
            return base + "/ucwa/oauth" + href[1:]
        if href.startswith("/"):
            return base + href
        return href

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self,
        method: str,
        href: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        accept: str | None = None,
        limit: float = 10.0,
    ) -> Reply:
        h = {"Accept": accept or self.accept, **self.auth(), **(headers or {})}
        if content_type:
            h["Content-Type"] = content_type
        async with self.http.request(
            method,
            self.url(href),
            data=body,
            headers=h,
            timeout=aiohttp.ClientTimeout(total=limit),
        ) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get_token(self, origin: str | None = None, host_user: str | None = None) -> str:
        origin = origin or self.sim.base_url
        async with self.http.post(
            origin + "/WebTicket/oauthtoken",
            data={
                "grant_type": "password",
                "username": self.sim.username,
                "password": self.sim.password,
            },
        ) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["access_token"]
        self.token = token
        return str(token)

    async def sign_in(self) -> dict[str, Any]:
        """Discovery -> token -> user -> POST applications (JSON for the app body)."""
        root = await self.request("GET", self.sim.discovery_url, accept=JSON)
        user = root.json()["_links"]["user"]["href"]
        await self.get_token()
        user_res = (await self.request("GET", user, accept=JSON)).json()
        created = await self.request(
            "POST",
            user_res["_links"]["applications"]["href"],
            body=json.dumps({"UserAgent": "t", "EndpointId": "ep-1", "Culture": "en-US"}).encode(),
            content_type=JSON,
            accept=JSON,
        )
        assert created.status == 201, created.body
        self.app = created.json()
        return self.app

    @property
    def events_href(self) -> str:
        return str(self.app["_links"]["events"]["href"])

    @property
    def app_href(self) -> str:
        return str(self.app["_links"]["self"]["href"])

    async def log_hrefs(self) -> list[str]:
        logs = (
            await self.request(
                "GET", self.app_href + "/communication/conversationLogs", accept=JSON
            )
        ).json()
        links = logs["_links"]["conversationLog"]
        return [x["href"] for x in (links if isinstance(links, list) else [links])]

    async def continue_link(self, rel: str = "continueMessaging", index: int = 0) -> str:
        log = (await self.request("GET", (await self.log_hrefs())[index], accept=JSON)).json()
        return str(log["_links"][rel]["href"])

    async def start_pget(
        self, href: str | None = None, *, limit: float = 10.0
    ) -> asyncio.Task[Reply]:
        """Send a P-GET in the background; returns once the simulator has received it."""
        before = self.sim.counters.pgets
        task = asyncio.create_task(self.request("GET", href or self.events_href, limit=limit))
        await wait_for(lambda: self.sim.counters.pgets > before or task.done())
        return task

    async def post_json(self, href: str, data: dict[str, Any]) -> Reply:
        return await self.request("POST", href, body=json.dumps(data).encode(), content_type=JSON)


def events_of(reply: Reply) -> list[dict[str, Any]]:
    """Flatten a JSON event batch into its events (type, link, status...)."""
    out: list[dict[str, Any]] = []
    for sender in reply.json().get("sender", []):
        out.extend(sender["events"])
    return out


def next_href(reply: Reply) -> str:
    return str(reply.json()["_links"]["next"]["href"])


async def wait_for(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Bounded wait for a condition on the simulator's state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


MakeClient = Callable[..., Awaitable[Client]]
