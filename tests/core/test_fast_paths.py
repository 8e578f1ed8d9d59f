"""The fast paths taken for speed (issue 13) give what the general paths give.

``urls.resolve_href`` / ``urls.normalize`` skip yarl for hrefs already in normal form;
``wire.decode_steps`` decodes JSON a step at a time; ``models.EventReader`` parses a
batch's events a slice at a time. Each is compared with the general path here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from step_runner import run_counting
from yarl import URL

from ucwa_async._core import urls, wire
from ucwa_async._core.errors import DecodeError
from ucwa_async._core.models import parse_event_batch, read_event_batch

JSON = "application/json"
BASES = [
    "http://127.0.0.1:5000/ucwa/oauth/v1/applications/1",
    "https://fe1.contoso.com/ucwa/v1/applications/2/",
    "https://FE1.contoso.com:443/a",
    "http://h:80/x",
    "https://h.example.com:4443/ucwa",
]
HREFS = [
    "/ucwa/oauth/v1/applications/1/communication/messagingInvitations/abc-1_2~3",
    "/a/./b",
    "/a/../b",
    "/a/.hidden/b",
    "/a/b.c/d",
    "//v1/applications/1",
    "https://fe1.contoso.com/ucwa/v1/x",
    "https://fe1.contoso.com:443/x",
    "http://h:80/x",
    "https://FE1.contoso.com/x",
    "http://127.0.0.1:5000/a/b",
    "http://127.0.0.1:5000//v1/a",
    "/a%20b",
    "/a?b=1",
    "/a#f",
    "events?ack=2",
    "/",
    "https://h.example.com:4443/ucwa/v1/a.b",
    "https://h:99999/x",
    "/a//b",
    "/a/b/.",
    "/a/b/..",
    "/.a",
    "http://h/",
    "http://h",
    "http://a..b/x",
    "http://0/x",
    "http://h:0443/x",
    "/a/b.",
    " /a",
    "/a\r\nb",
    "javascript:alert(1)",
]


def _outcome(call: Any) -> str:
    try:
        return str(call())
    except Exception as exc:  # the same error type on both paths
        return type(exc).__name__


def _slow_normalize(url: str) -> str:
    parsed = URL(url.strip())
    if not parsed.is_absolute():
        return str(parsed.with_fragment(None))
    return str(
        URL.build(
            scheme=parsed.scheme,
            authority=parsed.raw_authority,
            path=parsed.raw_path or "/",
            query_string=parsed.raw_query_string,
            encoded=True,
        )
    )


def _check_href(href: str, base: str) -> None:
    fast = _outcome(lambda: urls.resolve_href(href, base_url=base, app_base_path="/ucwa/oauth"))
    slow = _outcome(lambda: urls._resolve_href(href, base_url=base, app_base_path="/ucwa/oauth"))
    assert fast == slow, (href, base)
    assert _outcome(lambda: urls.normalize(href)) == _outcome(lambda: _slow_normalize(href))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("href", HREFS)
def test_href_fast_paths_agree(href: str, base: str) -> None:
    _check_href(href, base)


_PIECES = st.sampled_from(["/", "a", "B", ".", "..", "-", "_", "~", "%41", "//", "v1", "?x", "#"])


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["", "http://h", "https://h.example.com:8443", "HTTP://H", "//"]),
    pieces=st.lists(_PIECES, max_size=8),
    base=st.sampled_from(BASES),
)
def test_href_fast_paths_agree_generated(prefix: str, pieces: list[str], base: str) -> None:
    _check_href(prefix + "".join(pieces), base)


def _decode_both(body: bytes) -> tuple[str, str]:
    def steps() -> Any:
        return wire.complete(wire.decode_steps(body, JSON))

    def lazy() -> Any:
        return wire.complete(wire.decode_steps(body, JSON, lazy_events=True))

    at_once = _outcome(lambda: wire.decode(body, JSON))
    try:
        assert lazy() == wire.decode(body, JSON)  # LazyItems compare as lists
    except DecodeError:
        assert at_once == "DecodeError"
    return at_once, _outcome(steps)


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b' { "a" : [ 1 , 2.5 , "x" , {"b": [ ] } , [] , [[[[1]]]] ] , "c": {"d": {"e": 1}} } ',
        b'{"a":1,"a":2}',
        '\ufeff{"a": 1}'.encode(),
        '{"a": "\u00e9"}'.encode("utf-16"),
        b'{"sender":[{"events":[{"type":"x"},0,null,"s",[1]]}], "_links": {}}',
        b'{"sender":[{"events":[]}]}',
        b'{"sender":[{"events":[1 2]}]}',
        b'{"sender":[{"events":[1,]}]}',
        b'{"sender":[{"events":[}]}',
        b'{"a":NaN}',
        b"[1]",
        b'{"a":1,}',
        b'{"a" 1}',
        b'{"a":1} x',
        b"{a:1}",
        b'{"a":[1 2]}',
        b'{"a":',
        b'{"a":"\x01"}',
        b"{",
        b'"x"',
        b'{"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    ],
)
def test_json_steps_decode_as_decode(body: bytes) -> None:
    at_once, steps = _decode_both(body)
    assert steps == at_once


def test_json_steps_refuse_with_decode_error() -> None:
    with pytest.raises(DecodeError):
        wire.complete(wire.decode_steps(b'{"a": [1,', JSON))
    utf16 = "application/json; charset=utf-16-le"
    body = '\ufeff{"a": 1}'.encode("utf-16-le")
    for decode in (wire.decode, lambda b, t: wire.complete(wire.decode_steps(b, t))):
        with pytest.raises(DecodeError):
            decode(body, utf16)
    assert wire.complete(wire.decode_steps(body[2:], utf16)) == {"a": 1}


def test_lazy_events_are_read_when_taken() -> None:
    link = {"rel": "conversation", "href": ""}
    events = [{"type": "added", "link": {**link, "href": f"/c/{n}"}} for n in range(7)]
    body = json.dumps({"_links": {"next": {"href": "n"}}, "sender": [{"events": events}]})
    decoded = wire.complete(wire.decode_steps(body.encode(), JSON, lazy_events=True))
    lazy = decoded["sender"][0]["events"]
    assert isinstance(lazy, wire.LazyItems)
    assert len(lazy) == 7
    assert lazy.objects
    assert lazy[2] == events[2]
    assert lazy == events
    assert lazy[1:3] == events[1:3]
    assert lazy != 3
    assert "7" in repr(lazy)
    reader = read_event_batch(decoded)
    assert reader.may_hold_events
    assert reader.items == 7
    first = reader.take(3)
    assert [e.link.href for e in first.events] == ["/c/0", "/c/1", "/c/2"]
    assert reader.read_all() == parse_event_batch(json.loads(body)).__class__(
        next_href="n", events=parse_event_batch(json.loads(body)).events[3:]
    )
    assert reader.items == 0
    assert not reader.may_hold_events


def test_reader_slices_keep_order_and_report_bound() -> None:
    raw: list[Any] = [0] * 30 + [{"type": "added", "link": {"href": "/x"}}] * 5
    d = {"sender": [{"events": raw}, 7, {"events": [1]}]}
    whole = parse_event_batch(d)
    reader = read_event_batch(d)
    copy = reader.copy()
    parts = [reader.take(4) for _ in range(20)]
    assert sum(p.rejected_count for p in parts) == whole.rejected_count == 32
    assert [r for p in parts for r in p.rejected] == list(whole.rejected)
    assert tuple(e for p in parts for e in p.events) == whole.events
    assert copy.read_all() == whole
    assert not read_event_batch({"sender": [{"events": [0, "x"]}, 3]}).may_hold_events


def test_decode_steps_refuses_as_decode() -> None:
    for body, ctype in ((b"x" * 20, JSON), (b"{}", None), (b"{}", "text/plain")):
        with pytest.raises(DecodeError):
            wire.complete(wire.decode_steps(body, ctype, max_size=10 if ctype else 100))
        with pytest.raises(DecodeError):
            wire.decode(body, ctype, max_size=10 if ctype else 100)
    assert wire.complete(wire.decode_steps(b"  ", None)) == {}


def test_xml_steps_decode_as_decode() -> None:
    xml = "application/vnd.microsoft.com.ucwa+xml"
    item = '<added rel="conversation" href="/c/{n}"/>'
    body = (
        '<?xml version="1.0" encoding="utf-8"?><events href="/e" '
        f'xmlns="{wire.UCWA_NS}"><link rel="next" href="/e?ack=2"/>'
        '<sender rel="communication" href="/com">'
        + "".join(item.format(n=n) for n in range(2000))
        + "</sender></events>"
    ).encode()
    taken, decoded = run_counting(wire.decode_steps(body, xml))
    assert taken == -(-len(body) // wire.XML_STEP_BYTES)
    assert decoded == wire.decode(body, xml)
    with pytest.raises(DecodeError):
        wire.complete(wire.decode_steps(body[:-3], xml))


def test_a_parser_bug_rejects_the_event_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ucwa_async._core import models

    def broken(_e: Any, _sender: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(models, "_parse_event", broken)
    batch = read_event_batch({"sender": [{"events": [{"type": "added"}]}]}).read_all()
    assert batch.events == ()
    assert batch.rejected == ("event not parsed: KeyError('bug')",)


def test_a_base_not_in_normal_form_takes_the_general_path() -> None:
    assert urls.resolve_href("/a/b", base_url="http://[::1]:8080/u") == "http://[::1]:8080/a/b"


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b'{"a": nope}',
        b'{"a": [1, nope]}',
        b'{"a": {"b": {"c": {"d": nope}}}}',
        b'{"sender": [{"rel": "x", "events": [1, 2, 3, 4, 5, 6, 7, 8, 9, nope]}]}',
    ],
)
def test_json_steps_refuse_a_bad_value_at_every_level(body: bytes) -> None:
    for lazy in (False, True):
        with pytest.raises(DecodeError):
            wire.complete(wire.decode_steps(body, JSON, lazy_events=lazy))
    with pytest.raises(DecodeError):
        wire.decode(body, JSON)


def test_json_steps_take_a_few_members_a_step() -> None:
    # 200 senders of 2 events (a conversation batch): far fewer steps than members, and
    # still a bounded amount of work per step.
    senders = [
        {"rel": "conversation", "href": f"/c/{n}", "events": [{"type": "added"}] * 2}
        for n in range(200)
    ]
    body = json.dumps({"_links": {"next": {"href": "n"}}, "sender": senders}).encode()
    for lazy in (False, True):
        steps, decoded = run_counting(wire.decode_steps(body, JSON, lazy_events=lazy))
        assert 200 / 8 <= steps <= 200
        assert list(decoded["sender"][199]["events"][:]) == [{"type": "added"}] * 2
    # a long array of events is still cut into steps of a few items
    many = json.dumps({"sender": [{"events": [{"type": "x"}] * 100}]}).encode()
    for lazy in (False, True):
        steps, decoded = run_counting(wire.decode_steps(many, JSON, lazy_events=lazy))
        assert steps >= 100 // 8
        assert len(decoded["sender"][0]["events"]) == 100
