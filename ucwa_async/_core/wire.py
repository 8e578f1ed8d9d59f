"""The wire layer: UCWA bodies (JSON or XML) to one canonical dict, and request bodies back.

Sans-IO: bytes and a content type in, plain dicts out; no asyncio, no aiohttp.

Canonical shape (JSON's, see docs/architecture.md): properties as keys, ``_links``
``{rel: {"href": ...} | [{"href": ...}, ...]}``, ``_embedded`` ``{rel: dict | [dict, ...]}``,
event batches as ``{"_links": ..., "sender": [{"rel", "href", "events": [...]}]}`` and error
bodies as ``{"code", "subcode", "message", "debugInfo", "parameters", ...}``.

Why XML is folded with the standard library's expat parser and not with xmltodict
(which the design names): xmltodict groups same-named siblings into one list, so
``<started/><updated/><started/>`` inside a ``<sender>`` comes back as
``{"started": [a, c], "updated": b}`` and the event order — which the protocol says is
meaningful — is lost. It is also ~15x slower than ``json.loads`` on a 500-event batch
before any folding, and the event channel decodes every batch. The expat handlers below
build the canonical dict in one pass, in document order, and keep (and extend) the
protections xmltodict gives: any DOCTYPE, entity declaration or external entity reference
is refused, and nesting is bounded without recursion. An event batch in the compact form
UCWA writes skips expat (three Python calls per element) for regular expressions that
take a whole event at a time; see "XML: compact event batches" below.
"""

from __future__ import annotations

import array
import base64
import binascii
import itertools
import json
import json.decoder
import json.scanner
import operator
import re
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Literal, NoReturn, TypeVar, overload
from urllib.parse import unquote_to_bytes
from xml.parsers import expat

from ucwa_async._core.errors import BodyTooLargeError, DecodeError

__all__ = [
    "DEFAULT_MAX_BODY",
    "INTEGER_PROPERTIES",
    "JSON_MEDIA_TYPE",
    "MAX_XML_DEPTH",
    "UCWA_JSON_MEDIA_TYPE",
    "UCWA_NS",
    "UCWA_NS_HTTPS",
    "UCWA_XML_MEDIA_TYPE",
    "XML_MEDIA_TYPE",
    "LazyItems",
    "WireFormat",
    "data_uri",
    "decode",
    "decode_steps",
    "encode_input",
    "media_type",
    "parse_data_uri",
    "wire_of",
]

WireFormat = Literal["json", "xml"]

UCWA_NS = "http://schemas.microsoft.com/rtc/2012/03/ucwa"
UCWA_NS_HTTPS = "https://schemas.microsoft.com/rtc/2012/03/ucwa"
JSON_MEDIA_TYPE = "application/json"
UCWA_JSON_MEDIA_TYPE = "application/vnd.microsoft.com.ucwa+json"
UCWA_XML_MEDIA_TYPE = "application/vnd.microsoft.com.ucwa+xml"
XML_MEDIA_TYPE = "application/xml"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
MAX_XML_DEPTH = 100

# XML carries only text; these properties are numbers in the JSON samples of the
# UCWA reference, so the XML decoder turns their text into int to match (any resource
# may reach session.events() or session.request(), not only those the client reads).
INTEGER_PROPERTIES: frozenset[str] = frozenset(
    {
        "totalRecipientsCount",
        "participantCount",
        "maxMessageSize",
        "unreadCount",
        "expiresIn",
        "expires_in",
        # missedItems_ref
        "conversationLogsCount",
        "missedConversationsCount",
        "unreadMissedConversationsCount",
        "unreadVoicemailsCount",
        "voiceMailsCount",
        # callForwardingSettings_ref and its ring settings
        "ringDelay",
        # mediaRelay_ref, mediaRelayAccessToken_ref
        "udpPort",
        "tcpPort",
        "duration",
        # mediaPolicies_ref
        "minimumAudioPort",
        "maximumAudioPort",
        "minimumVideoPort",
        "maximumVideoPort",
        "minimumApplicationSharingPort",
        "maximumApplicationSharingPort",
        # onlineMeetingPolicies_ref, onlineMeetingDefaultValues_ref, policies_ref
        "meetingSize",
        "participantsWarningThreshold",
        "locationRefreshInterval",
    }
)

# XML carries only text, and a true/false text is read as the boolean the JSON samples
# would have, but not in these: strings in every JSON sample, free text a person typed
# (a subject "True") or an identifier the client compares (an operationId "true").
_TEXT_PROPERTIES: frozenset[str] = frozenset(
    {
        "rel",
        "operationId",
        "threadId",
        "subject",
        "name",
        "displayName",
        "previewMessage",
        "message",
        "plainMessage",  # message bodies, read from these properties too (chat._body)
        "htmlMessage",
        "title",
        "company",
        "department",
        "officeLocation",
    }
)

