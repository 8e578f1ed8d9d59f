"""The fast model construction (issue 13) gives what the general path gives.

The event channel's parser builds models slot by slot (``converter.slot_init``), typed
resources with generated builders (``converter.make_builder``) instead of cattrs'
structure, and plain links inline. Here each is compared with the general path: the
attrs ``__init__``, ``CONVERTER.structure``, and a reference parser written the way the
parser was before (attrs constructors, cattrs, no fast paths): same models (fields that
take no part in equality included), same types, same errors with the same messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ucwa_async._core.converter import (
    CONVERTER,
    _opt_str,
    make_builder,
    slot_init,
    slot_setters,
)
from ucwa_async._core.errors import DecodeError
from ucwa_async._core.models import (
    KNOWN_EVENT_TYPES,
    ConversationLog,
    Event,
    EventBatch,
    InvitationResource,
    Link,
    MessagingInvitation,
    PhoneAudioInvitation,
    Reason,
    Resource,
    UnknownEvent,
    UnknownResource,
    _parse_event,
    _parse_reason,
    parse_event_batch,
    parse_resource,
)

EXAMPLES = int(os.environ.get("UCWA_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODELS = [
    Link,
    Reason,
    Resource,
    InvitationResource,
    MessagingInvitation,
    PhoneAudioInvitation,
    ConversationLog,
    UnknownResource,
    Event,
    UnknownEvent,
    EventBatch,
]
TYPED = {
    "messagingInvitation": MessagingInvitation,
    "phoneAudioInvitation": PhoneAudioInvitation,
    "conversationLog": ConversationLog,
}


# ----------------------------------------------------- the reference (general) parser


def _ref_href(value: Any, what: str) -> str:
    if not isinstance(value, Mapping):
        raise DecodeError(f"{what} is a {type(value).__name__}, not a link object")
    href = value.get("href")
    if not isinstance(href, str):
        raise DecodeError(f"{what} has no href")
    return href


def _ref_title(value: Any) -> str | None:
    title = value.get("title")
    return title if isinstance(title, str) and title else None


def _ref_links(raw: Any) -> tuple[Link, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise DecodeError("_links is not an object")
    out = []
    for rel, value in raw.items():
        if not isinstance(rel, str):
            raise DecodeError("a link rel is not a string")
        for item in value if isinstance(value, list) else [value]:
            out.append(Link(rel, _ref_href(item, f"link {rel!r}"), _ref_title(item)))
    return tuple(out)


def _ref_resource(d: Any, rel: str | None, embedded: bool = False) -> Resource:
    if not isinstance(d, Mapping):
        raise DecodeError(f"a resource is a {type(d).__name__}, not an object")
    own_rel = d.get("rel", rel)
    embedded_as = rel if embedded and rel != own_rel else None
    if own_rel is not None and not isinstance(own_rel, str):
        raise DecodeError("a resource rel is not a string")
    links = _ref_links(d.get("_links"))
    href = next((link.href for link in links if link.rel == "self"), None)
    raw_embedded = d.get("_embedded")
    children: list[Resource] = []
    if raw_embedded is not None:
        if not isinstance(raw_embedded, Mapping):
            raise DecodeError("_embedded is not an object")
        for key, value in raw_embedded.items():
            if not isinstance(key, str):
                raise DecodeError("an embedded rel is not a string")
            for item in value if isinstance(value, list) else [value]:
                children.append(_ref_resource(item, key, True))
    raw = {k: v for k, v in d.items() if k not in ("_links", "_embedded")}
    properties = MappingProxyType(raw)
    cls = TYPED.get(own_rel) if own_rel is not None else None
    if cls is None:
        return UnknownResource(
            own_rel, href, links, tuple(children), properties, embedded_as=embedded_as
        )
    source = dict(raw)
    source.update(
        {
            "@rel": own_rel,
            "@href": href,
            "@links": links,
            "@embedded": tuple(children),
            "@properties": properties,
            "@embedded_as": embedded_as,
        }
    )
    resource: Resource = CONVERTER.structure(source, cls)
    return resource


def _ref_one(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise DecodeError("an empty list where a link belongs")
        return value[0]
    return value


def _ref_event_link(value: Any, what: str) -> Link:
    value = _ref_one(value)
    href = _ref_href(value, what)
    rel = value.get("rel", "")
    if not isinstance(rel, str):
        raise DecodeError(f"{what} has a rel that is not a string")
    return Link(rel, href, _ref_title(value))


def _ref_event(e: Mapping[str, Any], sender: Link | None) -> Event:
    etype = e.get("type")
    if not isinstance(etype, str):
        raise DecodeError("an event has no type")
    link = _ref_event_link(e.get("link"), "event link")
    raw_in = e.get("in")
    in_link = _ref_event_link(raw_in, "event 'in' link") if raw_in is not None else None
    raw_reason = e.get("reason")
    reason = _parse_reason(raw_reason) if raw_reason is not None else None
    resource = None
    raw_embedded = e.get("_embedded")
    if raw_embedded:
        if not isinstance(raw_embedded, Mapping):
            raise DecodeError("an event's _embedded is not an object")
        key = link.rel if link.rel in raw_embedded else next(iter(raw_embedded))
        if not isinstance(key, str):
            raise DecodeError("an embedded rel is not a string")
        resource = _ref_resource(_ref_one(raw_embedded[key]), key, True)
    cls = Event if etype in KNOWN_EVENT_TYPES else UnknownEvent
    return cls(etype, link, sender, in_link, _opt_str(e.get("status")), reason, resource)


# ------------------------------------------------------------------- comparison


def _deep(value: Any) -> Any:
    """A model as nested plain values: its type and every field, those outside
    equality (``Link.title``, ``Resource.embedded_as``) included."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return (type(value).__name__, *((a.name, _deep(getattr(value, a.name))) for a in fields))
    if isinstance(value, tuple):
        return tuple(_deep(v) for v in value)
    if isinstance(value, MappingProxyType):
        return ("proxy", dict(value))
    return value


