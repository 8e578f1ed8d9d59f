"""Golden tests: the same bodies in JSON and XML mean the same; the seeds' request bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ucwa_async._core.models import (
    ConversationLog,
    Event,
    MessagingInvitation,
    PhoneAudioInvitation,
    Reason,
    UnknownResource,
    parse_event_batch,
    parse_reason,
    parse_resource,
)
from ucwa_async._core.wire import UCWA_XML_MEDIA_TYPE, decode, encode_input

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
PAIRS = sorted(p.stem for p in FIXTURES.glob("*.json"))
OP_ID = "74cb7404e0a247d5a2d4eb0376a47dbf"


def load(stem: str, wire: str) -> dict[str, Any]:
    if wire == "json":
        return decode((FIXTURES / f"{stem}.json").read_bytes(), "application/json")
    # The seeds send application/xml; servers answer the UCWA type: use both.
    ctype = "application/xml" if stem.startswith("seed_") else UCWA_XML_MEDIA_TYPE
    return decode((FIXTURES / f"{stem}.xml").read_bytes(), ctype)


def test_every_json_fixture_has_an_xml_twin() -> None:
    assert len(PAIRS) >= 10
    for stem in PAIRS:
        assert (FIXTURES / f"{stem}.xml").is_file(), stem


@pytest.mark.parametrize("stem", [p for p in PAIRS if p != "seed_continueMessaging_request"])
def test_json_and_xml_decode_to_equal_dicts(stem: str) -> None:
    assert load(stem, "json") == load(stem, "xml")


# ---------------------------------------------------------------- event batches


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_operations_batch_models(wire: str) -> None:
    batch = parse_event_batch(load("events_operations", wire))
    assert batch.self_href == "/ucwa/oauth/v1/applications/833/events?ack=3"
    assert batch.next_href == "/ucwa/oauth/v1/applications/833/events?ack=4"
    assert batch.resync_href is None
    assert batch.resume_href is None
    # Server order across the three sender blocks (communication appears twice).
    assert [(e.type, e.link.rel) for e in batch.events] == [
        ("started", "messagingInvitation"),
        ("added", "conversation"),
        ("started", "phoneAudioInvitation"),
        ("updated", "presence"),
        ("completed", "messagingInvitation"),
        ("completed", "phoneAudioInvitation"),
    ]
    started, added, phone_started, presence, im_done, phone_done = batch.events

    assert isinstance(started.resource, MessagingInvitation)
    assert started.resource.state == "Connecting"
    assert started.operation_id == OP_ID
    assert started.is_operation_event
    assert started.sender is not None
    assert started.sender.rel == "communication"
    assert started.resource.link("cancel") == (
        "/ucwa/oauth/v1/applications/833/communication/invitations/700/cancel"
    )

    assert added.in_link is not None
    assert added.in_link.rel == "conversations"
    assert added.resource is None
    assert added.operation_id is None
    assert not added.is_operation_event

    # Absolute hrefs stay absolute, relative ones relative: nothing is resolved here.
    assert phone_started.link.href.startswith("https://fe1.contoso.com:443/ucwa/")
    assert isinstance(phone_started.resource, PhoneAudioInvitation)
    assert phone_started.resource.phone_number == "tel:+14255551234"
    assert presence.sender is not None
    assert presence.sender.rel == "me"

    assert im_done.status == "Success"
    assert im_done.reason is None
    assert isinstance(im_done.resource, MessagingInvitation)
    assert im_done.resource.state == "Connected"
    assert im_done.resource.links_for("acceptedByParticipant") == (
        "/ucwa/oauth/v1/applications/833/communication/conversations/12/participants/alex",
        "/ucwa/oauth/v1/applications/833/communication/conversations/12/participants/sam",
    )

    assert phone_done.status == "Failure"
    assert phone_done.reason == Reason(
        code="RemoteFailure",
        subcode="Declined",
        message="The call was declined by the remote party.",
    )
    assert phone_done.operation_id == "9f3c2a1b8e7d4c6a"
    assert isinstance(phone_done.resource, PhoneAudioInvitation)
    assert phone_done.resource.state == "Failed"


def test_operations_batch_models_equal_across_wires() -> None:
    from_json = parse_event_batch(load("events_operations", "json"))
    from_xml = parse_event_batch(load("events_operations", "xml"))
    assert from_json == from_xml


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_link_only_batch(wire: str) -> None:
    batch = parse_event_batch(load("events_link_only", wire))
    assert batch.next_href == "https://fe1.contoso.com:443/ucwa/v1/applications/833/events?ack=8"
    assert all(e.resource is None and e.operation_id is None for e in batch.events)
    first, done, failed = batch.events
    assert type(first) is Event
    assert first.link.href == (
        "https://fe1.contoso.com:443/ucwa/v1/applications/833/communication/invitations/700"
    )
    assert done.status == "Success"
    assert failed.link.href == "/ucwa/v1/applications/833/communication/invitations/596"
    assert failed.status == "Failure"
    assert failed.reason is not None
    assert (failed.reason.code, failed.reason.subcode) == ("RemoteFailure", "Declined")
    assert parse_event_batch(load("events_link_only", "json")) == parse_event_batch(
        load("events_link_only", "xml")
    )


# ---------------------------------------------------------------- resources


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_application_resource(wire: str) -> None:
    app = parse_resource(load("application", wire))
    assert isinstance(app, UnknownResource)
    assert app.rel == "application"
    assert app.href == "/ucwa/oauth/v1/applications/833"
    assert app.link("events") == "/ucwa/oauth/v1/applications/833/events?ack=1"
    assert app.link("batch") == "/ucwa/oauth/v1/applications/833/batch"
    assert app.properties["culture"] == "en-US"
    me = app.embedded_one("me")
    assert me is not None
    assert me.link("reportMyActivity") == "/ucwa/oauth/v1/applications/833/me/reportMyActivity"
    assert me.properties["emailAddresses"] == ["sam@contoso.com"]
    communication = app.embedded_one("communication")
    assert communication is not None
    assert communication.link("conversationLogs") == (
        "/ucwa/oauth/v1/applications/833/communication/conversationLogs"
    )
    assert communication.link("makeMeAvailable") == (
        "/ucwa/oauth/v1/applications/833/communication/makeMeAvailable"
    )
    assert communication.properties["supportedModalities"] == []
    assert communication.properties["simultaneousRingEnabled"] is False
    assert {r.rel for r in app.embedded} == {"me", "people", "onlineMeetings", "communication"}


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_conversation_logs_one_and_many(wire: str) -> None:
    one = parse_resource(load("conversation_logs_one", wire))
    assert one.links_for("conversationLog") == (
        "/ucwa/oauth/v1/applications/833/communication/conversationLogs/conversationLog?id=AAMkAGI1",
    )
    many = parse_resource(load("conversation_logs_many", wire))
    hrefs = many.links_for("conversationLog")
    assert len(hrefs) == 3
    assert hrefs[1].endswith("?id=AAMkAGI2&amp=x")  # query strings are kept as given


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_conversation_log(wire: str) -> None:
    log = parse_resource(load("conversation_log", wire))
    assert isinstance(log, ConversationLog)
    assert log.modalities == ("Messaging", "Audio")
    assert log.total_recipients_count == 2
    assert log.type == "AudioLog"
    assert log.status == "Archived"
    assert log.thread_id == "534e445ee854436a8abe02c24985f78a"
    assert log.preview_message == 'Can we talk <tomorrow> & "later"?'
    assert log.creation_time == "2016-09-26T16:20:24.6066543-07:00"
    assert log.link("continueMessaging") == (
        "/ucwa/oauth/v1/applications/833/communication/conversationLogs/conversationLog"
        "/continueMessaging?id=AAMkAGI1"
    )
    assert log.properties["isRead"] is True  # unknown properties are kept
    recipients = log.embedded_all("conversationLogRecipient")
    assert [r.properties["displayName"] for r in recipients] == ["Alex Doe", "Sam Doe"]
    assert parse_resource(load("conversation_log", "json")) == parse_resource(
        load("conversation_log", "xml")
    )


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_error_bodies(wire: str) -> None:
    conflict = parse_reason(load("error_conflict", wire))
    assert conflict == Reason(
        code="Conflict",
        subcode="AlreadyExists",
        message="The requested resource already exists. Please wait and try again.",
    )
    callback = parse_reason(load("error_callback_channel", wire))
    assert (callback.code, callback.subcode) == ("ServiceFailure", "CallbackChannelError")
    assert callback.debug_info == {
        "diagnostics": '1000;reason="no pending P-GET"',
        "errorReportId": "42",
    }
    assert callback.extra == {"parameters": {"operationId": OP_ID}}


# ---------------------------------------------------------------- the seeds' request bodies


def _roundtrip(data: dict[str, Any], wire: str) -> dict[str, Any]:
    body, ctype = encode_input(data, wire)  # type: ignore[arg-type]
    return decode(body, ctype)


MESSAGE = {"href": "data:text/plain;base64,somebase64encodedmessage"}


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_seed_continue_messaging(wire: str) -> None:
    with_message = {"operationId": OP_ID, "_links": {"message": MESSAGE}}
    # Our output, in either wire, means what the seed's JSON sample means.
    assert _roundtrip(with_message, wire) == load("seed_continueMessaging_request", "json")
    # The seed's XML sample carries no message link.
    assert _roundtrip({"operationId": OP_ID}, wire) == load("seed_continueMessaging_request", "xml")


@pytest.mark.parametrize("wire", ["json", "xml"])
def test_seed_continue_phone_audio(wire: str) -> None:
    data = {"operationId": OP_ID, "phoneNumber": "tel:+14255551234"}
    assert _roundtrip(data, wire) == load("seed_continuePhoneAudio_request", "json")
    assert _roundtrip(data, wire) == load("seed_continuePhoneAudio_request", "xml")


def test_seed_xml_bodies_are_what_the_seed_shows() -> None:
    body, ctype = encode_input({"operationId": OP_ID, "phoneNumber": "tel:+14255551234"}, "xml")
    assert ctype == UCWA_XML_MEDIA_TYPE
    assert body == (
        b'<?xml version="1.0" encoding="utf-8"?>'
        b'<input xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">'
        b'<property name="operationId">74cb7404e0a247d5a2d4eb0376a47dbf</property>'
        b'<property name="phoneNumber">tel:+14255551234</property>'
        b"</input>"
    )
