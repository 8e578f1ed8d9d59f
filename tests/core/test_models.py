"""_models and _converter: typed resources, events, batches, reasons, and their refusals."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from ucwa_async._core.converter import CONVERTER, camel_case, make_converter
from ucwa_async._core.errors import DecodeError
from ucwa_async._core.models import (
    ConversationLog,
    Event,
    EventBatch,
    Link,
    MessagingInvitation,
    PhoneAudioInvitation,
    Reason,
    Resource,
    UnknownEvent,
    UnknownResource,
    parse_event_batch,
    parse_reason,
    parse_resource,
)

INVITATION = {
    "rel": "messagingInvitation",
    "operationId": "op-1",
    "state": "Connecting",
    "direction": "Outgoing",
    "importance": "Normal",
    "subject": "Hi",
    "threadId": "t1",
    "to": "sip:a@contoso.com",
    "customContent": {"anything": ["goes"]},
    "_links": {"self": {"href": "/i/1"}, "cancel": {"href": "/i/1/cancel"}},
}


# ---------------------------------------------------------------- resources


def test_typed_dispatch_by_rel() -> None:
    inv = parse_resource(INVITATION)
    assert isinstance(inv, MessagingInvitation)
    assert (inv.operation_id, inv.state, inv.direction, inv.importance) == (
        "op-1",
        "Connecting",
        "Outgoing",
        "Normal",
    )
    assert (inv.subject, inv.thread_id, inv.to) == ("Hi", "t1", "sip:a@contoso.com")
    assert inv.href == "/i/1"
    assert inv.links == (Link("self", "/i/1"), Link("cancel", "/i/1/cancel"))
    # Every raw property is kept, typed or not.
    assert inv.properties["customContent"] == {"anything": ["goes"]}
    assert inv.properties["operationId"] == "op-1"
    assert "_links" not in inv.properties

    phone = parse_resource({"rel": "phoneAudioInvitation", "phoneNumber": "tel:+1"})
    assert isinstance(phone, PhoneAudioInvitation)
    assert not isinstance(phone, MessagingInvitation)
    assert phone.phone_number == "tel:+1"
    assert phone.href is None

    other = parse_resource({"rel": "contact", "name": "Alex"})
    assert type(other) is UnknownResource
    assert other.properties == {"rel": "contact", "name": "Alex"}

    no_self = parse_resource({"rel": "contact", "_links": {"photo": {"href": "/p"}}})
    assert no_self.href is None
    assert no_self.link("photo") == "/p"

    anonymous = parse_resource({"x": 1})
    assert type(anonymous) is UnknownResource
    assert anonymous.rel is None


def test_rel_argument_is_a_fallback() -> None:
    assert isinstance(
        parse_resource({"state": "Connected"}, rel="messagingInvitation"), MessagingInvitation
    )
    # The body's own rel wins over the argument.
    assert type(parse_resource({"rel": "contact"}, rel="messagingInvitation")) is UnknownResource


def test_typed_fields_are_optional() -> None:
    log = parse_resource({"rel": "conversationLog"})
    assert isinstance(log, ConversationLog)
    assert attrs.asdict(log, recurse=False) == {
        "rel": "conversationLog",
        "href": "",  # a str even without a self link (the session sets the absolute URL)
        "links": (),
        "embedded": (),
        "properties": {"rel": "conversationLog"},
        "embedded_as": None,
        "creation_time": None,
        "direction": None,
        "importance": None,
        "modalities": (),
        "preview_message": None,
        "status": None,
        "subject": None,
        "thread_id": None,
        "total_recipients_count": None,
        "type": None,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"totalRecipientsCount": "7"}, {"total_recipients_count": 7}),
        ({"totalRecipientsCount": 7}, {"total_recipients_count": 7}),
        ({"totalRecipientsCount": None}, {"total_recipients_count": None}),
        ({"modalities": "Messaging"}, {"modalities": ("Messaging",)}),
        ({"modalities": ["Messaging", None, True]}, {"modalities": ("Messaging", "True")}),
        ({"modalities": None}, {"modalities": ()}),
        ({"subject": True}, {"subject": "True"}),  # XML decoded the text "True"
        ({"subject": 12}, {"subject": "12"}),
        ({"threadId": 1.5}, {"thread_id": "1.5"}),
    ],
)
def test_lenient_scalar_coercion(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    log = parse_resource({"rel": "conversationLog", **raw})
    for name, value in expected.items():
        assert getattr(log, name) == value


@pytest.mark.parametrize(
    "raw",
    [
        {"totalRecipientsCount": "many"},
        {"totalRecipientsCount": True},
        {"totalRecipientsCount": 1.5},
        {"modalities": {"a": 1}},
        {"modalities": [["nested"]]},
        {"subject": {"a": 1}},
        {"subject": ["a"]},
    ],
)
def test_wrong_typed_values_are_decode_errors(raw: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        parse_resource({"rel": "conversationLog", **raw})


@pytest.mark.parametrize(
    "d",
    [
        [],
        "text",
        None,
        {"rel": 5},
        {"_links": []},
        {"_links": {"self": "href"}},
        {"_links": {"self": {}}},
        {"_links": {"self": {"href": 5}}},
        {"_links": {"x": [{"href": "/ok"}, {"nohref": 1}]}},
        {"_links": {5: {"href": "/x"}}},
        {"_embedded": []},
        {"_embedded": {"x": "not a resource"}},
        {"_embedded": {"x": [{"rel": 1}]}},
        {"_embedded": {5: {}}},
    ],
)
def test_malformed_resources(d: Any) -> None:
    with pytest.raises(DecodeError):
        parse_resource(d)


def test_deeply_nested_resource_is_a_decode_error() -> None:
    d: dict[str, Any] = {"rel": "leaf"}
    for _ in range(5000):
        d = {"rel": "n", "_embedded": {"n": d}}
    with pytest.raises(DecodeError, match="deeply"):
        parse_resource(d)


def test_base_key_collisions_are_harmless() -> None:
    r = parse_resource(
        {
            "rel": "messagingInvitation",
            "@href": "/evil",
            "@links": "junk",
            "@properties": 1,
            "_links": {"self": {"href": "/good"}},
        }
    )
    assert r.href == "/good"
    assert r.links == (Link("self", "/good"),)
    assert r.properties["@href"] == "/evil"


def test_resource_helpers() -> None:
    r = parse_resource(
        {
            "rel": "conversationLogs",
            "_links": {
                "self": {"href": "/l"},
                "conversationLog": [{"href": "/l/1"}, {"href": "/l/2"}],
            },
            "_embedded": {
                "a": {"x": 1},
                "b": [{"n": 1}, {"n": 2}],
            },
        }
    )
    assert r.link("conversationLog") == "/l/1"
    assert r.link("missing") is None
    assert r.links_for("conversationLog") == ("/l/1", "/l/2")
    assert r.links_for("missing") == ()
    a = r.embedded_one("a")
    assert a is not None
    assert a.rel == "a"
    assert r.embedded_one("missing") is None
    assert [e.properties["n"] for e in r.embedded_all("b")] == [1, 2]
    assert r.embedded_all("missing") == ()


def test_models_are_frozen_values() -> None:
    a = parse_resource(INVITATION)
    b = parse_resource(dict(INVITATION))
    assert a == b
    assert hash(a) == hash(b)
    assert hash(Reason("X", extra={"p": 1})) == hash(Reason("X", extra={"p": 2}))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.rel = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.properties["new"] = 1  # type: ignore[index]


# ---------------------------------------------------------------- reasons


def test_parse_reason() -> None:
    reason = parse_reason(
        {
            "code": "BadRequest",
            "subcode": "ParameterValidationFailure",
            "message": "phoneNumber",
            "debugInfo": {"diagnostics": "x"},
            "parameters": [{"name": "phoneNumber"}],
            "link": {"href": "/help"},
        }
    )
    assert reason.code == "BadRequest"
    assert reason.subcode == "ParameterValidationFailure"
    assert reason.message == "phoneNumber"
    assert reason.debug_info == {"diagnostics": "x"}
    assert reason.extra == {"parameters": [{"name": "phoneNumber"}], "link": {"href": "/help"}}
    assert parse_reason({}) == Reason()
    # debugInfo that is not a property bag is kept, unparsed.
    odd = parse_reason({"code": "X", "debugInfo": "text"})
    assert odd.debug_info is None
    assert odd.extra == {"debugInfo": "text"}


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (
            Reason("Forbidden", "DoNotDisturb", "The person is busy"),
            "Forbidden/DoNotDisturb: The person is busy",
        ),
        (Reason("Cancelled", None, "Cancelled by the user."), "Cancelled: Cancelled by the user."),
        (Reason("RemoteFailure", "Declined"), "RemoteFailure/Declined"),
        (Reason("Forbidden"), "Forbidden"),
        (Reason(None, "Declined", "declined"), "Declined: declined"),
        (Reason(message="The person is busy"), "The person is busy"),
        (Reason("", "", ""), "no reason given"),
        (Reason(), "no reason given"),
    ],
)
def test_str_of_a_reason_reads_well(reason: Reason, text: str) -> None:
    # print(exc.reason) in the docs: code/subcode: message, not the attrs repr.
    assert str(reason) == text
    assert f"{reason}" == text
    assert "mappingproxy" not in str(Reason("X", extra={"parameters": []}))


def test_repr_of_a_reason_is_unchanged() -> None:
    reason = Reason("Forbidden", "DoNotDisturb", "busy")
    assert repr(reason) == (
        "Reason(code='Forbidden', subcode='DoNotDisturb', message='busy',"
        " debug_info=None, extra=mappingproxy({}))"
    )


@pytest.mark.parametrize("d", [[], "x", {"code": {"a": 1}}, {"message": ["m"]}])
def test_malformed_reasons(d: Any) -> None:
    with pytest.raises(DecodeError):
        parse_reason(d)


# ---------------------------------------------------------------- events


def batch(*events: dict[str, Any], **links: Any) -> dict[str, Any]:
    return {
        "_links": {"self": {"href": "/e?ack=1"}, **links},
        "sender": [{"rel": "communication", "href": "/c", "events": list(events)}],
    }


def test_event_fields() -> None:
    b = parse_event_batch(
        batch(
            {
                "type": "completed",
                "status": "Failure",
                "link": {"rel": "messagingInvitation", "href": "/i/1"},
                "in": {"rel": "invitations", "href": "/c/invitations"},
                "reason": {"code": "RemoteFailure", "subcode": "Declined"},
                "_embedded": {"messagingInvitation": INVITATION},
            },
            next={"href": "/e?ack=2"},
        )
    )
    assert b.self_href == "/e?ack=1"
    assert b.next_href == "/e?ack=2"
    (event,) = b.events
    assert type(event) is Event
    assert event.sender == Link("communication", "/c")
    assert event.in_link == Link("invitations", "/c/invitations")
    assert event.reason == Reason(code="RemoteFailure", subcode="Declined")
    assert event.operation_id == "op-1"
    assert event.is_operation_event


def test_event_types() -> None:
    types = ["added", "updated", "deleted", "started", "completed", "brandNew", "Started"]
    b = parse_event_batch(batch(*({"type": t, "link": {"rel": "x", "href": "/x"}} for t in types)))
    kinds = [type(e) for e in b.events]
    assert kinds == [Event] * 5 + [UnknownEvent] * 2
    assert isinstance(b.events[-1], Event)
    assert [e.is_operation_event for e in b.events] == [
        False, True, False, True, True, False, False
    ]  # fmt: skip


def test_event_resource_choice_and_operation_id() -> None:
    b = parse_event_batch(
        batch(
            # The entry under the target's rel is the event's resource.
            {
                "type": "updated",
                "link": {"rel": "b", "href": "/b"},
                "_embedded": {"a": {"x": 1}, "b": {"operationId": "op-b"}},
            },
            # Otherwise the first one; a list counts by its first item.
            {
                "type": "updated",
                "link": {"rel": "z", "href": "/z"},
                "_embedded": {"a": [{"operationId": 7}, {"y": 2}]},
            },
            {"type": "updated", "link": {"rel": "z", "href": "/z"}, "_embedded": {}},
        )
    )
    first, second, third = b.events
    assert first.resource is not None
    assert first.resource.rel == "b"
    assert first.operation_id == "op-b"  # any embedded operation resource carries it
    assert second.resource is not None
    assert second.resource.rel == "a"
    assert second.operation_id is None  # not a string: not an operation id
    assert third.resource is None


def test_batch_links_may_be_lists_and_hrefs_are_kept() -> None:
    b = parse_event_batch(
        {
            "_links": {
                "self": [{"href": "https://fe1.contoso.com/ucwa/e?ack=1"}],
                "resync": {"href": "//v1/applications/833/events?ack=1"},
                "resume": [{"href": "/e?ack=9"}, {"href": "/ignored"}],
            }
        }
    )
    assert b == EventBatch(
        self_href="https://fe1.contoso.com/ucwa/e?ack=1",
        resync_href="//v1/applications/833/events?ack=1",
        resume_href="/e?ack=9",
    )
    assert parse_event_batch({}) == EventBatch()


def test_sender_shapes() -> None:
    one_sender = {
        "sender": {"rel": "me", "events": {"type": "added", "link": {"href": "/me/note"}}},
    }
    b = parse_event_batch(one_sender)
    (event,) = b.events
    assert event.sender is None  # a sender without an href
    assert event.link == Link("", "/me/note")  # a link without a rel
    assert parse_event_batch({"sender": [{"rel": "me", "href": "/me"}]}).events == ()


@pytest.mark.parametrize(
    "d",
    [
        [],
        {"_links": []},
        {"_links": {"next": "href"}},
        {"_links": {"next": []}},
        {"_links": {"next": {"href": None}}},
        {"sender": "x"},
    ],
)
def test_malformed_batch_envelopes(d: Any) -> None:
    # Without usable links or sender list the batch cannot be read at all.
    with pytest.raises(DecodeError):
        parse_event_batch(d)


_GOOD_EVENT = {"type": "added", "link": {"rel": "ok", "href": "/ok"}}


@pytest.mark.parametrize(
    "bad_sender",
    [
        "x",
        {"href": 5, "events": []},
        {"events": "x"},
        {"events": ["x"]},
        {"events": [{"link": {"href": "/x"}}]},
        {"events": [{"type": 1, "link": {"href": "/x"}}]},
        {"events": [{"type": "added"}]},
        {"events": [{"type": "added", "link": {"href": "/x", "rel": 1}}]},
        {"events": [{"type": "added", "link": {"href": "/x"}, "in": "x"}]},
        {"events": [{"type": "added", "link": {"href": "/x"}, "status": {}}]},
        {"events": [{"type": "added", "link": {"href": "/x"}, "reason": "x"}]},
        {"events": [{"type": "added", "link": {"href": "/x"}, "_embedded": [1]}]},
        {"events": [{"type": "added", "link": {"href": "/x"}, "_embedded": {1: {}}}]},
        {"events": [{"type": "added", "link": {"href": "/x"}, "_embedded": {"a": 1}}]},
    ],
)
def test_malformed_sender_or_event_is_skipped_not_fatal(bad_sender: Any) -> None:
    # A batch refused whole would be re-delivered forever (its next link is never
    # followed); so the bad part is skipped and reported, the good events survive.
    d = {
        "_links": {"next": {"href": "/events?ack=2"}},
        "sender": [bad_sender, {"rel": "me", "href": "/me", "events": [_GOOD_EVENT]}],
    }
    b = parse_event_batch(d)
    assert b.next_href == "/events?ack=2"
    assert [e.link.href for e in b.events] == ["/ok"]
    assert len(b.rejected) == 1
    assert b.rejected[0]


def test_deep_event_is_skipped() -> None:
    d: dict[str, Any] = {"rel": "leaf"}
    for _ in range(5000):
        d = {"_embedded": {"n": d}}
    event = {"type": "updated", "link": {"rel": "n", "href": "/n"}, "_embedded": {"n": d}}
    b = parse_event_batch(batch(event))
    assert b.events == ()
    assert b.rejected == ("event nested too deeply",)


# ---------------------------------------------------------------- converter


def test_camel_case() -> None:
    assert camel_case("total_recipients_count") == "totalRecipientsCount"
    assert camel_case("to") == "to"


def test_unstructure_gives_the_canonical_shape_back() -> None:
    d = {
        "rel": "conversationLog",
        "creationTime": "2016-09-26T16:20:24-07:00",
        "modalities": ["Messaging"],
        "totalRecipientsCount": 3,
        "isRead": True,
        "_links": {
            "self": {"href": "/l/1"},
            "continueMessaging": {"href": "/l/1/cm"},
            "to": [{"href": "/a"}, {"href": "/b"}, {"href": "/c"}],
        },
        "_embedded": {
            "conversationLogRecipient": [
                {"rel": "conversationLogRecipient", "n": 1},
                {"n": 2},
                {"rel": "conversationLogRecipient", "n": 3},
            ],
            "single": {"rel": "single"},
        },
    }
    log = parse_resource(d)
    out = CONVERTER.unstructure(log)
    expected = dict(d)
    # An embedded resource without its own "rel" gets the key it was embedded under.
    expected["_embedded"] = {
        "conversationLogRecipient": [
            {"rel": "conversationLogRecipient", "n": 1},
            {"rel": "conversationLogRecipient", "n": 2},
            {"rel": "conversationLogRecipient", "n": 3},
        ],
        "single": {"rel": "single"},
    }
    assert out == expected
    again = parse_resource(out)
    assert again.embedded_all("conversationLogRecipient")[1].properties == {
        "rel": "conversationLogRecipient",
        "n": 2,
    }
    assert attrs.evolve(again, embedded=log.embedded) == log


def test_unstructure_of_a_built_model() -> None:
    inv = MessagingInvitation(rel="messagingInvitation", href="/i/9", operation_id="op", state="X")
    assert CONVERTER.unstructure(inv) == {
        "rel": "messagingInvitation",
        "operationId": "op",
        "state": "X",
        "_links": {"self": {"href": "/i/9"}},
    }
    assert CONVERTER.unstructure(Resource()) == {}


def test_make_converter_builds_independent_converters() -> None:
    conv = make_converter()
    assert conv is not CONVERTER
    source = {
        "threadId": "t",
        "@rel": "messagingInvitation",
        "@href": None,
        "@links": (),
        "@embedded": (),
        "@properties": {},
    }
    inv = conv.structure(source, MessagingInvitation)
    assert inv == MessagingInvitation(rel="messagingInvitation", thread_id="t", properties={})


def test_a_conversation_logs_creation_time_is_one_instant_in_both_wires() -> None:
    # conversationLog_ref.md: JSON "\/Date(1474932024587)\/", XML ISO 8601 (the samples
    # name the same instant to the second, 2016-09-26T23:20:24Z).
    import datetime

    from ucwa_async._core.models import ConversationLog, parse_resource
    from ucwa_async._core.wire import decode

    json_body = b'{"rel": "conversationLog", "creationTime": "\\/Date(1474932024587)\\/"}'
    xml_body = (
        b'<resource xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa" rel="conversationLog">'
        b'<property name="creationTime">2016-09-26T16:20:24.6066543-07:00</property></resource>'
    )
    from_json = parse_resource(decode(json_body, "application/json"))
    from_xml = parse_resource(decode(xml_body, "application/vnd.microsoft.com.ucwa+xml"))
    assert isinstance(from_json, ConversationLog)
    assert isinstance(from_xml, ConversationLog)
    assert from_json.creation_time != from_xml.creation_time  # as each wire wrote it
    instant = datetime.datetime(2016, 9, 26, 23, 20, 24, tzinfo=datetime.UTC)
    for log in (from_json, from_xml):
        assert log.created_at is not None
        assert abs(log.created_at - instant) < datetime.timedelta(seconds=1)
    assert ConversationLog().created_at is None
    assert ConversationLog(creation_time="yesterday").created_at is None