def _outcome(parse: Any, *args: Any) -> Any:
    try:
        return ("ok", _deep(parse(*args)))
    except DecodeError as exc:
        return ("error", str(exc))


# ------------------------------------------------------------------- strategies

# Sampled values, not st.integers() and the like: the strategies' reprs stay small
# (hypothesis warns about a 50 kB one, and warnings are errors here).
SCALARS = st.sampled_from(
    [None, True, False, 0, 7, -1, 1.5, "", "self", "7", " 8 ", "Connected", "Success", "x"]
)
RELS = st.sampled_from(
    ["self", "cancel", "from", "to", "conversation", "title", "", *TYPED, "contact"]
)
# Valid shapes are drawn more often than broken ones: a model is built only when every
# part of it is valid, and the fast paths are for the valid ones.
HREFS = st.one_of(st.sampled_from(["/a", "/b/1", ""]), st.sampled_from(["/c"]), SCALARS)
LINK_OBJECTS = st.fixed_dictionaries(
    {"href": HREFS},
    optional={
        "title": st.one_of(st.sampled_from(["Alex", ""]), SCALARS),
        "rel": st.one_of(RELS, SCALARS),
        "extra": SCALARS,
    },
)
PLAIN_LINKS = st.fixed_dictionaries({"href": st.sampled_from(["/a", "/b/1", ""])})
LINKS = st.one_of(
    PLAIN_LINKS,
    LINK_OBJECTS,
    st.lists(LINK_OBJECTS, max_size=2),
    SCALARS,
    st.lists(SCALARS, max_size=1),
)
LINKS_DICTS = st.one_of(
    st.dictionaries(RELS, st.one_of(PLAIN_LINKS, LINK_OBJECTS), max_size=4),
    st.dictionaries(st.one_of(RELS, st.integers(0, 1)), LINKS, max_size=4),
    SCALARS,
    st.lists(SCALARS, max_size=1),
)
PROPERTY_KEYS = st.sampled_from(
    [
        "rel",
        "operationId",
        "state",
        "direction",
        "subject",
        "threadId",
        "to",
        "phoneNumber",
        "modalities",
        "totalRecipientsCount",
        "creationTime",
        "type",
        "status",
        "@href",
        "custom",
    ]
)
PROPERTY_VALUES = st.one_of(
    st.sampled_from(["Connected", "op-1", "sip:a@b"]),
    SCALARS,
    RELS,
    st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=1)), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), SCALARS, max_size=2),
)


GOOD_LINKS = st.dictionaries(
    RELS,
    st.one_of(
        PLAIN_LINKS,
        st.fixed_dictionaries(
            {"href": st.sampled_from(["/a", "/b/1"])},
            optional={"title": st.sampled_from(["Alex", "", None, 1])},
        ),
    ),
    min_size=1,
    max_size=4,
)
GOOD_PROPERTIES = st.dictionaries(
    PROPERTY_KEYS, st.sampled_from(["Connected", "op-1", "sip:a@b", "", "7"]), max_size=6
)


