"""The compact-event-batch path of the XML decoder gives what the fold gives.

``wire._decode_xml`` cuts an event batch in compact form (what UCWA writes: no indentation,
attributes in one order, no entity references) with regular expressions, and sends any
other body to the expat fold. Every test here compares the two on the same body: the
same dict, or both a DecodeError. The fold itself is tested in test_wire_xml.py.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from step_runner import run_counting

from ucwa_async._core import wire
from ucwa_async._core.errors import DecodeError

XML = wire.UCWA_XML_MEDIA_TYPE
APP = "/ucwa/oauth/v1/applications/833"
DECL = '<?xml version="1.0" encoding="utf-8"?>'
HEAD = f'{DECL}<events href="{APP}/events?ack=1" xmlns="{wire.UCWA_NS}">'


def resource(
    rel: str, href: str, links: list[tuple[str, str]], props: list[tuple[str, str]]
) -> str:
    return (
        f'<resource rel="{rel}" href="{href}">'
        + "".join(f'<link rel="{r}" href="{h}"/>' for r, h in links)
        + "".join(f'<property name="{n}">{v}</property>' for n, v in props)
        + "</resource>"
    )


def invitation_events(n: int) -> str:
    inv = f"{APP}/communication/invitations/{n}"
    conv = f"{APP}/communication/conversations/{n}"
    links = [
        ("cancel", f"{inv}/cancel"),
        ("conversation", conv),
        ("messaging", f"{conv}/messaging"),
    ]
    props = [
        ("rel", "messagingInvitation"),
        ("direction", "Incoming"),
        ("importance", "Normal"),
        ("operationId", f"op{n}"),
        ("state", "Connecting"),
        ("subject", 'Build is "red" > green'),
        ("threadId", "AdK82e2e662f728b4fa=="),
        ("to", "sip:carol@contoso.com"),
    ]
    return (
        f'<started rel="messagingInvitation" href="{inv}"><in rel="conversation" href="{conv}"/>'
        + resource("messagingInvitation", inv, links, props)
        + "</started>"
        + f'<completed rel="messagingInvitation" href="{inv}">'
        + f'<in rel="conversation" href="{conv}"/>'
        + "<status>Success</status>"
        + resource("messagingInvitation", inv, links[1:], [*props[:4], ("state", "Connected")])
        + "</completed>"
    )


def batch(events: str, *, senders: int = 1, head: str = HEAD, tail: str = "") -> str:
    sender = f'<sender rel="communication" href="{APP}/communication">' + events + "</sender>"
    return (
        head
        + f'<link rel="next" href="{APP}/events?ack=2"/>'
        + sender * senders
        + "</events>"
        + tail
    )


BIG = batch("".join(invitation_events(n) for n in range(200)))

SHAPES = {
    "invitations": BIG,
    "self-closed events": batch(
        '<added rel="conversation" href="/c/1"/><updated rel="me" href="/me" />'
        '<deleted rel="conversation" href="/c/1"/>'
    ),
    "two senders and links after them": batch(invitation_events(1), senders=2).replace(
        "</events>", '<link rel="resync" href="/r"/><link rel="next" href="/n2"/></events>'
    ),
    "no XML declaration": batch(invitation_events(1), head=HEAD.split("?>", 1)[1]),
    "trailing whitespace": batch(invitation_events(1), tail="\r\n  \n"),
    "empty sender": batch(""),
    "no sender": HEAD + "</events>",
    "links with a space before />, repeated rels, a self link": batch(
        '<updated rel="r" href="/r"><resource rel="r" href="/r">'
        '<link rel="a" href="/a1" /><link rel="a" href="/a2"/><link rel="a" href="/a3"/>'
        '<link rel="self" href="/s1"/><link rel="self" href="/s2"/><link rel="b" href="/b"/>'
        "</resource></updated>"
    ),
    "typed values": batch(
        '<updated rel="r" href="/r"><resource rel="r" href="/r">'
        '<property name="on">True</property><property name="off">FALSE</property>'
        '<property name="unreadCount">12</property><property name="expiresIn">soon</property>'
        '<property name="participantCount">-3</property><property name="x">trueish</property>'
        '<property name="rel">true</property><property name="rel">other</property>'
        '<property name="dup">1</property><property name="dup">2</property>'
        '<property name="empty"></property><property name="unicode">Zoë ✓ 😀</property>'
        '<property name="subject">False</property><property name="operationId">true</property>'
        "</resource></updated>"
    ),
    "rel property without a bool": batch(
        '<updated rel="r" href="/r"><resource rel="attr" href="/r">'
        '<property name="rel">other</property><property name="unreadCount">1</property>'
        "</resource></updated>"
    ),
    "text between a resource's children": batch(
        '<updated rel="r" href="/r"><resource rel="r" href="/r">\n  <link rel="a" href="/a"/>\n'
        '  <property name="p">v</property>\n</resource></updated>'
    ),
    "indented": BIG.replace("><", ">\n  <"),
    "indented with CRLF and tabs": BIG.replace("><", ">\r\n\t<"),
    "status attributes": batch(
        '<completed rel="r" href="/r" status="Success"/>'
        '<completed rel="r" href="/r" status="Failure"><status>Success</status></completed>'
        '<completed rel="r" href="/r" status="Success" />'
    ),
    "status with spaces": batch(
        '<completed rel="r" href="/r"><status> Failure </status></completed>'
    ),
    "event with in only": batch('<added rel="r" href="/r"><in rel="c" href="/c"/></added>'),
}

# Bodies close to the compact form that the fold has to decode (or refuse).
OTHERS = {
    "text between events": BIG.replace("</started><", "</started>x<", 1),
    "text between a sender's events and its end": BIG.replace("</sender>", " x </sender>"),
    "comment in a resource": BIG.replace("<property", "<!-- c --><property", 1),
    "CDATA value": BIG.replace(">Incoming<", "><![CDATA[Incoming]]><", 1),
    "entity in a value": BIG.replace(">Normal<", ">&lt;Normal&amp;&#65;<", 1),
    "entity in an attribute": BIG.replace('href="/ucwa', 'href="/u&amp;cwa', 3),
    "entity in ignored text": batch(
        '<updated rel="r" href="/r"><resource rel="r" href="/r">&amp;'
        '<property name="p">v</property></resource></updated>'
    ),
    "undefined entity in ignored text": batch(
        '<updated rel="r" href="/r"><resource rel="r" href="/r">&nope;</resource></updated>'
    ),
    "CR in a value": BIG.replace(">Normal<", ">a\r\nb\rc<", 1),
    "tab and newline in an attribute": BIG.replace('rel="cancel"', 'rel="can\tc\nel"', 1),
    "nested resource": BIG.replace(
        "</resource></started>", '<resource rel="inner" href="/i"/></resource></started>', 1
    ),
    "attributes reordered": BIG.replace('<link rel="cancel" href=', '<link href="/x" rel=', 1),
    "extra attribute": BIG.replace('<link rel="cancel"', '<link title="t" rel="cancel"', 1),
    "extra attribute at the end": BIG.replace('/cancel"/>', '/cancel" title="t"/>', 1),
    "single quotes": BIG.replace('rel="messaging"', "rel='messaging'", 1),
    "property list": BIG.replace(
        "<property", '<propertyList name="l"><item>a</item></propertyList><property', 1
    ),
    "_links property": BIG.replace('name="state"', 'name="_links"', 1),
    "_embedded property with a bool": BIG.replace(">Normal<", ">true<", 1).replace(
        'name="importance"', 'name="_embedded"', 1
    ),
    "reason": batch('<completed rel="r" href="/r"><reason code="C" message="m"/></completed>'),
    "status attribute and a reason": batch(
        '<completed rel="r" href="/r" status="Failure"><reason code="C"/></completed>'
    ),
    "status attribute first": batch('<completed status="Failure" rel="r" href="/r"/>'),
    "unknown child": batch('<added rel="r" href="/r"><thing/></added>'),
    "children out of order": batch(
        '<completed rel="r" href="/r"><status>Success</status><in rel="c" href="/c"/></completed>'
    ),
    "wrong closing tag": batch('<added rel="r" href="/r"></updated>'),
    "truncated": BIG[:-20],
    "junk after the root": BIG + "<x/>",
    "comment after the root": BIG + "<!-- done -->",
    "control character": BIG.replace(">Normal<", ">Nor\x01mal<", 1),
    "U+FFFF": BIG.replace(">Normal<", ">Nor\uffffmal<", 1),
    "]]> in text": BIG.replace(">Normal<", ">Nor]]>mal<", 1),
    "< in an attribute": BIG.replace('rel="cancel"', 'rel="can<cel"', 1),
    "unclosed resource": batch('<added rel="r" href="/r"><resource rel="r" href="/r"></added>'),
    "two roots": BIG + BIG,
    "prefixed namespace declaration on the root": batch(
        "", head=HEAD.replace("xmlns=", "xmlns:u=")
    ),
    "BOM": "\ufeff" + BIG,
    # a malformed element rejects its event only (a RejectedEvent in its place)
    "link without a rel in an event": BIG.replace('<link rel="cancel"', "<link", 1),
    "property without a name in an event": BIG.replace('name="state"', "", 1),
}


def fold(body: bytes) -> dict[str, Any] | str:
    try:
        return wire.complete(wire._fold_xml(body, XML, None))
    except DecodeError as exc:
        return f"DecodeError: {exc}"


def decoded(body: bytes, *, steps: bool = False) -> dict[str, Any] | str:
    try:
        if steps:
            return wire.complete(wire.decode_steps(body, XML))
        return wire.decode(body, XML)
    except DecodeError as exc:
        return f"DecodeError: {exc}"


def takes_fast_path(body: bytes) -> bool:
    fast = wire._FastBatch.start(body)
    return fast is not None and wire.complete(wire._decode_fast(fast, body, None)) is not None


@pytest.mark.parametrize("name", list(SHAPES))
def test_compact_batches_take_the_fast_path_and_decode_as_the_fold(name: str) -> None:
    body = SHAPES[name].encode()
    assert takes_fast_path(body)
    expected = fold(body)
    assert isinstance(expected, dict)
    assert decoded(body) == expected
    assert decoded(body, steps=True) == expected


@pytest.mark.parametrize("name", list(OTHERS))
def test_other_bodies_go_to_the_fold(name: str) -> None:
    body = OTHERS[name].encode()
    assert not takes_fast_path(body)
    expected = fold(body)
    assert decoded(body) == expected
    assert decoded(body, steps=True) == expected


def test_the_fast_path_result() -> None:
    # One batch spelled out, so that a change to both paths at once does not go unseen.
    body = batch(
        '<started rel="messagingInvitation" href="/i/1"><in rel="conversation" href="/c/1"/>'
        '<resource rel="messagingInvitation" href="/i/1"><link rel="cancel" href="/i/1/c"/>'
        '<link rel="from" href="/p/1"/><link rel="from" href="/p/2"/>'
        '<property name="rel">messagingInvitation</property><property name="state">Connecting'
        '</property><property name="unreadCount">2</property><property name="urgent">True'
        "</property></resource></started>"
        '<completed rel="messagingInvitation" href="/i/1"><status>Success</status></completed>'
        '<added rel="x" href="/x"/>'
    ).encode()
    assert takes_fast_path(body)
    assert wire.decode(body, XML) == {
        "_links": {
            "self": {"href": f"{APP}/events?ack=1"},
            "next": {"href": f"{APP}/events?ack=2"},
        },
        "sender": [
            {
                "rel": "communication",
                "href": f"{APP}/communication",
                "events": [
                    {
                        "type": "started",
                        "link": {"rel": "messagingInvitation", "href": "/i/1"},
                        "in": {"rel": "conversation", "href": "/c/1"},
                        "_embedded": {
                            "messagingInvitation": {
                                "rel": "messagingInvitation",
                                "_links": {
                                    "self": {"href": "/i/1"},
                                    "cancel": {"href": "/i/1/c"},
                                    "from": [{"href": "/p/1"}, {"href": "/p/2"}],
                                },
                                "state": "Connecting",
                                "unreadCount": 2,
                                "urgent": True,
                            }
                        },
                    },
                    {
                        "type": "completed",
                        "link": {"rel": "messagingInvitation", "href": "/i/1"},
                        "status": "Success",
                    },
                    {"type": "added", "link": {"rel": "x", "href": "/x"}},
                ],
            }
        ],
    }


def test_steps_bound_the_work_of_each_step() -> None:
    body = BIG.encode()
    taken, result = run_counting(wire.decode_steps(body, XML))
    assert taken == -(-len(body) // wire.XML_STEP_BYTES)
    assert result == fold(body)


def test_a_late_non_compact_event_falls_back_mid_way_in_steps() -> None:
    body = BIG.replace("</sender>", '<added rel="r" href="/r"><thing/></added></sender>').encode()
    assert not takes_fast_path(body)
    assert decoded(body, steps=True) == fold(body) == decoded(body)


def test_refusals_are_the_folds() -> None:
    # A DOCTYPE can only come before the root: such a body never starts like a batch.
    body = (
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE events [<!ENTITY a "aaaa">]>'
        + BIG.split("?>", 1)[1]
    ).encode()
    assert wire._FastBatch.start(body) is None
    with pytest.raises(DecodeError, match="DOCTYPE declarations are refused"):
        wire.decode(body, XML)
    body = BIG.replace(">Normal<", ">\x00<", 1).encode()
    with pytest.raises(DecodeError, match="malformed XML body: not well-formed") as info:
        wire.decode(body, XML)
    assert info.value.content_type == XML


# Differential fuzzing: a compact batch with a token inserted, or a slice removed, decodes
# (or fails) on both paths alike.
MUTATIONS = st.sampled_from(
    [
        "<",
        ">",
        "/>",
        '"',
        "'",
        "&",
        "&amp;",
        "&#x1;",
        "\r",
        "\n",
        "\t",
        " ",
        "\x00",
        "\x0b",
        "\x1f",
        "\ufffe",
        "\uffff",
        "\U0001f600",
        "]",
        "]]",
        "&#0;",
        "&#x41;",
        "&nope;",
        "<!",
        "<?",
        "<?xml version='1.0'?>",
        "<!ENTITY e 'x'>",
        "=",
        "<status/>",
        "<resource rel='r' href='/r'/>",
        '<resource rel="r" href="/r"/>',
        "é",
        "]]>",
        "<!-- c -->",
        "<![CDATA[x]]>",
        "<?pi x?>",
        "<!DOCTYPE x>",
        "<x/>",
        "</x>",
        "<link rel='a' href='/a'/>",
        '<link rel="a" href="/a"/>',
        '<property name="p">v</property>',
        '<property name="rel">true</property>',
        '<resource rel="r" href="/r">',
        "</resource>",
        '<added rel="a" href="/a"/>',
        "</sender>",
        "</events>",
        '<in rel="c" href="/c"/>',
        "<status>x</status>",
        'name="_links"',
        ' status="Failure"',
        "\n  ",
        "true",
    ]
)
SMALL = batch("".join(invitation_events(n) for n in range(2)))


@settings(
    max_examples=int(os.environ.get("UCWA_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    cuts=st.lists(
        st.tuples(st.integers(0, len(SMALL)), st.integers(0, 3), MUTATIONS), min_size=1, max_size=3
    )
)
def test_mutated_batches_decode_as_the_fold(cuts: list[tuple[int, int, str]]) -> None:
    text = SMALL
    for at, removed, token in cuts:
        at = min(at, len(text))
        text = text[:at] + token + text[at + removed :]
    body = text.encode()
    assert decoded(body) == fold(body)


def test_random_splices_of_compact_batches_decode_as_the_fold() -> None:
    # Pieces of valid batches glued back in another order: mostly well-formed-looking bodies
    # with the structure wrong somewhere.
    rng = random.Random(13)
    pieces = SMALL.replace("><", ">\x00<").split("\x00")
    for _ in range(300):
        i, j = sorted(rng.sample(range(len(pieces)), 2))
        shuffled = pieces[:i] + pieces[j : j + 3] + pieces[i + 1 :]
        body = "".join(shuffled).encode()
        assert decoded(body) == fold(body)


def test_invalid_utf8_goes_to_the_fold() -> None:
    body = batch('<added rel="r\xe9" href="/r"/>').encode("latin-1")
    assert wire._FastBatch.start(body) is None
    with pytest.raises(DecodeError, match="malformed XML body"):
        wire.decode(body, XML)


def test_steps_cut_anywhere_in_a_batch() -> None:
    # Step boundaries among the batch's own links, and steps left after its end.
    links = "".join(f'<link rel="r{n}" href="/l/{n}"/>' for n in range(1000))
    text = batch(invitation_events(1), tail=" " * 3 * wire.XML_STEP_BYTES)
    body = text.replace("<sender", links + "<sender", 1).encode()
    assert takes_fast_path(body)
    assert decoded(body, steps=True) == fold(body) == decoded(body)