_JSON_TYPES = frozenset({"application/json", "text/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})


# --------------------------------------------------------------------------- media types


def media_type(wire: WireFormat) -> str:
    """The Accept / Content-Type value we send for ``wire``."""
    if wire == "json":
        return JSON_MEDIA_TYPE
    if wire == "xml":
        return UCWA_XML_MEDIA_TYPE
    raise ValueError(f"unknown wire format {wire!r}")


def _split_content_type(content_type: str) -> tuple[str, str | None]:
    """``(media type lower-cased, charset or None)``."""
    head, _, params = content_type.partition(";")
    charset = None
    if params:
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                charset = value.strip().strip('"').lower() or None
    return head.strip().lower(), charset


def wire_of(content_type: str | None) -> WireFormat | None:
    """Which decoder a content type needs; None when it is not a JSON/XML body type."""
    if not content_type:
        return None
    mt, _ = _split_content_type(content_type)
    if mt in _JSON_TYPES or mt.endswith("+json"):
        return "json"
    if mt in _XML_TYPES or mt.endswith("+xml"):
        return "xml"
    return None


# --------------------------------------------------------------------------- decode


def decode(
    body: bytes,
    content_type: str | None,
    *,
    max_size: int = DEFAULT_MAX_BODY,
    interruptible: bool = False,
) -> dict[str, Any]:
    """Decode a UCWA body into the canonical dict shape.

    ``interruptible``: decode JSON with the pure-Python scanner (several times slower)
    so that a worker thread decoding a large body lets the event loop's thread run
    between its steps; the C scanner holds the GIL for the whole body. (XML decoding
    runs Python code between small steps, an element or an event, and is interruptible
    anyway.)

    Raises only :class:`DecodeError` (malformed body, unknown content type, a JSON top
    level that is not an object, refused XML constructs) and its subclass
    :class:`BodyTooLargeError`. An empty (or all-whitespace) body is ``{}`` whatever the
    content type: 201/204 answers often have no body and no type.
    """
    if len(body) > max_size:
        raise BodyTooLargeError(
            f"body of {len(body)} bytes exceeds the {max_size}-byte limit",
            content_type=content_type,
        )
    if not body or body.isspace():
        return {}
    if not content_type:
        raise DecodeError("body without a content type", content_type=content_type)
    mt, charset = _split_content_type(content_type)
    if mt in _JSON_TYPES or mt.endswith("+json"):
        if interruptible:
            return complete(_json_steps(body, charset, content_type))
        return _decode_json(body, charset, content_type)
    if mt in _XML_TYPES or mt.endswith("+xml"):
        return complete(_decode_xml(body, content_type, None))
    raise DecodeError(f"not a UCWA body type: {content_type!r}", content_type=content_type)


T = TypeVar("T")


def complete(steps: Generator[None, None, T]) -> T:
    """Run a step generator (:func:`decode_steps`, say) to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


XML_STEP_BYTES = 8 * 1024
""":func:`decode_steps` decodes XML in pieces of this size, a step each."""


def decode_steps(
    body: bytes,
    content_type: str | None,
    *,
    max_size: int = DEFAULT_MAX_BODY,
    lazy_events: bool = False,
) -> Generator[None, None, dict[str, Any]]:
    """:func:`decode`, a step at a time: the generator yields between small steps (one
    JSON array item or object member of the outer levels, ``XML_STEP_BYTES`` of XML) and
    returns what :func:`decode` returns (or raises what it raises).

    The caller decides how many steps to run before letting other work in: a large
    event batch is decoded on the event loop without freezing it, and without the
    thread (and GIL contention) that decoding it elsewhere would need.

    ``lazy_events``: a JSON event batch's ``sender[].events`` arrays come back as
    :class:`LazyItems`, whose items are checked now but built only when read: the
    objects of 60 000 events are then never alive at once (nor the garbage collector's
    full passes over them).
    """
    if len(body) > max_size:
        raise BodyTooLargeError(
            f"body of {len(body)} bytes exceeds the {max_size}-byte limit",
            content_type=content_type,
        )
    if not body or body.isspace():
        return {}
    if not content_type:
        raise DecodeError("body without a content type", content_type=content_type)
    mt, charset = _split_content_type(content_type)
    if mt in _JSON_TYPES or mt.endswith("+json"):
        return (yield from _json_steps(body, charset, content_type, lazy_events))
    if mt in _XML_TYPES or mt.endswith("+xml"):
        return (yield from _decode_xml(body, content_type, XML_STEP_BYTES))
    raise DecodeError(f"not a UCWA body type: {content_type!r}", content_type=content_type)


def _refuse_constant(name: str) -> NoReturn:
    # NaN / Infinity are not JSON; Python's parser accepts them unless told not to.
    raise ValueError(f"invalid JSON constant {name}")


def _decode_json(body: bytes, charset: str | None, content_type: str) -> dict[str, Any]:
    problem: str | None = None
    try:
        if charset is None or charset in ("utf-8", "utf8"):
            # bytes input: json detects UTF-8/16/32 and a UTF-8 BOM by itself.
            value = json.loads(body, parse_constant=_refuse_constant)
        else:
            value = json.loads(body.decode(charset), parse_constant=_refuse_constant)
    except (ValueError, LookupError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and int-size limits.
        problem = str(exc)
    if problem is not None:
        # Raised outside the except: the parser's error (JSONDecodeError.doc is the
        # whole body, a token grant's access_token included) is not chained.
        raise DecodeError(f"malformed JSON body: {problem}", content_type=content_type)
    if not isinstance(value, dict):
        raise DecodeError(
            f"JSON body is a {type(value).__name__}, not an object", content_type=content_type
        )
    return value


# The outer levels of a JSON body (the batch object, its sender list, a sender, its event
# list) are walked here, a step per member or item; anything deeper (one event, say) is
# one call of the C scanner.
_JSON_WALK_DEPTH = 4
_JSON_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_json_scan: Any = getattr(_JSON_DECODER, "scan_once")  # noqa: B009 - the C scanner
_json_string: Any = getattr(json.decoder, "scanstring")  # noqa: B009 - untyped in typeshed
_json_space: Any = re.compile(r"[ \t\n\r]*").match  # JSON whitespace (always matches)
_JSON_BLANK = frozenset(" \t\n\r")


class LazyItems(Sequence[Any]):
    """The items of a JSON array, decoded when read (each read decodes anew)."""

    __slots__ = ("_starts", "_text", "objects")

    def __init__(self, text: str, starts: array.array[int], objects: bool) -> None:
        self._text = text
        self._starts = starts
        self.objects = objects
        """Whether any item is a JSON object."""

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        text, scan = self._text, _json_scan
        if isinstance(index, slice):
            return [scan(text, start)[0] for start in self._starts[index]]
        return scan(text, self._starts[index])[0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyItems | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<LazyItems of {len(self._starts)} JSON values>"


def _json_steps(
    body: bytes, charset: str | None, content_type: str, lazy_events: bool = False
) -> Generator[None, None, dict[str, Any]]:
    try:
        if charset is None or charset in ("utf-8", "utf8"):
            # What json.loads does with bytes (UTF-8/16/32 and a UTF-8 BOM detected).
            text = body.decode(json.detect_encoding(body), "surrogatepass")
        else:
            text = body.decode(charset)
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value, end = yield from _json_value(text, _json_space(text, 0).end(), 0, lazy_events)
        end = _json_space(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except (ValueError, LookupError, RecursionError) as exc:
        problem: str | None = str(exc)
    else:
        problem = None
    if problem is not None:  # not chained: see _decode_json
        raise DecodeError(f"malformed JSON body: {problem}", content_type=content_type)
    if not isinstance(value, dict):
        raise DecodeError(
            f"JSON body is a {type(value).__name__}, not an object", content_type=content_type
        )
    return value


def _json_value(
    text: str, idx: int, depth: int, lazy: bool = False
) -> Generator[None, None, tuple[Any, int]]:
    """The JSON value at ``text[idx]`` (no leading space) and the index after it.

    ``lazy``: an event batch's ``sender[].events`` arrays become :class:`LazyItems`."""
    first = text[idx : idx + 1]
    if depth >= _JSON_WALK_DEPTH or (first != "{" and first != "["):
        return _json_decoded(text, idx)
    if first == "[" and depth + 1 >= _JSON_WALK_DEPTH:
        return (yield from _json_items(text, idx, False))
    closing = "}" if first == "{" else "]"
    obj: dict[str, Any] = {}
    items: list[Any] = []
    idx = _json_space(text, idx + 1).end()
    if text[idx : idx + 1] == closing:
        return (obj if first == "{" else items), idx + 1
    done = 0  # members since the last step: a step every few (a batch of 200 senders
    # walked a step per member cost more than decoding it)
    while True:
        if first == "{":
            if text[idx : idx + 1] != '"':
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", text, idx
                )
            key, idx = _json_string(text, idx + 1, True)
            idx = _json_space(text, idx).end()
            if text[idx : idx + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, idx)
            idx = _json_space(text, idx + 1).end()
            if lazy and depth == 2 and key == "events" and text[idx : idx + 1] == "[":
                obj[key], idx = yield from _json_items(text, idx, True)
            elif text[idx : idx + 1] not in ("{", "["):
                obj[key], idx = _json_decoded(text, idx)
            else:
                obj[key], idx = yield from _json_value(text, idx, depth + 1, lazy)
        elif text[idx : idx + 1] not in ("{", "["):
            value, idx = _json_decoded(text, idx)
            items.append(value)
        else:
            value, idx = yield from _json_value(text, idx, depth + 1, lazy)
            items.append(value)
        done += 1
        if done >= _JSON_ITEMS_PER_STEP:
            done = 0
            yield
        idx = _json_space(text, idx).end()
        separator = text[idx : idx + 1]
        if separator == closing:
            return (obj if first == "{" else items), idx + 1
        if separator != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, idx)
        idx = _json_space(text, idx + 1).end()


