"""The simulator's own UCWA XML writer and request reader.

Deliberately independent of the client's codec (``ucwa_async._core.wire``): the client's
decoder is tested against this separately written encoder, so a shared
misreading of the format cannot hide. Writing is plain string building (fast and
exact about the output); reading uses xmltodict with entities disabled.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import xmltodict

__all__ = ["UCWA_NS", "XmlInputError", "parse_input", "xml_attr", "xml_escape"]

UCWA_NS = "http://schemas.microsoft.com/rtc/2012/03/ucwa"
_ACCEPTED_NS = frozenset({UCWA_NS, "https://schemas.microsoft.com/rtc/2012/03/ucwa"})

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def xml_escape(text: str) -> str:
    """Escape element text."""
    return text.translate(_TEXT_ESCAPES)


def xml_attr(text: str) -> str:
    """Escape a value for a double-quoted attribute."""
    return text.translate(_ATTR_ESCAPES)


class XmlInputError(ValueError):
    """The request body is not a UCWA ``<input>`` document."""


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, Mapping):
        text = node.get("#text")
        return text if isinstance(text, str) else ""
    raise XmlInputError("unexpected element content")


def parse_input(body: bytes) -> dict[str, Any]:
    """Read ``<input xmlns=...>`` (properties, propertyLists, links) into the JSON shape.

    ``<property name="x">v</property>`` -> ``{"x": "v"}``;
    ``<propertyList name="x"><item>a</item></propertyList>`` -> ``{"x": ["a"]}``;
    ``<link rel="message" href="data:..."/>`` -> ``{"_links": {"message": {"href": ...}}}``.
    Values stay strings: the request validators decide what they mean.
    """
    try:
        doc = xmltodict.parse(body, disable_entities=True)
    except Exception as exc:  # expat and xmltodict raise several unrelated types
        raise XmlInputError(f"not well-formed XML: {exc}") from exc
    if not isinstance(doc, Mapping) or len(doc) != 1:
        raise XmlInputError("expected one root element")
    ((root_name, root),) = doc.items()
    if _local(root_name) != "input":
        raise XmlInputError(f"root element is <{root_name}>, expected <input>")
    if root is None:
        return {}
    if not isinstance(root, Mapping):
        raise XmlInputError("<input> holds only text")
    namespace = root.get("@xmlns")
    if namespace is not None and namespace not in _ACCEPTED_NS:
        raise XmlInputError(f"unknown namespace {namespace!r}")
    out: dict[str, Any] = {}
    links: dict[str, Any] = {}
    for key, value in root.items():
        if key.startswith(("@", "#")):
            continue
        name = _local(key)
        for node in _as_list(value):
            if name == "property":
                out[_required_attr(node, "@name")] = _text(node)
            elif name == "propertyList":
                items = node.get("item") if isinstance(node, Mapping) else None
                out[_required_attr(node, "@name")] = [_text(i) for i in _as_list(items)]
            elif name == "link":
                links[_required_attr(node, "@rel")] = {"href": _required_attr(node, "@href")}
            else:
                raise XmlInputError(f"unexpected element <{key}> in <input>")
    if links:
        out["_links"] = links
    return out


def _required_attr(node: Any, attr: str) -> str:
    value = node.get(attr) if isinstance(node, Mapping) else None
    if not isinstance(value, str):
        raise XmlInputError(f"element lacks attribute {attr[1:]!r}")
    return value


def property_xml(name: str, value: Any) -> Iterable[str]:
    """``<property>`` / ``<propertyList>`` text for one resource property."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        yield f'<propertyList name="{xml_attr(name)}">'
        for item in value:
            yield f"<item>{xml_escape(_scalar(item))}</item>"
        yield "</propertyList>"
        return
    yield f'<property name="{xml_attr(name)}">{xml_escape(_scalar(value))}</property>'


def _scalar(value: Any) -> str:
    # UCWA writes booleans capitalised, like .NET's bool.ToString().
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, datetime.datetime):
        return value.isoformat()  # PayloadFormat.md: dates in XML are ISO 8601
    return str(value)
