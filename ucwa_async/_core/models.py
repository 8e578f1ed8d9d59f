"""Resource and event models, and the parsers from the canonical dict shape.

Sans-IO. Models are attrs frozen values. Every resource keeps all of its raw properties
in ``properties`` (read-only), so a property the typed fields do not name is never
lost; typed fields are optional because the server may omit anything.

The parsers fold ``_links`` / ``_embedded`` by hand (they are on the event channel's hot
path) and build the models without their attrs ``__init__``: typed resources through
builders generated from the converter's hooks (``converter.make_builder``), the others
slot by slot (``converter.slot_init``, or inline for plain links). The models are the
same attrs classes either way. Malformed shapes raise :class:`DecodeError`; hrefs are
kept exactly as given (resolution is ``_core.urls``'s job).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from ucwa_async._core.converter import _opt_str, make_builder, slot_init, slot_setters
from ucwa_async._core.dates import parse_time_stamp
from ucwa_async._core.errors import DecodeError
from ucwa_async._core.wire import LazyItems, RejectedEvent

__all__ = [
    "KNOWN_EVENT_TYPES",
    "MAX_REJECTED_REPORTS",
    "OPERATION_EVENT_TYPES",
    "ConversationLog",
    "ConversationLogRecipient",
    "Event",
    "EventBatch",
    "EventReader",
    "InvitationResource",
    "Link",
    "MessagingInvitation",
    "PhoneAudioInvitation",
    "Reason",
    "Resource",
    "UnknownEvent",
    "UnknownResource",
    "parse_event_batch",
    "parse_reason",
    "parse_resource",
    "read_event_batch",
]

KNOWN_EVENT_TYPES = frozenset({"added", "updated", "deleted", "started", "completed"})
OPERATION_EVENT_TYPES = frozenset({"started", "updated", "completed"})

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_STRUCTURAL = frozenset({"_links", "_embedded"})
_REASON_KEYS = frozenset({"code", "subcode", "message", "debugInfo"})


def _text(value: str | None) -> str:
    return value or ""


@attrs.frozen
class Link:
    """A link: its relation name and its href, as the server wrote it, and its
    ``title`` (a participant's display name, participant_ref) when it has one."""

    rel: str
    href: str
    title: str | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Reason:
    """Why an operation failed (or a resource changed): a UCWA error body.

    ``code`` and ``subcode`` are open strings. Keys other than code, subcode, message and
    debugInfo (``parameters``, ``link``, new ones) are kept in ``extra``.

    ``str(reason)`` reads ``code/subcode: message`` (``Forbidden/DoNotDisturb: The person
    is busy``), leaving out what the server did not send, or ``no reason given`` when it
    sent none of them; ``repr`` shows every field.
    """

    code: str | None = None
    subcode: str | None = None
    message: str | None = None
    # Mappings are compared but not hashed: they are dicts underneath.
    debug_info: Mapping[str, Any] | None = attrs.field(default=None, hash=False)
    extra: Mapping[str, Any] = attrs.field(default=_EMPTY, hash=False)

    def __str__(self) -> str:
        label = "/".join(part for part in (self.code, self.subcode) if part)
        if label and self.message:
            return f"{label}: {self.message}"
        return label or self.message or "no reason given"


@attrs.frozen
class Resource:
    """A UCWA resource. ``href`` is its ``self`` link; ``links`` holds every link (self too)
    in document order; ``embedded`` the embedded resources; ``properties`` every raw
    property (everything but ``_links`` and ``_embedded``)."""

    rel: str | None = None
    href: str | None = None
    links: tuple[Link, ...] = ()
    embedded: tuple[Resource, ...] = ()
    properties: Mapping[str, Any] = attrs.field(default=_EMPTY, hash=False)
    embedded_as: str | None = attrs.field(default=None, eq=False, kw_only=True)
    """The name it was embedded under when that is not its ``rel`` (an invitation's
    ``from`` and ``acceptedByParticipant`` are both ``participant`` resources)."""

    def link(self, rel: str) -> str | None:
        """The href of the first link with this rel, or None."""
        for link in self.links:
            if link.rel == rel:
                return link.href
        return None

    def links_for(self, rel: str) -> tuple[str, ...]:
        """Every href with this rel, in order (``conversationLog`` links, say)."""
        return tuple(link.href for link in self.links if link.rel == rel)

    def embedded_one(self, rel: str) -> Resource | None:
        """The first embedded resource with this rel, or embedded under this name, or
        None."""
        for child in self.embedded:
            if child.rel == rel or child.embedded_as == rel:
                return child
        return None

    def embedded_all(self, rel: str) -> tuple[Resource, ...]:
        """Every embedded resource with this rel, in order."""
        return tuple(child for child in self.embedded if child.rel == rel)


@attrs.frozen
class InvitationResource(Resource):
    """Fields shared by the invitation (operation) resources."""

    operation_id: str | None = None
    state: str | None = None
    direction: str | None = None
    importance: str | None = None
    subject: str | None = None
    thread_id: str | None = None
    to: str | None = None


@attrs.frozen
class MessagingInvitation(InvitationResource):
    """A ``messagingInvitation`` operation (continueMessaging's 201 Location)."""


@attrs.frozen
class PhoneAudioInvitation(InvitationResource):
    """A ``phoneAudioInvitation`` operation (continuePhoneAudio's 201 Location)."""

    phone_number: str | None = None


@attrs.frozen
class ConversationLog(Resource):
    """A past conversation; ``status`` and ``type`` are UCWA's own property names.

    ``href`` is always a string: the session makes it the log's absolute URL (a log
    parsed without a ``self`` link has ``""`` until then)."""

    href: str = attrs.field(default="", converter=_text)

    creation_time: str | None = None
    direction: str | None = None
    importance: str | None = None
    modalities: tuple[str, ...] = ()
    preview_message: str | None = None
    status: str | None = None
    subject: str | None = None
    thread_id: str | None = None
    total_recipients_count: int | None = None
    type: str | None = None

    @property
    def created_at(self) -> datetime.datetime | None:
        """``creation_time`` as an aware UTC datetime, whichever wire wrote it (JSON's
        ``/Date(ms)/`` or XML's ISO 8601); None when absent or unreadable."""
        return parse_time_stamp(self.creation_time)

    @property
    def recipients(self) -> tuple[ConversationLogRecipient, ...]:
        """Who the conversation was with: the embedded ``conversationLogRecipient``
        resources (conversationLog_ref.md), in order; empty when the server embeds none."""
        out = []
        for child in self.embedded_all("conversationLogRecipient"):
            name = child.properties.get("displayName")
            uri = child.properties.get("sipUri")
            out.append(
                ConversationLogRecipient(
                    display_name=name if isinstance(name, str) and name else None,
                    sip_uri=uri if isinstance(uri, str) and uri else None,
                    href=child.href,
                )
            )
        return tuple(out)


@attrs.frozen
class ConversationLogRecipient:
    """One person of a past conversation (conversationLogRecipient_ref.md): the
    ``displayName`` and ``sipUri`` the server gave (None when it gave none), and the
    recipient resource's ``self`` href, as written."""

    display_name: str | None = None
    sip_uri: str | None = None
    href: str | None = None


@attrs.frozen
class UnknownResource(Resource):
    """Any resource without a typed model; everything is in ``properties`` and links."""


@attrs.frozen
class Event:
    """One event of the event channel.

    ``link`` is the event's target, ``sender`` the sender block's link, ``in_link`` the
    collection the target was added to / removed from, ``resource`` the embedded resource
    (when the server embedded one: it may not).
    """

    type: str
    link: Link
    sender: Link | None = None
    in_link: Link | None = None
    status: str | None = None
    reason: Reason | None = None
    resource: Resource | None = None

    @property
    def operation_id(self) -> str | None:
        """The client's ``operationId`` carried by the embedded operation resource."""
        resource = self.resource
        if resource is None:
            return None
        if isinstance(resource, InvitationResource):
            return resource.operation_id
        value = resource.properties.get("operationId")
        return value if isinstance(value, str) else None

    @property
    def is_operation_event(self) -> bool:
        """started / updated / completed (``updated`` is also a resource event type)."""
        return self.type in OPERATION_EVENT_TYPES


@attrs.frozen
class UnknownEvent(Event):
    """An event type this library does not know; kept, never fatal."""


@attrs.frozen
class EventBatch:
    """One event-channel response: its links and its events in server order."""

    self_href: str | None = None
    next_href: str | None = None
    resync_href: str | None = None
    resume_href: str | None = None
    events: tuple[Event, ...] = ()
    rejected: tuple[str, ...] = ()
    """Why malformed senders/events were skipped: one line each, for the first
    :data:`MAX_REJECTED_REPORTS` of them only (a hostile batch may hold millions)."""
    rejected_count: int = attrs.field(
        default=attrs.Factory(lambda self: len(self.rejected), takes_self=True)
    )
    """How many malformed senders/events were skipped in all (``len(rejected)`` unless
    the reports were cut short)."""


# rel -> its model's builder (converter.make_builder); fixed at import, never mutated
# (a dict, not a MappingProxyType: the proxy's get costs a second call, once per resource).
_BUILDERS: dict[str | None, Callable[..., Resource]] = {
    "messagingInvitation": make_builder(MessagingInvitation),
    "phoneAudioInvitation": make_builder(PhoneAudioInvitation),
    "conversationLog": make_builder(ConversationLog),
}

# The parsers build models slot by slot (converter.slot_init, or inline for Link): the
# attrs __init__ of a frozen class sets each field with object.__setattr__, which was
# a third of the parse of a 500-event batch. Arguments: every field, in attrs order.
_new = object.__new__
_set_link_rel, _set_link_href, _set_link_title = slot_setters(Link, ("rel", "href", "title"))
_init_link = slot_init(Link, "rel", "href", "title")
_RESOURCE = ("rel", "href", "links", "embedded", "properties", "embedded_as")
_init_unknown_resource = slot_init(UnknownResource, *_RESOURCE)
_EVENT = ("type", "link", "sender", "in_link", "status", "reason", "resource")
_init_event = slot_init(Event, *_EVENT)
_init_unknown_event = slot_init(UnknownEvent, *_EVENT)
_init_batch = slot_init(
    EventBatch,
    "self_href",
    "next_href",
    "resync_href",
    "resume_href",
    "events",
    "rejected",
    "rejected_count",
)


def _href(value: Any, what: str) -> str:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise DecodeError(f"{what} is a {type(value).__name__}, not a link object")
    href = value.get("href")
    if not isinstance(href, str):
        raise DecodeError(f"{what} has no href")
    return href


def _title(value: Any) -> str | None:
    title = value.get("title")
    return title if isinstance(title, str) and title else None


def _link(value: Any, rel: str) -> Link:
    return _init_link(rel, _href(value, f"link {rel!r}"), _title(value))


def _links(raw: Any) -> tuple[tuple[Link, ...], str | None]:
    """The links in document order, and the href of the first ``self`` one."""
    if raw is None:
        return (), None
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise DecodeError("_links is not an object")
    out: list[Link] = []
    append = out.append
    for rel, value in raw.items():
        # Hot path (every link of every event): a plain {"href": str} under a str rel
        # is built inline; anything else gets the full checks below.
        if value.__class__ is dict and rel.__class__ is str:
            href = value.get("href")
            if href.__class__ is str and "title" not in value:
                link = _new(Link)
                _set_link_rel(link, rel)
                _set_link_href(link, href)
                _set_link_title(link, None)
                append(link)
                continue
        if not isinstance(rel, str):
            raise DecodeError("a link rel is not a string")
        if isinstance(value, list):
            out.extend(_link(item, rel) for item in value)
        else:
            append(_link(value, rel))
    links = tuple(out)
    if "self" in raw:
        for link in links:
            if link.rel == "self":
                return links, link.href
    return links, None


def _parse_resource(d: Any, rel: str | None, embedded: bool = False) -> Resource:
    # ``rel``: the name the resource is embedded under (``embedded``), else a fallback.
    if d.__class__ is not dict and not isinstance(d, Mapping):
        raise DecodeError(f"a resource is a {type(d).__name__}, not an object")
    # Every property but the structural two: a copy and two pops (which give the
    # structural two) cost less than a filtering comprehension and two gets.
    raw = dict(d)
    raw_links = raw.pop("_links", None)
    raw_embedded = raw.pop("_embedded", None)
    own_rel = raw.get("rel", rel)
    embedded_as = rel if embedded and rel != own_rel else None
    if own_rel is not None and own_rel.__class__ is not str and not isinstance(own_rel, str):
        raise DecodeError("a resource rel is not a string")
    links, href = _links(raw_links)
    children_of: tuple[Resource, ...] = ()
    if raw_embedded is not None:
        if type(raw_embedded) is not dict and not isinstance(raw_embedded, Mapping):
            raise DecodeError("_embedded is not an object")
        children: list[Resource] = []
        for key, value in raw_embedded.items():
            if not isinstance(key, str):
                raise DecodeError("an embedded rel is not a string")
            if isinstance(value, list):
                children.extend(_parse_resource(item, key, True) for item in value)
            else:
                children.append(_parse_resource(value, key, True))
        children_of = tuple(children)
    properties = MappingProxyType(raw)
    build = _BUILDERS.get(own_rel)
    if build is None:
        return _init_unknown_resource(own_rel, href, links, children_of, properties, embedded_as)
    return build(own_rel, href, links, children_of, properties, embedded_as, raw)


def parse_resource(d: Mapping[str, Any], rel: str | None = None) -> Resource:
    """A resource model from its canonical dict, typed by its ``rel``.

    ``rel`` is used only when ``d`` has none (an embedded resource's key, say).
    messagingInvitation, phoneAudioInvitation and conversationLog get typed models;
    anything else is an :class:`UnknownResource`.
    """
    try:
        return _parse_resource(d, rel)
    except RecursionError as exc:
        raise DecodeError("resource nested too deeply") from exc


def _parse_reason(d: Any) -> Reason:
    if not isinstance(d, Mapping):
        raise DecodeError(f"a reason is a {type(d).__name__}, not an object")
    extra = {k: v for k, v in d.items() if k not in _REASON_KEYS}
    debug = d.get("debugInfo")
    if debug is not None and not isinstance(debug, Mapping):
        extra["debugInfo"] = debug  # not a property bag: keep it, unparsed
        debug = None
    return Reason(
        code=_opt_str(d.get("code")),
        subcode=_opt_str(d.get("subcode")),
        message=_opt_str(d.get("message")),
        debug_info=MappingProxyType(dict(debug)) if debug is not None else None,
        extra=MappingProxyType(extra) if extra else _EMPTY,
    )


def parse_reason(d: Mapping[str, Any]) -> Reason:
    """A :class:`Reason` from an error body or an event's ``reason`` object."""
    return _parse_reason(d)


def _one(value: Any) -> Any:
    """A link written as a list of link objects: the first one counts."""
    if isinstance(value, list):
        if not value:
            raise DecodeError("an empty list where a link belongs")
        return value[0]
    return value


def _event_link(value: Any, what: str) -> Link:
    if value.__class__ is dict:
        # Hot path (two per event): a plain dict with str href and rel is built inline.
        href = value.get("href")
        rel = value.get("rel", "")
        if href.__class__ is str and rel.__class__ is str:
            title = value.get("title")
            if title is not None and (title.__class__ is not str or not title):
                title = _title(value)
            link = _new(Link)
            _set_link_rel(link, rel)
            _set_link_href(link, href)
            _set_link_title(link, title)
            return link
    value = _one(value)
    href = _href(value, what)
    rel = value.get("rel", "")
    if not isinstance(rel, str):
        raise DecodeError(f"{what} has a rel that is not a string")
    return _init_link(rel, href, _title(value))


def _batch_href(links: Mapping[str, Any], rel: str) -> str | None:
    value = links.get(rel)
    if value is None:
        return None
    return _href(_one(value), f"batch link {rel!r}")


def _parse_event(e: Mapping[str, Any], sender: Link | None) -> Event:
    # The caller has checked that ``e`` is a mapping (cheaply: see parse_event_batch).
    etype = e.get("type")
    if etype.__class__ is not str and not isinstance(etype, str):
        raise DecodeError("an event has no type")
    link = _event_link(e.get("link"), "event link")
    raw_in = e.get("in")
    in_link = _event_link(raw_in, "event 'in' link") if raw_in is not None else None
    raw_reason = e.get("reason")
    reason = _parse_reason(raw_reason) if raw_reason is not None else None
    resource = None
    raw_embedded = e.get("_embedded")
    if raw_embedded:
        if type(raw_embedded) is not dict and not isinstance(raw_embedded, Mapping):
            raise DecodeError("an event's _embedded is not an object")
        # The embedded resource is the event's target: prefer the entry under its rel.
        key = link.rel if link.rel in raw_embedded else next(iter(raw_embedded))
        if not isinstance(key, str):
            raise DecodeError("an embedded rel is not a string")
        raw_resource = raw_embedded[key]
        if raw_resource.__class__ is not dict:
            raw_resource = _one(raw_resource)
        resource = _parse_resource(raw_resource, key, True)
    status = e.get("status")
    if status is not None and status.__class__ is not str:
        status = _opt_str(status)
    init = _init_event if etype in KNOWN_EVENT_TYPES else _init_unknown_event
    return init(etype, link, sender, in_link, status, reason, resource)


def _as_list(value: Any, what: str) -> list[Any] | LazyItems:
    if value is None:
        return []
    if isinstance(value, list | LazyItems):
        return value
    if isinstance(value, Mapping):
        return [value]
    raise DecodeError(f"{what} is a {type(value).__name__}, not a list")


MAX_REJECTED_REPORTS = 20
"""At most this many ``EventBatch.rejected`` reports per batch; the rest are only counted."""


def parse_event_batch(d: Any) -> EventBatch:
    """An :class:`EventBatch` from a decoded event-channel response.

    Events keep server order across senders (a sender may appear more than once).
    Unknown event types become :class:`UnknownEvent`; a malformed sender or event is
    skipped and described in ``EventBatch.rejected`` (too-deep nesting included).
    """
    return read_event_batch(d).read_all()


def read_event_batch(d: Any) -> EventReader:
    """An :class:`EventReader` on a decoded event-channel response: its links are read
    (and checked) now, its events when they are taken.

    Raises :class:`DecodeError` if the batch itself (not one sender or event) is malformed.
    """
    if not isinstance(d, Mapping):
        raise DecodeError(f"an event batch is a {type(d).__name__}, not an object")
    links = d.get("_links")
    if links is None:
        links = _EMPTY
    elif not isinstance(links, Mapping):
        raise DecodeError("_links is not an object")
    envelope = EventBatch(
        self_href=_batch_href(links, "self"),
        next_href=_batch_href(links, "next"),
        resync_href=_batch_href(links, "resync"),
        resume_href=_batch_href(links, "resume"),
    )
    # One malformed sender or event is skipped, not fatal to the batch: the batch
    # is acknowledged by following ``next``, and a batch refused as a whole would
    # be re-delivered forever, wedging the channel.
    senders: list[tuple[Link | None, list[Any] | LazyItems] | str] = []
    for sender in _as_list(d.get("sender"), "sender"):
        try:
            if not isinstance(sender, Mapping):
                raise DecodeError("a sender is not an object")
            sender_link = _event_link(sender, "sender") if "href" in sender else None
            senders.append((sender_link, _as_list(sender.get("events"), "events")))
        except DecodeError as exc:
            senders.append(str(exc))
    return EventReader(envelope, senders)


_OBJECT_COST = 16  # EventReader.take: an event object costs 16 times a non-object item


class EventReader:
    """The events of one batch, parsed a slice at a time (:meth:`take`), in order.

    A batch of 60 000 events parsed at once holds the loop for seconds and creates
    hundreds of thousands of objects at once (and the garbage collector's full passes
    that follow); taken a slice at a time, each slice's events are parsed, handed on
    and dropped before the next slice is parsed.
    """

    __slots__ = ("_event", "_reports", "_sender", "_senders", "envelope", "items")

    def __init__(
        self,
        envelope: EventBatch,
        senders: list[tuple[Link | None, list[Any] | LazyItems] | str],
    ) -> None:
        self.envelope = envelope
        """The batch's links (its ``events`` are empty)."""
        self._senders = senders
        self._sender = 0
        self._event = 0
        self._reports = MAX_REJECTED_REPORTS
        self.items = sum(1 if type(s) is str else len(s[1]) for s in senders)
        """Raw senders and events not taken yet (malformed ones included)."""

    @property
    def may_hold_events(self) -> bool:
        """Whether an event object remains to be taken (without parsing it: a malformed
        one counts, an XML event rejected for a malformed element as the JSON object it
        would be). False for a batch of nothing but non-objects and malformed senders.
        (The decoders make dicts: ``dict in map(type, ...)`` runs in C.)"""
        for sender in self._senders[self._sender :]:
            if isinstance(sender, str):
                continue
            events = sender[1]
            if type(events) is LazyItems:
                if events.objects:
                    return True
            elif dict in map(type, events) or RejectedEvent in map(type, events):
                return True
        return False

    def take(self, limit: int) -> EventBatch:
        """The next events (at most ``limit`` event objects; each non-object item or
        malformed sender costs a sixteenth of one) as a batch with the envelope's links;
        its ``rejected`` reports count toward the batch's :data:`MAX_REJECTED_REPORTS`."""
        events: list[Event] = []
        rejected: list[str] = []
        count = 0
        budget = limit * _OBJECT_COST
        senders = self._senders
        while budget > 0 and self._sender < len(senders):
            sender = senders[self._sender]
            if isinstance(sender, str):
                self._sender += 1
                self.items -= 1
                budget -= 1
                count += 1
                if self._reports > 0:
                    self._reports -= 1
                    rejected.append(sender)
                continue
            sender_link, raw_events = sender
            index, end = self._event, len(raw_events)
            # As many items as the budget allows if all are objects; cheap rejects leave
            # budget over for another pass.
            stop = min(end, index + max(1, budget // _OBJECT_COST))
            for raw in raw_events[index:stop]:
                if type(raw) is not dict and not isinstance(raw, Mapping):
                    # The cheap check first: a hostile batch may hold millions of these,
                    # and raising an exception for each one would take seconds.
                    budget -= 1
                    why = (
                        f"malformed XML event: {raw.why}"
                        if type(raw) is RejectedEvent
                        else f"an event is a {type(raw).__name__}, not an object"
                    )
                else:
                    budget -= _OBJECT_COST
                    try:
                        events.append(_parse_event(raw, sender_link))
                        continue
                    except DecodeError as exc:
                        why = str(exc)
                    except RecursionError:
                        why = "event nested too deeply"
                    except (ValueError, TypeError, KeyError) as exc:  # a parser bug
                        why = f"event not parsed: {exc!r}"
                count += 1
                if self._reports > 0:
                    self._reports -= 1
                    rejected.append(why)
            self.items -= stop - index
            if stop >= end:
                self._sender += 1
                self._event = 0
            else:
                self._event = stop
        envelope = self.envelope  # not attrs.evolve: it costs ~40 us a call
        return _init_batch(
            envelope.self_href,
            envelope.next_href,
            envelope.resync_href,
            envelope.resume_href,
            tuple(events),
            tuple(rejected),
            count,
        )

    def copy(self) -> EventReader:
        """A reader at the same point that this one's takes do not move."""
        other = EventReader(self.envelope, self._senders)
        other._sender, other._event, other._reports = self._sender, self._event, self._reports
        other.items = self.items
        return other

    def read_all(self) -> EventBatch:
        """Every event not taken yet, in one batch."""
        return self.take(self.items)