def _resource_with(children: Any) -> Any:
    return st.builds(
        lambda rel, props, links, embedded: {
            **({} if rel is None else {"rel": rel}),
            **props,
            **({} if links is None else {"_links": links}),
            **({} if embedded is None else {"_embedded": embedded}),
        },
        st.one_of(st.sampled_from(sorted(TYPED)), st.none()),
        st.one_of(GOOD_PROPERTIES, st.dictionaries(PROPERTY_KEYS, PROPERTY_VALUES, max_size=6)),
        st.one_of(GOOD_LINKS, st.none(), LINKS_DICTS),
        st.one_of(
            st.none(),
            st.dictionaries(RELS, children, max_size=2),
            st.dictionaries(
                st.one_of(RELS, st.integers(0, 1)),
                st.one_of(children, st.lists(children, max_size=2)),
                max_size=2,
            ),
            SCALARS,
        ),
    )


RESOURCES = st.recursive(
    st.one_of(_resource_with(st.just({})), _resource_with(SCALARS), SCALARS),
    _resource_with,
    max_leaves=6,
)

EVENT_LINKS = st.fixed_dictionaries(
    {"rel": RELS, "href": st.sampled_from(["/a", "/b/1"])},
    optional={"title": st.one_of(st.sampled_from(["Alex", ""]), SCALARS)},
)
_EVENT_PARTS: dict[str, Any] = {
    "type": st.one_of(st.sampled_from(["started", "completed", "added", "odd"]), SCALARS),
    "link": st.one_of(EVENT_LINKS, LINKS),
    "in": st.one_of(EVENT_LINKS, LINKS),
    "status": st.one_of(st.just("Success"), SCALARS, st.lists(SCALARS, max_size=1)),
    "reason": st.one_of(
        st.dictionaries(st.sampled_from(["code", "message", "x"]), SCALARS, max_size=2),
        SCALARS,
    ),
    "_embedded": st.one_of(
        st.dictionaries(RELS, RESOURCES, max_size=2),
        st.dictionaries(
            st.one_of(RELS, st.integers(0, 1)),
            st.one_of(RESOURCES, st.lists(RESOURCES, max_size=2)),
            max_size=2,
        ),
        SCALARS,
    ),
}
EVENTS = st.one_of(
    # Mostly events with a valid type and link, so that the rest gets parsed.
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["started", "completed", "odd"]),
            "link": EVENT_LINKS,
            "_embedded": st.dictionaries(RELS, RESOURCES, max_size=2),
        },
        optional={k: v for k, v in _EVENT_PARTS.items() if k not in ("type", "link", "_embedded")},
    ),
    st.fixed_dictionaries({}, optional=_EVENT_PARTS),
)


# ------------------------------------------------------------------------ tests


@FUZZ
@given(RESOURCES, st.one_of(st.none(), RELS))
def test_parse_resource_is_the_general_parse(d: Any, rel: str | None) -> None:
    assert _outcome(parse_resource, d, rel) == _outcome(_ref_resource, d, rel)


@FUZZ
@given(EVENTS, st.one_of(st.none(), st.just(Link("conversation", "/c", "C"))))
def test_parse_event_is_the_general_parse(e: dict[str, Any], sender: Link | None) -> None:
    assert _outcome(_parse_event, e, sender) == _outcome(_ref_event, e, sender)


@FUZZ
@given(st.lists(EVENTS, max_size=4))
def test_a_batch_keeps_the_good_events_and_reports_the_others(events: list[Any]) -> None:
    batch = parse_event_batch({"sender": [{"href": "/s", "rel": "sender", "events": events}]})
    expected = [_outcome(_ref_event, e, Link("sender", "/s")) for e in events]
    assert [("ok", _deep(e)) for e in batch.events] == [o for o in expected if o[0] == "ok"]
    assert list(batch.rejected) == [o[1] for o in expected if o[0] == "error"]
    assert batch.rejected_count == len(batch.rejected)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_slot_init_builds_what_the_attrs_init_builds(cls: type[Any]) -> None:
    fields = attrs.fields(cls)
    values = []
    for n, a in enumerate(fields):
        if a.name == "rejected_count":
            values.append(3)
        elif a.name in ("links", "embedded", "events", "rejected", "modalities"):
            values.append(("x",) * n)
        elif a.name in ("properties", "extra", "debug_info"):
            values.append(MappingProxyType({"k": n}))
        elif a.name == "total_recipients_count":
            values.append(n)
        else:
            values.append(f"v{n}")
    built = slot_init(cls)(*values)
    general = cls(**{a.alias: v for a, v in zip(fields, values, strict=True)})
    assert type(built) is cls
    assert _deep(built) == _deep(general)
    assert built == general
    assert hash(built) == hash(general)
    assert repr(built) == repr(general)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.x = 1


