"""Wire-neutral reading of resources and event batches, and a plain conversation
driver over the simulator (aiohttp only: not the ucwa_async client)."""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

from ._support import JSON, XML, Client, Reply

XML_INPUT = "application/vnd.microsoft.com.ucwa+xml"


@dataclass
class Resource:
    rel: str
    href: str
    links: dict[str, list[str]] = field(default_factory=dict)
    props: dict[str, Any] = field(default_factory=dict)
    embedded: dict[str, list[Resource]] = field(default_factory=dict)

    def link(self, rel: str) -> str:
        return self.links[rel][0]


@dataclass
class Event:
    sender: str
    sender_href: str
    type: str
    rel: str
    href: str
    status: str | None = None
    reason: dict[str, str] = field(default_factory=dict)
    in_rel: str | None = None
    resource: Resource | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --- JSON ------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_from_json(data: dict[str, Any]) -> Resource:
    links = {
        rel: [x["href"] for x in _as_list(v)] for rel, v in data["_links"].items() if rel != "self"
    }
    embedded = {
        key: [resource_from_json(x) for x in _as_list(v)]
        for key, v in data.get("_embedded", {}).items()
    }
    props = {k: v for k, v in data.items() if k not in ("_links", "_embedded", "rel")}
    return Resource(data["rel"], data["_links"]["self"]["href"], links, props, embedded)


def _events_from_json(data: dict[str, Any]) -> list[Event]:
    out: list[Event] = []
    for sender in data.get("sender", []):
        for e in sender["events"]:
            emb = e.get("_embedded")
            res = resource_from_json(next(iter(emb.values()))) if emb else None
            out.append(
                Event(
                    sender["rel"],
                    sender["href"],
                    e["type"],
                    e["link"]["rel"],
                    e["link"]["href"],
                    e.get("status"),
                    e.get("reason", {}),
                    e["in"]["rel"] if "in" in e else None,
                    res,
                )
            )
    return out


# --- XML -------------------------------------------------------------------------------


def resource_from_xml(node: ET.Element) -> Resource:
    res = Resource(node.get("rel", ""), node.get("href", ""))
    for child in node:
        tag = _local(child.tag)
        if tag == "link":
            res.links.setdefault(child.get("rel", ""), []).append(child.get("href", ""))
        elif tag == "property":
            if child.get("name") == "rel":
                res.rel = child.text or ""
            else:
                res.props[child.get("name", "")] = child.text or ""
        elif tag == "propertyList":
            res.props[child.get("name", "")] = [i.text or "" for i in child]
        elif tag == "resource":
            res.embedded.setdefault(child.get("rel", ""), []).append(resource_from_xml(child))
    return res


def _events_from_xml(root: ET.Element) -> list[Event]:
    out: list[Event] = []
    for sender in root:
        if _local(sender.tag) != "sender":
            continue
        for e in sender:
            ev = Event(
                sender.get("rel", ""),
                sender.get("href", ""),
                _local(e.tag),
                e.get("rel", ""),
                e.get("href", ""),
                e.get("status"),
            )
            for child in e:
                tag = _local(child.tag)
                if tag == "status":
                    ev.status = child.text
                elif tag == "in":
                    ev.in_rel = child.get("rel")
                elif tag == "reason":
                    ev.reason = {_local(c.tag): c.text or "" for c in child}
                elif tag == "resource":
                    ev.resource = resource_from_xml(child)
            out.append(ev)
    return out


# --- either wire -----------------------------------------------------------------------


def read_resource(reply: Reply) -> Resource:
    assert reply.status == 200, (reply.status, reply.body)
    if "xml" in reply.content_type:
        return resource_from_xml(ET.fromstring(reply.body))
    return resource_from_json(reply.json())


def read_batch(reply: Reply) -> tuple[list[Event], str]:
    """(events, next href) of a P-GET answer."""
    assert reply.status == 200, (reply.status, reply.body)
    if "xml" in reply.content_type:
        root = ET.fromstring(reply.body)
        links = {x.get("rel"): x.get("href") for x in root if _local(x.tag) == "link"}
        return _events_from_xml(root), str(links.get("next") or links.get("resync"))
    data = reply.json()
    links = data["_links"]
    return _events_from_json(data), str((links.get("next") or links["resync"])["href"])


def xml_input(props: dict[str, Any]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><input xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
    ]
    for name, value in props.items():
        if name == "_links":
            for rel, link in value.items():
                parts.append(
                    f'<link rel="{rel}" href="{escape(link["href"], {chr(34): "&quot;"})}"/>'
                )
        elif isinstance(value, list):
            items = "".join(f"<item>{escape(v)}</item>" for v in value)
            parts.append(f'<propertyList name="{name}">{items}</propertyList>')
        else:
            parts.append(f'<property name="{name}">{escape(str(value))}</property>')
    parts.append("</input>")
    return "".join(parts).encode()


class Driver:
    """A hand-made UCWA conversation client: POSTs in the client's wire, one P-GET at a
    time, every event kept in ``seen``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[Event] = []
        self.events_href = client.events_href
        self.comm = resource_from_json(client.app["_embedded"]["communication"])
        self.me = resource_from_json(client.app["_embedded"]["me"])

    @property
    def sim(self) -> Any:
        return self.client.sim

    async def post(self, href: str, props: dict[str, Any] | None = None) -> Reply:
        if props is None:
            return await self.client.request("POST", href)
        if self.client.wire == "xml":
            return await self.client.request(
                "POST", href, body=xml_input(props), content_type=XML_INPUT
            )
        return await self.client.request(
            "POST", href, body=json.dumps(props).encode(), content_type=JSON
        )

    async def get(self, href: str) -> Resource:
        return read_resource(await self.client.request("GET", href))

    async def make_available(self, *modalities: str) -> None:
        await self.poll()  # the event channel must exist first
        reply = await self.post(
            self.me.link("makeMeAvailable"),
            {"supportedModalities": list(modalities or ("Messaging", "PhoneAudio"))},
        )
        assert reply.status == 204, reply.body

    async def poll(self) -> list[Event]:
        events, self.events_href = read_batch(await self.client.request("GET", self.events_href))
        self.seen.extend(events)
        return events

    async def until(self, predicate: Callable[[Event], bool], within: float = 5.0) -> Event:
        """Poll until an event (already seen or new) matches; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for e in self.seen:
                if predicate(e):
                    return e
            if loop.time() > deadline:
                raise AssertionError(f"no such event in {[(e.type, e.rel) for e in self.seen]}")
            await self.poll()

    async def send(
        self, messaging: Resource, text: str, op: str = "op-1", *, html: bool = False
    ) -> Reply:
        return await self.client.request(
            "POST",
            messaging.link("sendMessage") + f"?operationId={op}",
            body=text.encode(),
            content_type="text/html" if html else "text/plain; charset=utf-8",
        )


def is_(type_: str, rel: str, **extra: Any) -> Callable[[Event], bool]:
    def match(e: Event) -> bool:
        if e.type != type_ or e.rel != rel:
            return False
        return all(getattr(e, k) == v for k, v in extra.items())

    return match


def message_text(res: Resource) -> str:
    """Decode the plainMessage data: URI of a message (percent-encoded or base64)."""
    return decode_data(res.link("plainMessage"))


def decode_data(href: str) -> str:
    """An independent reading of a data: URI (the simulator's own is not used)."""
    head, _, payload = href.partition(",")
    assert head.startswith("data:"), href
    if head.endswith(";base64"):
        return base64.b64decode(payload).decode()
    return unquote_plus(payload)


__all__ = ["JSON", "XML"]
