"""A replay harness on the hostile server: Microsoft's reference flows, request by request.

``Replay`` answers every request of a session from a table of routes (method, path) that a
test fills with the reference's own bodies, records what the client sent, and serves the
reference's event batches on the P-GET when the test (or a route) releases them. The JSON
bodies are the reference's; in XML the same bodies are written as PayloadFormat.md and the
``*_ref.md`` XML samples show (``<resource rel href>``, ``<link>``, ``<property>``,
``<propertyList><item>``, booleans ``True``/``False``, ISO 8601 dates; event batches as in
EventChannelDetails.md: ``<events href>``, ``<sender rel href>``, one element per event named
by its type with the event's link as its ``rel``/``href``/``title``). No reference sample
shows an XML ``in`` link, ``status`` or ``reason`` of an event: they are written as the
child elements ``<in rel href title/>``, ``<status>`` (or a ``status`` attribute) and
``<reason>`` (the reason's XML form is ErrorsAndInformationalMessages.md's).

It is independent of ``ucwa_async``: nothing here imports the package under test.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from ._server import HostileServer

NS = "http://schemas.microsoft.com/rtc/2012/03/ucwa"
JSON = "application/json"
XML = "application/vnd.microsoft.com.ucwa+xml"


@dataclass
class Request:
    method: str
    path_qs: str
    content_type: str | None
    body: bytes

    @property
    def path(self) -> str:
        return self.path_qs.split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, Any] | None, dict[str, str]]
Route = Callable[[Request], Answer]


def created(location: str) -> Answer:
    return 201, None, {"Location": location}


def no_content() -> Answer:
    return 204, None, {}


def ok(body: dict[str, Any]) -> Answer:
    return 200, body, {}


# -- JSON -> XML, as the reference's XML samples write it -----------------------------------

_DATE = re.compile(r"^/Date\((-?\d+)\)/$")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        date = _DATE.match(value)
        if date:
            stamp = datetime.datetime.fromtimestamp(int(date.group(1)) / 1000, datetime.UTC)
            return stamp.isoformat()
    return str(value)


def _link(rel: str, link: dict[str, Any], tag: str = "link") -> str:
    title = f" title={quoteattr(link['title'])}" if "title" in link else ""
    return f"<{tag} rel={quoteattr(rel)} href={quoteattr(link['href'])}{title}/>"


def xml_resource(rel: str, obj: dict[str, Any], top: bool = False) -> str:
    """``rel`` is the name it is embedded under (messagingInvitation_ref.md's XML:
    ``<resource rel="from" ...>`` holding ``<property name="rel">participant</property>``)."""
    links: dict[str, Any] = obj.get("_links", {})
    attrs = f" rel={quoteattr(rel)}"
    if "self" in links:
        attrs += f" href={quoteattr(links['self']['href'])}"
    if top:
        attrs += f' xmlns="{NS}"'
    parts = [f"<resource{attrs}>"]
    for name, value in links.items():
        if name == "self":
            continue
        for one in value if isinstance(value, list) else [value]:
            parts.append(_link(name, one))
    for name, value in obj.items():
        if name in ("_links", "_embedded"):
            continue
        if value is None:
            parts.append(f"<property name={quoteattr(name)}/>")
        elif isinstance(value, list):
            items = "".join(f"<item>{escape(_value(v))}</item>" for v in value)
            parts.append(f"<propertyList name={quoteattr(name)}>{items}</propertyList>")
        else:
            parts.append(f"<property name={quoteattr(name)}>{escape(_value(value))}</property>")
    if "rel" not in obj:  # the reference's XML always repeats it as a property
        parts.append(f"<property name='rel'>{escape(rel)}</property>")
    for name, value in obj.get("_embedded", {}).items():
        for one in value if isinstance(value, list) else [value]:
            parts.append(xml_resource(name, one))
    parts.append("</resource>")
    return "".join(parts)


def xml_events(batch: dict[str, Any], status_attribute: bool = False) -> str:
    links = batch["_links"]
    href = f" href={quoteattr(links['self']['href'])}" if "self" in links else ""
    parts = [f'<events{href} xmlns="{NS}">']
    for name, link in links.items():
        if name != "self":
            parts.append(_link(name, link))
    for sender in batch.get("sender", []):
        parts.append(f"<sender rel={quoteattr(sender['rel'])} href={quoteattr(sender['href'])}>")
        for event in sender["events"]:
            link = event["link"]
            title = f" title={quoteattr(link['title'])}" if "title" in link else ""
            if status_attribute and "status" in event:
                title += f" status={quoteattr(event['status'])}"
            parts.append(
                f"<{event['type']} rel={quoteattr(link['rel'])} "
                f"href={quoteattr(link['href'])}{title}>"
            )
            if "in" in event:
                parts.append(_link(event["in"]["rel"], event["in"], tag="in"))
            if "status" in event and not status_attribute:
                parts.append(f"<status>{escape(event['status'])}</status>")
            if "reason" in event:
                parts.append(xml_reason(event["reason"], top=False))
            for name, value in event.get("_embedded", {}).items():
                parts.append(xml_resource(name, value))
            parts.append(f"</{event['type']}>")
        parts.append("</sender>")
    parts.append("</events>")
    return "".join(parts)


def xml_reason(reason: dict[str, Any], top: bool = True) -> str:
    ns = f' xmlns="{NS}"' if top else ""
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in reason.items())
    return f"<reason{ns}>{inner}</reason>"


def xml_document(body: dict[str, Any], status_attribute: bool = False) -> str:
    if "sender" in body or ("_links" in body and "next" in body["_links"]):
        text = xml_events(body, status_attribute)
    elif "code" in body and "_links" not in body:
        text = xml_reason(body)
    else:
        text = xml_resource(body.get("rel", "resource"), body, top=True)
    return '<?xml version="1.0" encoding="utf-8"?>' + text


# -- the harness --------------------------------------------------------------------------


@dataclass
class Replay:
    """Answers a session from ``routes``; ``release()`` queues an event batch."""

    server: HostileServer
    wire: str
    app: str
    application: dict[str, Any]
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    unexpected: list[Request] = field(default_factory=list)
    pgets: list[str] = field(default_factory=list)
    link_only: bool = False
    """Serve every event without its embedded resource and with absolute hrefs (the event
    samples of the ``*_ref.md`` pages), the resource then being what a GET of it answers."""
    xml_status_attribute: bool = False
    """XML: an event's status as an attribute of its element, not a child element."""
    delays: dict[str, float] = field(default_factory=dict)
    """Seconds to hold the answer to a request on a path (a slow read)."""
    keep_embedded: frozenset[str] = frozenset()
    """With ``link_only``, the event links whose resource stays embedded (OperationResource.md:
    the events of an operation embed it, while other resources' events may be link-only)."""
    _batches: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _ack: int = 1

    def install(self) -> None:
        self.server.hooks["any"] = self._any

    def route(self, method: str, path: str, answer: Route | Answer) -> None:
        self.routes[(method, path)] = answer if callable(answer) else (lambda _r: answer)

    def release(self, *batches: dict[str, Any]) -> None:
        for batch in batches:
            self._batches.put_nowait(batch)

    def _strip(self, batch: dict[str, Any]) -> dict[str, Any]:
        def absolute(href: str) -> str:
            return href if href.startswith("http") else self.server.origin + href

        senders = []
        for sender in batch.get("sender", []):
            events = []
            for event in sender["events"]:
                event = dict(event)
                if event["link"]["rel"] in self.keep_embedded:
                    events.append(event)
                    continue
                for resource in event.pop("_embedded", {}).values():
                    self.route("GET", event["link"]["href"], (200, resource, {}))
                event["link"] = {**event["link"], "href": absolute(event["link"]["href"])}
                if "in" in event:
                    event["in"] = {**event["in"], "href": absolute(event["in"]["href"])}
                events.append(event)
            senders.append({**sender, "href": absolute(sender["href"]), "events": events})
        return {**batch, "sender": senders}

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def _answer(
        self, status: int, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> web.Response:
        if body is None:
            return web.Response(status=status, headers=headers)
        if self.wire == "xml":
            return web.Response(
                status=status,
                body=xml_document(body, self.xml_status_attribute).encode(),
                headers={**headers, "Content-Type": XML + "; charset=utf-8"},
            )
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers={**headers, "Content-Type": JSON + "; charset=utf-8"},
        )

    async def _any(self, request: web.Request) -> web.StreamResponse | None:
        if request.path in ("/autodiscover", "/user", "/token"):
            return None
        req = Request(
            request.method,
            request.path_qs,
            request.headers.get("Content-Type"),
            await request.read(),
        )
        self.requests.append(req)
        if request.method == "POST" and request.path == "/ucwa/oauth/v1/applications":
            return self._answer(201, self.application, {})
        if request.method == "GET" and request.path == self.app + "/events":
            return await self._pget(request)
        route = self.routes.get((request.method, request.path))
        if route is None:
            self.unexpected.append(req)
            return self._answer(404, {"code": "NotFound", "subcode": "ResourceNotFound"}, {})
        status, body, headers = route(req)
        if request.path in self.delays:
            await asyncio.sleep(self.delays[request.path])
        return self._answer(status, body, headers)

    async def _pget(self, request: web.Request) -> web.StreamResponse:
        self.pgets.append(request.query.get("ack", ""))
        try:
            batch = await asyncio.wait_for(self._batches.get(), 0.25)
        except TimeoutError:
            batch = {}
        if self.link_only and batch:
            # The resources become readable as their events are served (a GET answers
            # the server's state of that moment).
            batch = self._strip(batch)
        # The reference's bodies, with the channel's own ack numbers (the client follows
        # ``next`` as given: the numbers are the server's business).
        links = {
            "self": {"href": f"{self.app}/events?ack={self._ack}"},
            "next": {"href": f"{self.app}/events?ack={self._ack + 1}"},
        }
        self._ack += 1
        return self._answer(
            200, {"_links": links, **{k: v for k, v in batch.items() if k != "_links"}}, {}
        )