_JSON_ITEMS_PER_STEP = 8


def _json_decoded(text: str, idx: int) -> tuple[Any, int]:
    """The JSON value at ``text[idx]`` decoded whole by the C scanner, and the index
    after it."""
    try:
        return _json_scan(text, idx)  # type: ignore[no-any-return]
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None


def _json_items(
    text: str, idx: int, lazy: bool
) -> Generator[None, None, tuple[list[Any] | LazyItems, int]]:
    """The array at ``text[idx]`` whose items are decoded whole (a batch's events), a
    step every few items: their values, or (``lazy``) :class:`LazyItems` of where each
    starts (each item is decoded to check it, then dropped)."""
    values: list[Any] = []
    starts = array.array("q")  # 8 bytes an item: a hostile batch may hold millions
    append = starts.append if lazy else values.append
    scan, space, blank = _json_scan, _json_space, _JSON_BLANK
    objects = False
    done = 0
    end = space(text, idx + 1).end()
    if text[end : end + 1] != "]":
        idx = end
        while True:
            try:
                value, end = scan(text, idx)
            except StopIteration as stop:
                raise json.JSONDecodeError("Expecting value", text, stop.value) from None
            if not lazy:
                append(value)
            else:
                append(idx)
                if not objects and text[idx] == "{":
                    objects = True
            # Compact JSON (what servers send) has no space to skip: test before matching.
            separator = text[end : end + 1]
            if separator in blank:
                end = space(text, end).end()
                separator = text[end : end + 1]
            if separator == "]":
                break
            if separator != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, end)
            idx = end + 1
            if text[idx : idx + 1] in blank:
                idx = space(text, idx).end()
            done += 1
            if done == _JSON_ITEMS_PER_STEP:
                done = 0
                yield
    return (LazyItems(text, starts, objects) if lazy else values), end + 1


