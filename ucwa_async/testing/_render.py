"""Rendering of resources, event batches and error bodies in JSON or XML.

Handlers build small :class:`Res` trees; this module turns them into bytes in the
wire the request's ``Accept`` asked for. One place decides each format's shape.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ucwa_async.testing._config import Reason
from ucwa_async.testing._xml import UCWA_NS, property_xml, xml_attr, xml_escape

__all__ = [
    "JSON_TYPES",
    "XML_TYPES",
    "Ev",
    "Res",
    "Wire",
    "render_batch",
    "render_error",
    "render_links_only",
    "render_resource",
    "resource_json",
    "response_wire",
]

Wire = Literal["json", "xml"]
JSON_TYPES = frozenset({"application/json", "application/vnd.microsoft.com.ucwa+json"})
XML_TYPES = frozenset({"application/xml", "application/vnd.microsoft.com.ucwa+xml", "text/xml"})
_XML_DECL = '<?xml version="1.0" encoding="utf-8"?>'


@dataclass(slots=True)
class Res:
    """A resource: ``rel``, ``href`` (self), links, properties and embedded resources."""

    rel: str
    href: str
    links: list[tuple[str, str]] = field(default_factory=list)
    props: dict[str, Any] = field(default_factory=dict)
    embedded: list[Res] = field(default_factory=list)
    key: str | None = None
    """Name it is embedded under when that differs from ``rel`` (an invitation's
    ``from`` is a ``participant``): the JSON key, the XML ``rel`` attribute."""


@dataclass(slots=True)
class Ev:
    """One event inside a sender: ``type`` about ``link`` (rel, href)."""

    type: str
    rel: str
    href: str
    in_link: tuple[str, str] | None = None
    status: str | None = None
    reason: Reason | None = None
    resource: Res | None = None
    title: str | None = None
    """The link's ``title`` (a participant's display name, ReceiveAnIM step 9)."""


def response_wire(accept: str | None) -> tuple[Wire, str]:
    """The wire and Content-Type to answer with, from ``Accept`` (JSON by default).

    Whichever of xml/json is named first wins; q-values are not weighed (no UCWA
    client sends both with weights).
    """
    if accept:
        lowered = accept.lower()
        x = lowered.find("xml")
        if x >= 0:
            j = lowered.find("json")
            if j < 0 or x < j:
                if "ucwa+xml" in lowered:
                    return "xml", "application/vnd.microsoft.com.ucwa+xml"
                return "xml", "application/xml"
        if "ucwa+json" in lowered:
            return "json", "application/vnd.microsoft.com.ucwa+json"
    return "json", "application/json"


# --- JSON ---------------------------------------------------------------------------


def _add_link(links: dict[str, Any], rel: str, value: dict[str, Any]) -> None:
    # JSON convention: one link of a rel is an object, several are a list.
    present = links.get(rel)
    if present is None:
        links[rel] = value
    elif isinstance(present, list):
        present.append(value)
    else:
        links[rel] = [present, value]


def resource_json(res: Res) -> dict[str, Any]:
    links: dict[str, Any] = {"self": {"href": res.href}}
    for rel, href in res.links:
        _add_link(links, rel, {"href": href})
    out: dict[str, Any] = {"rel": res.rel, "_links": links}
    if res.embedded:
        embedded: dict[str, Any] = {}
        for child in res.embedded:
            _add_link(embedded, child.key or child.rel, resource_json(child))
        out["_embedded"] = embedded
    for name, value in res.props.items():
        if isinstance(value, datetime.datetime):
            # PayloadFormat.md: JSON dates in the ASP.NET AJAX form, XML's in ISO 8601.
            out[name] = f"/Date({round(value.timestamp() * 1000)})/"
        elif value is not None:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _reason_json(reason: Reason) -> dict[str, Any]:
    out: dict[str, Any] = {"code": reason.code}
    if reason.subcode is not None:
        out["subcode"] = reason.subcode
    if reason.message is not None:
        out["message"] = reason.message
    return out


def _event_json(ev: Ev) -> dict[str, Any]:
    out: dict[str, Any] = {"link": {"rel": ev.rel, "href": ev.href}}
    if ev.title is not None:
        out["link"]["title"] = ev.title
    if ev.in_link is not None:
        out["in"] = {"rel": ev.in_link[0], "href": ev.in_link[1]}
    if ev.status is not None:
        out["status"] = ev.status
    if ev.reason is not None:
        out["reason"] = _reason_json(ev.reason)
    if ev.resource is not None:
        out["_embedded"] = {ev.rel: resource_json(ev.resource)}
    out["type"] = ev.type
    return out


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- XML ----------------------------------------------------------------------------


def _resource_xml(res: Res, root: bool, key: str | None = None) -> Iterator[str]:
    ns = f' xmlns="{UCWA_NS}"' if root else ""
    attr = key or res.key or res.rel
    yield f'<resource rel="{xml_attr(attr)}" href="{xml_attr(res.href)}"{ns}>'
    for rel, href in res.links:
        yield f'<link rel="{xml_attr(rel)}" href="{xml_attr(href)}"/>'
    # Real UCWA repeats the rel as a property beside the attribute.
    yield f'<property name="rel">{xml_escape(res.rel)}</property>'
    for name, value in res.props.items():
        yield from property_xml(name, value)
    for child in res.embedded:
        yield from _resource_xml(child, root=False)
    yield "</resource>"


def _reason_xml(reason: Reason, root: bool) -> Iterator[str]:
    ns = (
        f' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        f' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="{UCWA_NS}"'
        if root
        else ""
    )
    yield f"<reason{ns}>"
    yield f"<code>{xml_escape(reason.code)}</code>"
    if reason.subcode is not None:
        yield f"<subcode>{xml_escape(reason.subcode)}</subcode>"
    if reason.message is not None:
        yield f"<message>{xml_escape(reason.message)}</message>"
    if root:
        yield "<debugInfo/><parameters/>"
    yield "</reason>"


def _event_xml(ev: Ev, status_as_attribute: bool) -> Iterator[str]:
    status_attr = ""
    if ev.status is not None and status_as_attribute:
        status_attr = f' status="{xml_attr(ev.status)}"'
    title_attr = f' title="{xml_attr(ev.title)}"' if ev.title is not None else ""
    yield (
        f'<{ev.type} rel="{xml_attr(ev.rel)}" href="{xml_attr(ev.href)}"{title_attr}{status_attr}>'
    )
    if ev.in_link is not None:
        yield f'<in rel="{xml_attr(ev.in_link[0])}" href="{xml_attr(ev.in_link[1])}"/>'
    if ev.status is not None and not status_as_attribute:
        yield f"<status>{xml_escape(ev.status)}</status>"
    if ev.reason is not None:
        yield from _reason_xml(ev.reason, root=False)
    if ev.resource is not None:
        yield from _resource_xml(ev.resource, root=False, key=ev.rel)
    yield f"</{ev.type}>"


# --- entry points -------------------------------------------------------------------


def render_resource(res: Res, wire: Wire) -> bytes:
    if wire == "json":
        return _dumps(resource_json(res))
    return (_XML_DECL + "".join(_resource_xml(res, root=True))).encode()


def render_links_only(self_href: str, links: Sequence[tuple[str, str]], wire: Wire) -> bytes:
    """A resource that is only links (discovery root, user resource)."""
    if wire == "json":
        out: dict[str, Any] = {"_links": {"self": {"href": self_href}}}
        for rel, href in links:
            _add_link(out["_links"], rel, {"href": href})
        return _dumps(out)
    parts = [_XML_DECL, f'<resource rel="root" href="{xml_attr(self_href)}" xmlns="{UCWA_NS}">']
    parts.extend(f'<link rel="{xml_attr(rel)}" href="{xml_attr(href)}"/>' for rel, href in links)
    parts.append("</resource>")
    return "".join(parts).encode()


def render_error(reason: Reason, wire: Wire) -> bytes:
    if wire == "json":
        return _dumps(_reason_json(reason))
    return (_XML_DECL + "".join(_reason_xml(reason, root=True))).encode()


def render_batch(
    *,
    self_href: str | None,
    links: Sequence[tuple[str, str]],
    senders: Sequence[tuple[str, str, Sequence[Ev]]],
    wire: Wire,
    status_as_attribute: bool = False,
) -> bytes:
    """An event-channel response: links (next/resync) and senders (rel, href, events)."""
    if wire == "json":
        out_links: dict[str, Any] = {}
        if self_href is not None:
            out_links["self"] = {"href": self_href}
        for rel, href in links:
            out_links[rel] = {"href": href}
        out: dict[str, Any] = {"_links": out_links}
        if senders:
            out["sender"] = [
                {"rel": rel, "href": href, "events": [_event_json(e) for e in events]}
                for rel, href, events in senders
            ]
        return _dumps(out)
    href_attr = f' href="{xml_attr(self_href)}"' if self_href is not None else ""
    parts = [_XML_DECL, f'<events{href_attr} xmlns="{UCWA_NS}">']
    parts.extend(f'<link rel="{xml_attr(rel)}" href="{xml_attr(href)}"/>' for rel, href in links)
    for rel, href, events in senders:
        parts.append(f'<sender rel="{xml_attr(rel)}" href="{xml_attr(href)}">')
        for ev in events:
            parts.extend(_event_xml(ev, status_as_attribute))
        parts.append("</sender>")
    parts.append("</events>")
    return "".join(parts).encode()