def test_slot_init_takes_the_fields_in_the_order_named() -> None:
    init = slot_init(Link, "href", "title", "rel")
    assert _deep(init("/h", "T", "r")) == _deep(Link("r", "/h", "T"))
    with pytest.raises(TypeError, match="not its fields"):
        slot_init(Link, "rel", "href")
    with pytest.raises(TypeError, match="not its fields"):
        slot_init(Link, "rel", "href", "title", "extra")


def test_slot_init_applies_converters() -> None:
    init = slot_init(ConversationLog)
    names = [a.name for a in attrs.fields(ConversationLog)]
    values = dict.fromkeys(names) | {"links": (), "embedded": (), "modalities": ()}
    log = init(*(values[name] for name in names))
    assert log.href == ""  # ConversationLog's converter: a str even without a self link
    assert log == ConversationLog(
        **{a.alias: values[a.name] for a in attrs.fields(ConversationLog)}
    )


@FUZZ
@example("conversationLog", {"totalRecipientsCount": 7, "modalities": ["a"]}, None)
@example("conversationLog", {"totalRecipientsCount": True}, None)
@example("messagingInvitation", {"subject": 7, "to": None}, "/self")
@given(
    st.sampled_from(sorted(TYPED)),
    st.dictionaries(PROPERTY_KEYS, PROPERTY_VALUES, max_size=8),
    st.one_of(st.none(), st.just("/self")),
)
def test_builders_are_cattrs_structure(rel: str, raw: dict[str, Any], href: str | None) -> None:
    cls = TYPED[rel]
    base = (rel, href, (Link("self", "/self"),), (), MappingProxyType(raw), "x")
    source = dict(raw)
    source.update(
        zip(
            ["@rel", "@href", "@links", "@embedded", "@properties", "@embedded_as"],
            base,
            strict=True,
        )
    )
    assert _outcome(make_builder(cls), *base, raw) == _outcome(CONVERTER.structure, source, cls)


def test_builders_refuse_what_they_cannot_build() -> None:
    @attrs.frozen
    class Validated:
        x: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen
    class Odd(Resource):
        odd: dict[str, int] = attrs.Factory(dict)

    @attrs.frozen(slots=False)
    class NoSlots:
        x: int

    @attrs.frozen(cache_hash=True)
    class HiddenSlot:  # attrs adds a slot for the hash: an instance built by slots lacks it
        x: int

    @attrs.frozen
    class OddDefault(Resource):
        x: str | None = "not None"  # a missing key would give None, not this

    with pytest.raises(TypeError, match="default"):
        make_builder(OddDefault)
    with pytest.raises(TypeError, match="validator"):
        slot_init(Validated)
    with pytest.raises(TypeError, match="not its fields"):
        slot_init(HiddenSlot)
    with pytest.raises(TypeError, match="not a slot"):
        slot_setters(Resource, ["link"])
    with pytest.raises(TypeError, match="no fast hook"):
        make_builder(Odd)
    with pytest.raises(TypeError, match="slotted"):
        slot_init(NoSlots)


def test_a_plain_batch_takes_the_fast_paths_and_keeps_titles() -> None:
    batch = parse_event_batch(
        {
            "sender": [
                {
                    "href": "/c",
                    "rel": "conversation",
                    "events": [
                        {
                            "type": "added",
                            "link": {"rel": "participant", "href": "/p", "title": "Alex"},
                            "_embedded": {
                                "participant": {
                                    "rel": "participant",
                                    "_links": {
                                        "self": {"href": "/p"},
                                        "contact": {"href": "/k", "title": "Alex A."},
                                    },
                                }
                            },
                        }
                    ],
                }
            ]
        }
    )
    (event,) = batch.events
    assert event.link.title == "Alex"
    assert event.resource is not None
    assert [link.title for link in event.resource.links] == [None, "Alex A."]
    assert event.resource.href == "/p"


def test_a_self_link_list_may_be_empty() -> None:
    assert parse_resource({"_links": {"self": [], "x": {"href": "/x"}}}).href is None
    assert parse_resource({"_links": {"self": [{"href": "/a"}, {"href": "/b"}]}}).href == "/a"