# XML element kinds of the fold's stack frames (_RES and _ITEM first: see `kind <= _ITEM`).
_RES = 0  # resource / input: children are property, propertyList, link, resource
_ITEM = 1  # propertyList item: text, or a dict when it holds properties (children as _RES)
_PROP = 2  # property: text -> parent[name]
_PLIST = 3  # propertyList: items -> list
_EVENTS = 4  # events root
_SENDER = 5  # sender: every child is an event
_EVENT = 6  # an event element (its name is the event type)
_BAG = 7  # reason / debugInfo / parameters / any element under them: text or a dict
_TEXT = 8  # a text-only child (event status)
_SKIP = 9  # unknown element: ignored with its subtree
_DOC = 10  # the bottom frame, below the root element (saves an empty-stack test per element)

_SKIP_FRAME = (_SKIP, None, None)
_DOC_FRAME = (_DOC, None, None)

# Every ASCII casing of true/false (what `.lower()` would fold; no other character lowers
# to these letters): one dict lookup per property value instead of a length test and a
# lower().
_BOOLS: dict[str, bool] = {
    "".join(chars): flag
    for word, flag in (("true", True), ("false", False))
    for chars in itertools.product(*((c, c.upper()) for c in word))
}


def _xml_int(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # not a number after all: keep the text rather than fail


def _links_of(target: dict[str, Any]) -> dict[str, Any]:
    """``target["_links"]``, made if it has none yet."""
    links = target.get("_links")
    if links is None:
        links = target["_links"] = {}
    return links


def _put(container: dict[str, Any], key: str, value: Any) -> None:
    """One value stays a value; a repeated key becomes a list (the JSON convention)."""
    old = container.get(key)
    if old is None:
        container[key] = value
    elif type(old) is list:
        old.append(value)
    else:
        container[key] = [old, value]


def _refuse_doctype(*_args: object) -> NoReturn:
    raise DecodeError("XML DOCTYPE declarations are refused")


# Defence in depth: entity declarations and external references can only come from a
# DOCTYPE, which _refuse_doctype already stops, so expat never calls these two today.
def _refuse_entity(*_args: object) -> NoReturn:  # pragma: no cover
    raise DecodeError("XML entity declarations are refused")


def _refuse_external(*_args: object) -> NoReturn:  # pragma: no cover
    raise DecodeError("XML external entities are refused")


def _new_resource(attrs: dict[str, str]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    rel = attrs.get("rel")
    if rel is not None:
        res["rel"] = rel
    href = attrs.get("href")
    if href is not None:
        res["_links"] = {"self": {"href": href}}
    return res


class RejectedEvent:
    """An XML event refused for a malformed element (``why``): in place of the event in
    its sender's list, reported as rejected when the batch is read."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"RejectedEvent({self.why!r})"

    # A value in a decoded document, compared as the dicts around it are (two decodes of
    # one body are equal: the fast path is checked against the fold so).
    def __eq__(self, other: object) -> bool:
        if type(other) is not RejectedEvent:
            return NotImplemented
        return self.why == other.why

    def __hash__(self) -> int:
        return hash(self.why)


def _reason_from_attrs(attrs: dict[str, str]) -> dict[str, Any]:
    return {k: attrs[k] for k in ("code", "subcode", "message") if k in attrs}


def _fold_xml(
    body: bytes, content_type: str, step: int | None
) -> Generator[None, None, dict[str, Any]]:
    """The XML fold; with ``step``, expat gets the body in pieces of that size and the
    generator yields after each (without, it never yields).

    expat calls back into Python for every start tag, end tag and text run, so the
    per-element cost is what matters: `start` hands a resource's children (most of an
    event batch) straight to `start_resource_child`, and every other element to
    `start_other`. (An event batch in compact form does not come here: `_FastBatch`.)
    """
    # Each frame: (kind, target, key). target is the dict/list the element writes into.
    stack: list[tuple[int, Any, Any]] = [_DOC_FRAME]
    push = stack.append
    pop = stack.pop
    text: list[str] = []
    clear_text = text.clear
    join = "".join
    bools_get = _BOOLS.get
    root: list[dict[str, Any]] = []

    def start_resource_child(
        name: str, attrs: dict[str, str], target: dict[str, Any]
    ) -> tuple[int, Any, Any]:
        if name == "property":
            pname = attrs.get("name")
            if pname is None:
                raise DecodeError("<property> without a name")
            clear_text()
            return (_PROP, target, pname)
        if name == "link":
            rel = attrs.pop("rel", None)
            if rel is None:
                raise DecodeError("<link> without a rel")
            links = _links_of(target)
            if rel == "self":
                links["self"] = attrs  # the resource's href attribute already said so
            else:
                _put(links, rel, attrs)
            return _SKIP_FRAME
        if name == "propertyList":
            pname = attrs.get("name")
            if pname is None:
                raise DecodeError("<propertyList> without a name")
            items: list[Any] = []
            target[pname] = items
            return (_PLIST, items, None)
        if name == "resource":
            rel = attrs.get("rel")
            if rel is None:
                raise DecodeError("embedded <resource> without a rel")
            child = _new_resource(attrs)
            embedded = target.get("_embedded")
            if embedded is None:
                embedded = target["_embedded"] = {}
            _put(embedded, rel, child)
            return (_RES, child, None)
        return _SKIP_FRAME

    def start_bag_child(
        name: str, attrs: dict[str, str], target: dict[str, Any]
    ) -> tuple[int, Any, Any]:
        if name in ("property", "propertyList"):
            return start_resource_child(name, attrs, target)
        if name == "link":
            target["link"] = attrs
            return _SKIP_FRAME
        clear_text()
        return (_BAG, target, (name, {}))

    def start(name: str, attrs: dict[str, str]) -> None:
        if len(stack) > MAX_XML_DEPTH:  # the _DOC frame is not an element
            raise DecodeError(f"XML nested deeper than {MAX_XML_DEPTH} elements")
        kind, target, _key = stack[-1]
        try:
            if kind <= _ITEM and ":" not in name:  # _RES or _ITEM: the hot path
                push(start_resource_child(name, attrs, target))
                return
            push(start_other(name, attrs, kind, target, _key))
        except DecodeError as exc:
            if not reject_event(str(exc)):
                raise
            push(_SKIP_FRAME)

    def reject_event(why: str) -> bool:
        """A malformed element inside an event rejects that event only, as a malformed
        JSON event is (the batch is still acknowledged: refused whole, it would be
        re-delivered forever). False outside an event: the body is malformed."""
        for index in range(len(stack) - 1, 0, -1):
            kind, event, _key = stack[index]
            if kind == _EVENT:
                events = stack[index - 1][1]  # the _SENDER frame's list
                if events and events[-1] is event:
                    events[-1] = RejectedEvent(why)  # the rest of the event goes nowhere
                return True
        return False

    def start_other(
        name: str, attrs: dict[str, str], kind: int, target: Any, key: Any
    ) -> tuple[int, Any, Any]:
        if ":" in name:
            name = name.rpartition(":")[2]
        if kind <= _ITEM:  # _RES or _ITEM
            return start_resource_child(name, attrs, target)
        if kind == _SENDER:
            event: dict[str, Any] = {"type": name}
            link = {k: attrs[k] for k in ("rel", "href", "title") if k in attrs}
            if link:
                event["link"] = link
            if "status" in attrs:
                event["status"] = attrs["status"]
            reason = _reason_from_attrs(attrs)
            if reason:
                event["reason"] = reason
            target.append(event)
            return (_EVENT, event, None)
        if kind == _EVENT:
            if name == "resource":
                return start_resource_child(name, attrs, target)
            if name == "in":
                target["in"] = {k: attrs[k] for k in ("rel", "href", "title") if k in attrs}
                return _SKIP_FRAME
            if name == "link":
                rel = attrs.pop("rel", None)
                if rel == "in":
                    target["in"] = attrs
                elif rel is not None:
                    _put(_links_of(target), rel, attrs)
                return _SKIP_FRAME
            if name == "status":
                clear_text()
                return (_TEXT, target, "status")
            if name == "reason":
                reason = _reason_from_attrs(attrs)
                reason.update(target.get("reason") or {})
                target["reason"] = reason
                return (_BAG, reason, None)
            return _SKIP_FRAME
        if kind == _PLIST:
            if name == "item":
                clear_text()
                return (_ITEM, {}, target)
            return _SKIP_FRAME
        if kind == _EVENTS:
            if name == "sender":
                events: list[dict[str, Any]] = []
                sender: dict[str, Any] = {k: attrs[k] for k in ("rel", "href") if k in attrs}
                sender["events"] = events
                senders = target.get("sender")
                if senders is None:
                    senders = target["sender"] = []
                senders.append(sender)
                return (_SENDER, events, None)
            if name == "link":
                rel = attrs.pop("rel", None)
                if rel is None:
                    raise DecodeError("<link> without a rel")
                _put(_links_of(target), rel, attrs)
            return _SKIP_FRAME
        if kind == _BAG:
            return start_bag_child(name, attrs, target if key is None else key[1])
        if kind == _DOC:
            if root:  # pragma: no cover - expat refuses a second root element itself
                raise DecodeError("more than one root element")
            if name in ("resource", "input"):
                doc = _new_resource(attrs)
                frame: tuple[int, Any, Any] = (_RES, doc, None)
            elif name == "events":
                doc = {}
                if "href" in attrs:
                    doc["_links"] = {"self": {"href": attrs["href"]}}
                frame = (_EVENTS, doc, None)
            elif name == "reason":
                doc = _reason_from_attrs(attrs)
                frame = (_BAG, doc, None)
            else:
                raise DecodeError(f"unexpected XML root element <{name}>")
            root.append(doc)
            return frame
        return _SKIP_FRAME  # _PROP, _TEXT, _SKIP: nested markup is ignored

    def end(_name: str) -> None:
        kind, target, key = pop()
        if kind == _PROP:
            value = join(text)
            flag = bools_get(value)
            if flag is not None and key not in _TEXT_PROPERTIES:
                target[key] = flag
            elif key in INTEGER_PROPERTIES:
                target[key] = _xml_int(value)
            elif key != "rel" or value or "rel" not in target:
                # <property name="rel"> is the resource's own rel, as JSON's "rel": the rel
                # attribute of an embedded resource is the name it is embedded under
                # (messagingInvitation_ref: <resource rel="from"> holds rel participant)
                target[key] = value
        elif kind in (_SKIP, _RES):
            return
        elif kind == _ITEM:
            key.append(target if target else join(text))
        elif kind == _BAG:
            if key is None:
                return
            name, bag = key
            if bag:
                target[name] = bag
            else:
                value = join(text).strip()
                if value:  # empty <debugInfo/> / <parameters/> carry nothing
                    target[name] = value
        elif kind == _TEXT:
            target[key] = join(text).strip()

    parser = _expat_parser()
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        if step is None or len(body) <= step:
            parser.Parse(body, True)
        else:
            for offset in range(0, len(body), step):
                parser.Parse(body[offset : offset + step], False)
                yield
            parser.Parse(b"", True)
    except DecodeError as exc:
        exc.content_type = content_type
        raise
    except (expat.ExpatError, ValueError, LookupError, RecursionError) as exc:
        problem: str | None = str(exc)
    else:
        problem = None
    if problem is not None:  # not chained: users see ucwa_async errors only
        raise DecodeError(f"malformed XML body: {problem}", content_type=content_type)
    return root[0]


# ---------------------------------------------------------------- XML: compact event batches
#
# expat calls back into Python three times per element (start, text, end), which makes the
# fold above ~4x slower than json.loads on an event batch, whatever the handlers do. An
# event batch as UCWA writes it (attributes in one order, no entity references, indented
# or not) has a fixed shape, so it is cut up with a few regular expressions and string
# operations that each take a whole event or a whole resource at a time. Any body they
# do not recognise in full goes to the fold, which then gives its result or its error;
# what they accept is what the fold gives for it (tests/core/test_wire_xml_fast.py
# compares the two).
#
# They accept no "<" that does not start one of the elements below: so no DOCTYPE,
# comment, CDATA section or processing instruction (but the XML declaration spelt out
# below), and no "&" (no entity or character reference to expand). With the start and
# end tags all checked, what is left for expat to refuse is a character XML cannot carry
# or a "]]>" in the text: _not_xml_text looks for those, and the body is strict UTF-8.

_AV = r'[^"<&\t\n\r]*'  # an attribute value needing no normalisation or entity decoding
_S = r"[ \t\r\n]*"  # white space between elements (indentation), which the fold ignores
_FAST_HEAD_BYTES = (b'<?xml version="1.0" encoding="utf-8"?>', b"<events ")
_FAST_HEAD = re.compile(
    rf'(?:<\?xml version="1\.0" encoding="utf-8"\?>{_S})?<events href="({_AV})" xmlns="{_AV}">'
)
_FAST_SPACE = re.compile(_S)
_FAST_LINK = re.compile(rf'{_S}<link rel="({_AV})" href="({_AV})" ?/>')
_FAST_SENDER = re.compile(rf'{_S}<sender rel="({_AV})" href="({_AV})">')
# An event (a status attribute, no reason): self-closed, or an optional <in>, <status> and
# <resource> start, in this order.
_FAST_EVENT = re.compile(
    rf'{_S}<([A-Za-z]+) rel="({_AV})" href="({_AV})"(?: status="({_AV})")?(?: ?(/)>|>{_S}'
    rf'(?:<in rel="({_AV})" href="({_AV})" ?/>{_S})?'
    rf"(?:<status>([^<&\r]*)</status>{_S})?"
    rf'(?:<resource rel="({_AV})" href="({_AV})">)?)'
)
# A resource's children. Each match holds one "<" (a link) or two (a property), and in a
# well-formed body every "<" starts markup: when the matches hold every "<" of the body,
# the rest is text between the children, which the fold ignores too.
_FAST_RES_LINK = re.compile(rf'<link rel="({_AV})" href="({_AV})" ?/>')
_FAST_RES_PROP = re.compile(rf'<property name="({_AV})">([^<&\r]*)</property>')
# The same for a body with no & \t \n \r at all (most bodies), where they match the same
# (a "<" in an attribute value is one the count of "<" does not expect): a one-character
# negation is cheaper for the regular expression engine than a class.
_FAST_RES_LINK_PLAIN = re.compile(r'<link rel="([^"]*)" href="([^"]*)" ?/>')
_FAST_RES_PROP_PLAIN = re.compile(r'<property name="([^"]*)">([^<]*)</property>')
_XML_SPACE = " \t\r\n"
_get_value = operator.itemgetter(1)


class _FastBatch:
    """An event batch in compact form, cut up a slice at a time by :meth:`run`."""

    __slots__ = ("closers", "doc", "done", "events", "links", "pos", "text")

    def __init__(self, text: str, head: re.Match[str]) -> None:
        self.text = text
        self.pos = head.end()
        self.links: dict[str, Any] = {"self": {"href": head[1]}}
        self.doc: dict[str, Any] = {"_links": self.links}
        self.events: list[dict[str, Any]] | None = None  # inside a <sender>: its events
        self.done = False
        self.closers: dict[str, str] = {}

    @classmethod
    def start(cls, body: bytes) -> _FastBatch | None:
        if not body.startswith(_FAST_HEAD_BYTES):
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        head = _FAST_HEAD.match(text)
        return None if head is None else cls(text, head)

    def run(self, limit: int) -> bool:
        """Cut up the batch up to about ``limit`` (a character offset) or to its end;
        False when a part is not in compact form."""
        text = self.text
        pos = self.pos
        events = self.events
        startswith = text.startswith
        while not self.done:
            if events is not None:
                pos = self._events(pos, limit, events)
                if pos < 0:
                    return False
                if pos >= limit:
                    break
                pos = _FAST_SPACE.match(text, pos).end()  # type: ignore[union-attr]
                if not startswith("</sender>", pos):
                    return False
                pos += 9
                events = self.events = None
                continue
            if pos >= limit:
                break
            m = _FAST_LINK.match(text, pos)
            if m is not None:
                _put(self.links, m[1], {"href": m[2]})
                pos = m.end()
                continue
            m = _FAST_SENDER.match(text, pos)
            if m is not None:
                events = self.events = []
                senders = self.doc.get("sender")
                if senders is None:
                    senders = self.doc["sender"] = []
                senders.append({"rel": m[1], "href": m[2], "events": events})
                pos = m.end()
                continue
            if text[pos:].strip(_XML_SPACE) == "</events>":
                self.done = True
                pos = len(text)
                break
            return False
        self.pos = pos
        return True

    def _events(self, pos: int, limit: int, events: list[dict[str, Any]]) -> int:
        """The events from ``pos`` on, until ``limit`` or a non-event; the new position,
        or -1 when an event is not in compact form."""
        text = self.text
        startswith = text.startswith
        match_event = _FAST_EVENT.match
        find_links = _FAST_RES_LINK.findall
        find_props = _FAST_RES_PROP.findall
        find_links_plain = _FAST_RES_LINK_PLAIN.findall
        find_props_plain = _FAST_RES_PROP_PLAIN.findall
        closers = self.closers
        bools = _BOOLS
        skip_space = _FAST_SPACE.match
        while pos < limit:
            m = match_event(text, pos)
            if m is None:
                return pos
            kind, rel, href, outcome, closed, in_rel, in_href, status, res_rel, res_href = (
                m.groups()
            )
            event: dict[str, Any] = {"type": kind, "link": {"rel": rel, "href": href}}
            if outcome is not None:
                event["status"] = outcome
            pos = m.end()
            if closed is None:
                if in_rel is not None:
                    event["in"] = {"rel": in_rel, "href": in_href}
                if status is not None:
                    event["status"] = status.strip()
                if res_rel is not None:
                    end = text.find("</resource>", pos)
                    if end < 0:
                        return -1
                    body = text[pos:end]
                    if not ("&" in body or "\n" in body or "\r" in body or "\t" in body):
                        links = find_links_plain(body)
                        props = find_props_plain(body)
                    elif "&" in body:
                        return -1  # a reference in the text between the children
                    else:
                        links = find_links(body)
                        props = find_props(body)
                    if body.count("<") != len(links) + 2 * len(props):
                        return -1  # something else in there: a comment, a nested resource...
                    res: dict[str, Any] = {"rel": res_rel}
                    res_links: dict[str, Any] = {"self": {"href": res_href}}
                    res["_links"] = res_links
                    by_rel = {link_rel: {"href": link_href} for link_rel, link_href in links}
                    if len(by_rel) == len(links):
                        res_links.update(by_rel)  # (a "self" link replaces, as in the fold)
                    else:  # a rel repeated: a list, as in the fold
                        for link_rel, link_href in links:
                            old = res_links.get(link_rel)
                            if old is None or link_rel == "self":
                                res_links[link_rel] = {"href": link_href}
                            elif type(old) is list:
                                old.append({"href": link_href})
                            else:
                                res_links[link_rel] = [old, {"href": link_href}]
                    if bools.keys().isdisjoint(map(_get_value, props)):
                        values = dict(props)
                        if "_links" in values or "_embedded" in values:
                            return -1
                        if values.get("rel") == "":
                            del values["rel"]  # an empty rel property: the attribute stays
                        for key in INTEGER_PROPERTIES.intersection(values):
                            values[key] = _xml_int(values[key])
                        res.update(values)
                    else:  # a true/false value: the fold's rules, one property at a time
                        for key, value in props:
                            if key == "_links" or key == "_embedded":
                                return -1
                            flag = bools.get(value)
                            if flag is not None and key not in _TEXT_PROPERTIES:
                                res[key] = flag
                            elif key in INTEGER_PROPERTIES:
                                res[key] = _xml_int(value)
                            elif key != "rel" or value:
                                res[key] = value
                    event["_embedded"] = {res_rel: res}
                    pos = skip_space(text, end + 11).end()  # type: ignore[union-attr]
                closer = closers.get(kind)
                if closer is None:
                    closer = closers[kind] = f"</{kind}>"
                if not startswith(closer, pos):
                    return -1
                pos += len(closer)
            events.append(event)
        return pos


def _decode_xml(
    body: bytes, content_type: str, step: int | None
) -> Generator[None, None, dict[str, Any]]:
    """A compact event batch through :class:`_FastBatch`, anything else through the fold
    (:func:`_fold_xml`); with ``step``, a step per ``step`` bytes either way."""
    fast = _FastBatch.start(body)
    if fast is not None:
        decoded = yield from _decode_fast(fast, body, step)
        if decoded is not None:
            return decoded
    return (yield from _fold_xml(body, content_type, step))


def _decode_fast(
    fast: _FastBatch, body: bytes, step: int | None
) -> Generator[None, None, dict[str, Any] | None]:
    """``fast`` cut up, a step per ``step`` bytes; None when it gives up (the fold then
    decodes the body, or says what is wrong with it)."""
    if step is None or len(body) <= step:
        if _not_xml_text(body) or not fast.run(len(body)):
            return None
    else:
        for offset in range(0, len(body), step):
            # (two bytes of overlap: a "]]>" or a three-byte character across the cut)
            if _not_xml_text(body[max(offset - 2, 0) : offset + step]):
                return None
            # Characters never outnumber bytes: at most `step` characters a step.
            if not fast.run(offset + step):
                return None
            yield
    return fast.doc if fast.done else None


# The characters XML 1.0 refuses, as UTF-8: C0 controls but tab, LF and CR; U+FFFE, U+FFFF.
_NOT_XML_BYTES = bytes(c for c in range(32) if c not in b"\t\n\r")


def _not_xml_text(chunk: bytes) -> bool:
    """Whether a piece of a compact batch holds what expat would refuse in its text: a
    character XML cannot carry, or "]]>" (which it can carry in an attribute value: the
    fold then decides). Everything else expat checks, the compact form rules out."""
    if len(chunk.translate(None, _NOT_XML_BYTES)) != len(chunk):
        return True
    if b"]" in chunk and b"]]>" in chunk:
        return True
    return not chunk.isascii() and (b"\xef\xbf\xbe" in chunk or b"\xef\xbf\xbf" in chunk)


def _expat_parser() -> expat.XMLParserType:
    """An expat parser that refuses DTDs and entities (the fold adds its handlers)."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    return parser


# --------------------------------------------------------------------------- encode


def _check_xml_chars(value: str) -> str:
    # Characters XML 1.0 cannot carry at all: fail loudly rather than send a broken body.
    for ch in value:
        code = ord(ch)
        if (code < 0x20 and ch not in "\t\n\r") or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            raise ValueError(f"character U+{code:04X} cannot be sent in XML")
        if code in (0xFFFE, 0xFFFF):
            raise ValueError(f"character U+{code:04X} cannot be sent in XML")
    return value


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# In attributes a parser normalises tab/CR/LF to spaces: escape them so they round-trip.
_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\r": "&#13;",
        "\n": "&#10;",
        "\t": "&#9;",
    }
)


