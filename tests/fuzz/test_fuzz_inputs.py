"""Property fuzzing of everything that reads server input, beyond tests/core/test_wire_fuzz.py.

Arbitrary input may only raise the library's typed errors (``UcwaError`` subclasses) or
produce a well-formed result/action; never ``KeyError``, ``TypeError``, ``AttributeError``...

- the href resolver and the correlation key function (arbitrary text, hostile shapes);
- ``ChannelState.on_response`` over *sequences* of answers in both wires, with hostile
  ``next`` / ``resync`` / ``resume`` hrefs: the cursor always stays an absolute http(s)
  URL on which ``poll_url()`` works;
- structured XML event batches (attributes and text drawn at random) through the XML
  decoder and ``parse_event_batch``;
- ``Correlator.feed`` with arbitrary events; ``parse_data_uri``.

CI runs a bounded profile (``UCWA_FUZZ_EXAMPLES``, default 200 per test);
``UCWA_FUZZ_EXAMPLES=10000 pytest tests/fuzz --timeout=0`` is the long mode (about 20 minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from ucwa_async._core import wire as _wire
from ucwa_async._core.backoff import Backoff
from ucwa_async._core.channel import (
    ChannelState,
    Deliver,
    Empty,
    Fatal,
    Reauthenticate,
    RecreateApplication,
    Replaced,
    Resume,
    Resync,
    Retry,
)
from ucwa_async._core.correlate import Correlator
from ucwa_async._core.errors import DecodeError, UcwaError, UnsafeHrefError
from ucwa_async._core.models import Event, EventBatch, Link, parse_event_batch, parse_resource
from ucwa_async._core.urls import make_normalizer, resolve_href

EXAMPLES = int(os.environ.get("UCWA_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BASE = "https://fe1.contoso.com:4443/ucwa/oauth/v1/applications/833"
EVENTS = BASE + "/events?ack=1"

HOSTILE_HREFS = st.sampled_from(
    [
        "javascript:alert(1)",
        "JaVaScRiPt:x",
        "file:///etc/passwd",
        "data:text/plain;base64,QQ==",
        "//evil.example/x",
        "//v1/applications/833/events?ack=9",
        "//v1",
        "//v1:80/x",
        "//user@v1/x",
        "http://user:pw@evil.example/x",
        "https://evil.example:99999/x",
        "https://[::1/x",
        "https://[::1]/x",
        "http://%00/x",
        "../../../../etc/passwd",
        "/ucwa/%2e%2e/%2e%2e/x",
        "?ack=7",
        "#frag",
        "events?ack=2\r\nX-Injected: 1",
        "\x00",
        " ",
        "http://",
        "https:///x",
        "ftp://fe1.contoso.com/x",
        "/ucwa/oauth/v1/applications/833/events?ack=" + "9" * 500,
        "\u202e/x",
        "http://fe1.contoso.com:4443/ucwa/oauth/v1/applications/833/events?ack=3",
    ]
)
HREF_ALPHABET = st.sampled_from(list(":/?#[]@!$&'()*+,;=%.-_~ \\\t\r\n\x00aAzZ09v1é\u202e"))
HREFS = HOSTILE_HREFS | st.text(HREF_ALPHABET, max_size=40) | st.text(max_size=30)


def _assert_safe_url(url: str, *, same_origin_as: str | None = None) -> None:
    parsed = URL(url)
    assert parsed.scheme in ("http", "https"), url
    assert parsed.raw_host, url
    assert parsed.raw_user is None, url
    assert parsed.raw_password is None, url
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in url), url
    if same_origin_as is not None:
        assert parsed.origin() == URL(same_origin_as).origin(), (url, same_origin_as)


@FUZZ
@given(href=HREFS, base_path=st.none() | st.sampled_from(["", "/ucwa", "/ucwa/oauth/", "x"]))
def test_resolve_href_only_typed_errors(href: str, base_path: str | None) -> None:
    try:
        resolved = resolve_href(href, base_url=BASE, app_base_path=base_path)
    except UnsafeHrefError:
        return
    stripped = href.strip()
    relative = not stripped.startswith("//") and ":" not in stripped.split("/", 1)[0]
    is_v1 = stripped.lower().startswith("//v1/") or stripped.lower() in ("//v1",)
    _assert_safe_url(resolved, same_origin_as=BASE if (relative or is_v1) else None)


@FUZZ
@given(href=HREFS)
def test_correlation_key_only_typed_errors(href: str) -> None:
    key = make_normalizer(base_url=BASE, app_base_path="/ucwa/oauth")
    try:
        result = key(href)
    except UnsafeHrefError:
        return
    assert result == key(result)  # a key is a fixed point
    _assert_safe_url(result)


def _json_batch(links: dict[str, str], events: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "_links": {rel: {"href": href} for rel, href in links.items()},
            "sender": [{"rel": "communication", "href": BASE + "/communication", "events": events}],
        }
    ).encode()


def _xml_batch(links: dict[str, str], events: list[dict[str, Any]]) -> bytes:
    parts = [f'<events xmlns="{_wire.UCWA_NS}" href="{escape(EVENTS)}">']
    for rel, href in links.items():
        parts.append(f"<link rel={quoteattr(rel)} href={quoteattr(_xml_safe(href))}/>")
    parts.append(f'<sender rel="communication" href="{BASE}/communication">')
    for event in events:
        link = event.get("link", {})
        parts.append(
            f"<{event['type']} rel={quoteattr(_xml_safe(str(link.get('rel', ''))))} "
            f"href={quoteattr(_xml_safe(str(link.get('href', ''))))}>"
        )
        if "status" in event:
            parts.append(f"<status>{escape(_xml_safe(str(event['status'])))}</status>")
        parts.append(f"</{event['type']}>")
    parts.append("</sender></events>")
    return "".join(parts).encode()


def _xml_safe(text: str) -> str:
    return "".join(c for c in text if c in "\t\n\r" or 0x20 <= ord(c) < 0xD800)


EVENT_DICTS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["started", "updated", "completed", "added", "deleted"]),
        "link": st.fixed_dictionaries(
            {"rel": st.sampled_from(["messagingInvitation", "x", ""]), "href": HREFS}
        ),
    },
    optional={"status": st.sampled_from(["Success", "Failure", "", "weird"])},
)
ANSWERS = st.one_of(
    st.tuples(
        st.just(200),
        st.sampled_from(["json", "xml"]),
        st.dictionaries(st.sampled_from(["next", "resync", "resume", "self"]), HREFS, max_size=3),
        st.lists(EVENT_DICTS, max_size=3),
    ),
    st.tuples(
        st.sampled_from([200, 204, 301, 401, 403, 404, 409, 410, 429, 500, 503, 599]),
        st.sampled_from(["json", "xml", "html", "none"]),
        st.just({}),
        st.just([]),
    ),
)
ACTIONS = (
    Deliver,
    Empty,
    Resync,
    Resume,
    RecreateApplication,
    Replaced,
    Reauthenticate,
    Retry,
    Fatal,
)


@FUZZ
@given(answers=st.lists(ANSWERS, min_size=1, max_size=6), retry_after=st.none() | HREFS)
def test_channel_state_sequences_never_raise(
    answers: list[tuple[int, str, dict[str, str], list[dict[str, Any]]]], retry_after: str | None
) -> None:
    state = ChannelState(EVENTS, backoff=Backoff(base=0.01, cap=1.0), retry_after_cap=5.0)
    for status, kind, links, events in answers:
        if kind == "json":
            body, ctype = _json_batch(links, events), _wire.JSON_MEDIA_TYPE
        elif kind == "xml":
            body, ctype = _xml_batch(links, events), _wire.UCWA_XML_MEDIA_TYPE
        elif kind == "html":
            body, ctype = b"<html>Access is denied</html>", "text/html"
        else:
            body, ctype = b"", None
        action = state.on_response(status, ctype, body, retry_after=retry_after)
        assert isinstance(action, ACTIONS)
        if isinstance(action, Retry):
            assert 0 <= action.after <= 5.0
            assert isinstance(action.error, UcwaError)
        if isinstance(action, Deliver):
            assert action.batch.events
        # Whatever came in, the cursor is still a safe absolute URL and can be polled.
        _assert_safe_url(state.current_url)
        assert URL(state.poll_url()).query.get("timeout") == str(state.timeout)


XML_TEXT = st.text(max_size=12).map(_xml_safe)
XML_NAME = st.sampled_from(
    [
        "resource",
        "link",
        "property",
        "propertyList",
        "item",
        "started",
        "completed",
        "updated",
        "sender",
        "status",
        "reason",
        "code",
        "in",
        "events",
        "x",
    ]
)


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(XML_NAME)
    attrs = draw(
        st.dictionaries(
            st.sampled_from(["rel", "href", "name", "status", "code"]), XML_TEXT, max_size=3
        )
    )
    attr_text = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    # Depth 3: deeper trees cost hypothesis seconds per example and reach no new code.
    children = draw(st.lists(xml_trees(depth + 1), max_size=3)) if depth < 3 else []
    text = escape(draw(XML_TEXT))
    return f"<{name}{attr_text}>{text}{''.join(children)}</{name}>"


@FUZZ
@given(
    root=st.sampled_from(["events", "resource", "reason"]), inner=st.lists(xml_trees(), max_size=4)
)
def test_structured_xml_only_decode_errors(root: str, inner: list[str]) -> None:
    body = f'<{root} xmlns="{_wire.UCWA_NS}" href="/x">{"".join(inner)}</{root}>'.encode()
    try:
        decoded = _wire.decode(body, _wire.UCWA_XML_MEDIA_TYPE)
    except DecodeError:
        return
    assert isinstance(decoded, dict)
    for parse in (parse_event_batch, parse_resource):
        with contextlib.suppress(DecodeError):
            parse(decoded)


@FUZZ
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["started", "updated", "completed", "deleted", ""]),
            HREFS,
            st.none() | st.sampled_from(["op1", "op2", ""]),
            st.none() | st.sampled_from(["Success", "Failure", "x"]),
        ),
        max_size=8,
    ),
    binds=st.lists(st.tuples(st.sampled_from(["op1", "op2"]), HREFS), max_size=3),
)
def test_correlator_feed_never_raises(
    events: list[tuple[str, str, str | None, str | None]], binds: list[tuple[str, str]]
) -> None:
    correlator = Correlator(normalize=make_normalizer(base_url=BASE, app_base_path="/ucwa/oauth"))
    correlator.expect("op1")
    correlator.expect("op2")
    for operation_id, href in binds:
        # Documented: bind refuses an href another pending operation holds (ValueError).
        with contextlib.suppress(UcwaError, ValueError, KeyError):
            correlator.bind(operation_id, href)
    terminal: dict[str, int] = {}
    for kind, href, op, status in events:
        resource = parse_resource({"rel": "messagingInvitation", "operationId": op}) if op else None
        event = Event(
            type=kind,
            link=Link(rel="messagingInvitation", href=href),
            sender=Link(rel="communication", href=BASE + "/communication"),
            status=status,
            resource=resource,
        )
        for resolution in correlator.feed(event):
            if type(resolution).__name__ != "Progress":
                terminal[resolution.operation_id] = terminal.get(resolution.operation_id, 0) + 1
    assert all(n == 1 for n in terminal.values()), terminal  # at most one end per operation


@FUZZ
@given(
    uri=st.text(max_size=60)
    | st.sampled_from(
        ["data:", "data:,", "data:;base64,!!", "data:text/plain;charset=nope;base64,QQ=="]
    )
)
def test_parse_data_uri_only_decode_errors(uri: str) -> None:
    try:
        mime, text = _wire.parse_data_uri(uri)
    except DecodeError:
        return
    assert isinstance(mime, str)
    assert isinstance(text, str)


def test_event_batch_type_is_what_parsers_return() -> None:
    batch = parse_event_batch(json.loads(_json_batch({"next": EVENTS}, [])))
    assert isinstance(batch, EventBatch)
