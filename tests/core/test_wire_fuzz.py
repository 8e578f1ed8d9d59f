"""Property tests: the decoders and parsers fail only with DecodeError, and encode round-trips.

``UCWA_FUZZ_EXAMPLES`` raises the example count (default 300) for a longer run.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ucwa_async._core.errors import DecodeError
from ucwa_async._core.models import EventBatch, Resource, parse_event_batch, parse_resource
from ucwa_async._core.wire import INTEGER_PROPERTIES, UCWA_NS, decode, encode_input

EXAMPLES = int(os.environ.get("UCWA_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/vnd.microsoft.com.ucwa+json",
        "application/json; charset=utf-16",
        "application/vnd.microsoft.com.ucwa+xml",
        "application/xml",
        "text/xml",
    ]
)

# XML-ish fragments so that the fuzzer reaches the fold, not only the tokenizer.
TOKENS = st.sampled_from(
    [
        "<resource rel='r' href='/r'>",
        "</resource>",
        "<events href='/e'>",
        "</events>",
        "<sender rel='s' href='/s'>",
        "</sender>",
        "<started rel='x' href='/x'>",
        "</started>",
        "<completed status='Failure' code='C'>",
        "</completed>",
        "<property name='p'>",
        "<property>",
        "</property>",
        "<propertyList name='l'>",
        "</propertyList>",
        "<item>",
        "</item>",
        "<link rel='next' href='/n'/>",
        "<link href='/x'/>",
        "<in rel='c' href='/c'/>",
        "<status>",
        "</status>",
        "<reason>",
        "</reason>",
        "<code>",
        "</code>",
        "<debugInfo/>",
        "<input>",
        "</input>",
        "<!DOCTYPE x>",
        "<!ENTITY e 'x'>",
        "&amp;",
        "&e;",
        "True",
        "<![CDATA[x]]>",
        f"<resource xmlns='{UCWA_NS}'>",
        "{",
        "}",
        '"a":',
        "[",
        "]",
        ",",
        "1",
        "null",
        "text",
    ]
)
XMLISH = st.lists(TOKENS, max_size=40).map(lambda parts: "".join(parts).encode())


def _decode_only_decode_errors(body: bytes, ctype: str) -> None:
    try:
        result = decode(body, ctype)
    except DecodeError:
        return
    assert isinstance(result, dict)


@FUZZ
@given(body=st.binary(max_size=2048), ctype=CONTENT_TYPES)
def test_decode_arbitrary_bytes(body: bytes, ctype: str) -> None:
    _decode_only_decode_errors(body, ctype)


@FUZZ
@given(body=XMLISH, ctype=CONTENT_TYPES)
def test_decode_xmlish_fragments(body: bytes, ctype: str) -> None:
    _decode_only_decode_errors(body, ctype)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_LIKE = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "rel",
                    "href",
                    "type",
                    "link",
                    "in",
                    "status",
                    "reason",
                    "code",
                    "_links",
                    "_embedded",
                    "sender",
                    "events",
                    "self",
                    "next",
                    "resync",
                    "resume",
                    "operationId",
                    "modalities",
                    "totalRecipientsCount",
                    "messagingInvitation",
                    "conversationLog",
                    "debugInfo",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=40,
)


@FUZZ
@given(d=JSON_LIKE)
def test_parsers_raise_only_decode_errors(d: Any) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(parse_event_batch(d), EventBatch)
    with contextlib.suppress(DecodeError):
        assert isinstance(parse_resource(d), Resource)


# Characters XML 1.0 can carry; text that does not look like a boolean to the decoder.
XML_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"
).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20)
XML_TEXT = st.text(XML_CHARS, max_size=40).filter(lambda s: s.lower() not in ("true", "false"))
NAMES = st.text(XML_CHARS, min_size=1, max_size=12).filter(
    lambda s: s not in INTEGER_PROPERTIES and s != "_links"
)


@FUZZ
@given(
    props=st.dictionaries(
        NAMES, XML_TEXT | st.booleans() | st.lists(XML_TEXT, max_size=3), max_size=6
    ),
    links=st.dictionaries(NAMES, XML_TEXT.map(lambda h: {"href": h}), max_size=3),
)
def test_encode_decode_roundtrip(props: dict[str, Any], links: dict[str, Any]) -> None:
    data: dict[str, Any] = dict(props)
    if links:
        data["_links"] = links
    for wire in ("json", "xml"):
        body, ctype = encode_input(data, wire)  # type: ignore[arg-type]
        assert decode(body, ctype) == data