def _xml_text(value: object) -> str:
    if isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        raise TypeError(f"cannot encode a {type(value).__name__} as an XML property value")
    return _check_xml_chars(text).translate(_TEXT_ESCAPES)


def _xml_attr(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"XML attribute values must be str, not {type(value).__name__}")
    return _check_xml_chars(value).translate(_ATTR_ESCAPES)


def _encode_xml(data: Mapping[str, Any]) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?>', f'<input xmlns="{UCWA_NS}">']
    for key, value in data.items():
        if key == "_links":
            if not isinstance(value, Mapping):
                raise TypeError("_links must be a mapping of rel to {'href': ...}")
            for rel, link in value.items():
                for one in link if isinstance(link, list | tuple) else (link,):
                    if not isinstance(one, Mapping) or "href" not in one:
                        raise TypeError(f"link {rel!r} must be a mapping with an href")
                    parts.append(f'<link rel="{_xml_attr(rel)}" href="{_xml_attr(one["href"])}"/>')
        elif value is None:
            continue  # XML has no null: an absent property means the same
        elif isinstance(value, list | tuple):
            parts.append(f'<propertyList name="{_xml_attr(key)}">')
            parts.extend(f"<item>{_xml_text(item)}</item>" for item in value)
            parts.append("</propertyList>")
        else:
            parts.append(f'<property name="{_xml_attr(key)}">{_xml_text(value)}</property>')
    parts.append("</input>")
    return "".join(parts).encode("utf-8")


# One encoder for every request body (json.dumps with options builds one per call).
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_input(data: Mapping[str, Any], wire: WireFormat) -> tuple[bytes, str]:
    """Encode a request body given in canonical shape; returns ``(body, content type)``.

    ``data`` holds scalar properties, lists, and ``"_links": {rel: {"href": ...}}``.
    JSON is compact UTF-8. XML is an ``<input xmlns=UCWA_NS>`` document with
    ``<property>``, ``<propertyList>`` and ``<link>`` children (booleans as True/False,
    ``None`` values omitted). Raises TypeError for values a wire cannot carry.
    """
    if wire == "json":
        return _JSON_ENCODER.encode(data).encode("utf-8"), JSON_MEDIA_TYPE
    if wire == "xml":
        return _encode_xml(data), UCWA_XML_MEDIA_TYPE
    raise ValueError(f"unknown wire format {wire!r}")


# --------------------------------------------------------------------------- data URIs


def data_uri(text: str, mime: str = "text/plain") -> str:
    """``data:<mime>;base64,<UTF-8 text in base64>`` (a message in continueMessaging)."""
    return f"data:{mime};base64,{base64.b64encode(text.encode('utf-8')).decode('ascii')}"


def parse_data_uri(uri: str) -> tuple[str, str]:
    """The inverse of :func:`data_uri`: ``(mime type, text)``.

    Accepts base64 and percent-encoded payloads and a ``charset`` parameter (default
    UTF-8); raises :class:`DecodeError` for anything that is not a valid data URI.
    """
    if not isinstance(uri, str) or not uri[:5].lower() == "data:":
        raise DecodeError("not a data: URI")
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise DecodeError("data: URI without a comma")
    params = [p.strip() for p in header.split(";")]
    mime = params[0].lower() or "text/plain"
    is_base64 = False
    charset = "utf-8"
    for param in params[1:]:
        if param.lower() == "base64":
            is_base64 = True
        elif param.lower().startswith("charset="):
            charset = param[8:].strip('"') or "utf-8"
    try:
        raw = base64.b64decode(payload, validate=True) if is_base64 else unquote_to_bytes(payload)
        return mime, raw.decode(charset)
    except (binascii.Error, ValueError, LookupError) as exc:
        problem = str(exc)
    raise DecodeError(f"malformed data: URI: {problem}")  # not chained: see _decode_json
