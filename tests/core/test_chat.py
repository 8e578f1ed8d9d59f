"""Conversation values from reference samples: messages, participants, incoming invitations."""

from __future__ import annotations

import datetime

import pytest

from ucwa_async._core import wire
from ucwa_async._core.chat import (
    Message,
    Participant,
    invitation_view,
    message_from,
    message_text,
    parse_time_stamp,
    participant_from,
)
from ucwa_async._core.errors import DecodeError
from ucwa_async._core.models import parse_resource

APP = "/ucwa/oauth/v1/applications/104"
CONV = f"{APP}/communication/conversations/eee0"

# ReceiveAnIM.md step 8: the incoming messagingInvitation, as embedded in its started event.
INCOMING_INVITATION_LINKS = {
    "self": {"href": f"{APP}/communication/messagingInvitations/6408"},
    "to": {"href": f"{APP}/people/toshm@contoso.com"},
    "conversation": {"href": CONV},
    "accept": {"href": f"{APP}/communication/messagingInvitations/6408/accept"},
    "decline": {"href": f"{APP}/communication/messagingInvitations/6408/decline"},
    "messaging": {"href": f"{CONV}/messaging"},
    "message": {"href": "data:text/plain;charset=utf-8,Hi+Tosh%0d%0a"},
}
INCOMING_INVITATION = {
    "direction": "Incoming",
    "importance": "Normal",
    "threadId": "Ac7bUftwUcVMzgTzRl+OQchCsUn35Q==",
    "state": "Connecting",
    "subject": "",
    "_links": INCOMING_INVITATION_LINKS,
    "_embedded": {
        "from": {
            "sourceNetwork": "SameEnterprise",
            "anonymous": False,
            "name": "Lene Aaling",
            "uri": "sip:lenea@contoso.com",
            "_links": {
                "self": {"href": f"{CONV}/participants/lenea@contoso.com"},
                "conversation": {"href": CONV},
                "contact": {"href": f"{APP}/people/lenea@contoso.com"},
            },
            "rel": "participant",
        }
    },
    "rel": "messagingInvitation",
}

# message_ref.md, XML response sample (trimmed to its links and properties).
C137 = "/ucwa/v1/applications/192/communication/conversations/137"
MESSAGE_XML = """<?xml version="1.0" encoding="utf-8"?>
<resource rel="message" href="{C}/messaging/messages/165"
  xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <link rel="htmlMessage" href="data:text/html;base64,PGI+aGk8L2I+" />
  <link rel="plainMessage" href="data:text/plain;charset=utf8,hi%20there" />
  <link rel="participant" href="{C}/participants/196" />
  <property name="direction">Incoming</property>
  <property name="timeStamp">2016-09-26T16:20:27.6158253-07:00</property>
</resource>""".replace("{C}", C137).encode()


def test_message_text_reference_sample_plus_is_a_space() -> None:
    assert message_text("data:text/plain;charset=utf-8,Hi+Tosh%0d%0a") == "Hi Tosh\r\n"


def test_message_text_base64_and_charset() -> None:
    assert message_text(wire.data_uri("1 + 1 = 2 ✓")) == "1 + 1 = 2 ✓"
    assert message_text("data:text/plain;charset=iso-8859-1,caf%E9") == "café"
    assert message_text("data:text/plain,a%2Bb") == "a+b"
    with pytest.raises(DecodeError):
        message_text("data:text/plain;charset=nope,x")


def test_time_stamps_of_both_wires() -> None:
    utc = datetime.UTC
    assert parse_time_stamp("\\/Date(1383784870271)\\/") == datetime.datetime(
        2013, 11, 7, 0, 41, 10, 271000, tzinfo=utc
    )
    assert parse_time_stamp("/Date(1383784870271)/") is not None
    assert parse_time_stamp("2016-09-26T16:20:27.6158253-07:00") == datetime.datetime(
        2016, 9, 26, 23, 20, 27, 615825, tzinfo=utc
    )
    assert parse_time_stamp("2016-09-26T16:20:27") == datetime.datetime(
        2016, 9, 26, 16, 20, 27, tzinfo=utc
    )
    assert parse_time_stamp("2016-09-26T16:20:27Z") is not None
    assert parse_time_stamp("yesterday") is None
    assert parse_time_stamp(None) is None
    assert parse_time_stamp("/Date(99999999999999999999)/") is None


def test_participant_from_resource() -> None:
    resource = parse_resource(INCOMING_INVITATION).embedded_one("participant")
    assert resource is not None
    participant = participant_from(resource)
    assert participant == Participant(uri="sip:lenea@contoso.com", name="Lene Aaling")
    assert participant.href == f"{CONV}/participants/lenea@contoso.com"


def test_message_from_xml_sample_has_both_bodies() -> None:
    resource = parse_resource(wire.decode(MESSAGE_XML, "application/vnd.microsoft.com.ucwa+xml"))
    message = message_from(resource)
    assert message is not None
    assert message.text == "hi there"
    assert message.html == "<b>hi</b>"
    assert message.direction == "Incoming"
    assert message.sender is not None
    assert message.sender.href is not None
    assert message.sender.href.endswith("/participants/196")
    assert message.time is not None
    assert message.time.tzinfo is datetime.UTC
    assert message.href is not None
    assert message.href.endswith("/messages/165")


def test_message_from_html_only_and_without_body() -> None:
    html_only = parse_resource(
        {
            "rel": "message",
            "_links": {"htmlMessage": {"href": wire.data_uri("<i>x</i>", "text/html")}},
        }
    )
    message = message_from(html_only, sender=Participant(uri="sip:a@b"))
    assert message is not None
    assert (message.text, message.html) == ("<i>x</i>", "<i>x</i>")
    assert message.sender == Participant(uri="sip:a@b")
    assert message.time is None
    bodiless = parse_resource(
        {"rel": "message", "_links": {"plainMessage": {"href": "data:,%ZZ%"}}}
    )
    assert message_from(parse_resource({"rel": "message"})) is None
    broken = parse_resource({"rel": "message", "_links": {"plainMessage": {"href": "http://x"}}})
    assert message_from(broken) is None
    assert bodiless is not None


def test_invitation_view_of_the_reference_sample() -> None:
    resource = parse_resource(INCOMING_INVITATION)
    view = invitation_view(resource, "https://h/inv")
    assert view is not None
    assert view.kind == "messaging"
    assert view.href == "https://h/inv"
    assert view.sender == Participant(uri="sip:lenea@contoso.com", name="Lene Aaling")
    assert view.subject is None  # "" in the sample: no subject
    assert view.message == "Hi Tosh\r\n"
    assert view.conversation_href == CONV
    assert view.accept_href is not None
    assert view.accept_href.endswith("/accept")
    assert view.decline_href is not None
    assert view.decline_href.endswith("/decline")


def test_invitation_view_phone_audio_without_caller_and_not_an_invitation() -> None:
    phone = parse_resource({"rel": "phoneAudioInvitation", "subject": "Call"})
    view = invitation_view(phone, "https://h/p")
    assert view is not None
    assert (view.kind, view.subject, view.message) == ("phoneAudio", "Call", None)
    assert view.sender == Participant()
    assert invitation_view(parse_resource({"rel": "conversation"}), "https://h/c") is None


# message_ref.md, Properties: "htmlMessage | If populated, indicates an HTML message body",
# "plainMessage | If populated, indicates a plain text message body"; messagingInvitation_ref.md,
# Properties: "message | The first message represented in this invitation". The samples
# write them as data: links; a server may send the properties the tables list.
def test_message_from_bodies_as_properties_in_both_wires() -> None:
    as_json = parse_resource(
        {"rel": "message", "direction": "Incoming", "plainMessage": "Hi Tosh", "htmlMessage": ""}
    )
    message = message_from(as_json)
    assert message is not None
    assert (message.text, message.html, message.direction) == ("Hi Tosh", None, "Incoming")
    as_xml = MESSAGE_XML.replace(
        b'<link rel="htmlMessage" href="data:text/html;base64,PGI+aGk8L2I+" />\n', b""
    ).replace(
        b'<link rel="plainMessage" href="data:text/plain;charset=utf8,hi%20there" />',
        b'<property name="htmlMessage">&lt;b&gt;hi&lt;/b&gt;</property>',
    )
    message = message_from(
        parse_resource(wire.decode(as_xml, "application/vnd.microsoft.com.ucwa+xml"))
    )
    assert message is not None
    assert (message.text, message.html) == ("<b>hi</b>", "<b>hi</b>")
    # a property written as the links' data: URI reads as the link would
    data = parse_resource(
        {"rel": "message", "plainMessage": "data:text/plain;charset=utf-8,Hi+Tosh%0d%0a"}
    )
    assert message_from(data) == message_from(
        parse_resource(
            {
                "rel": "message",
                "_links": {"plainMessage": {"href": "data:text/plain;charset=utf-8,Hi+Tosh%0d%0a"}},
            }
        )
    )


def test_message_link_wins_over_the_property() -> None:
    both = parse_resource(
        {
            "rel": "message",
            "plainMessage": "from the property",
            "_links": {"plainMessage": {"href": "data:text/plain,from%20the%20link"}},
        }
    )
    message = message_from(both)
    assert message is not None
    assert message.text == "from the link"


def test_invitation_view_first_message_as_a_property() -> None:
    links = dict(INCOMING_INVITATION_LINKS)
    del links["message"]
    as_property = dict(INCOMING_INVITATION, _links=links, message="Hi Tosh")
    view = invitation_view(parse_resource(as_property), "https://h/inv")
    assert view is not None
    assert view.message == "Hi Tosh"
    both = dict(INCOMING_INVITATION, message="not this one")
    view = invitation_view(parse_resource(both), "https://h/inv")
    assert view is not None
    assert view.message == "Hi Tosh\r\n"


XML = "application/vnd.microsoft.com.ucwa+xml"


# A body property is what a person typed: "True" is a message, as the JSON wire gives it
# ("plainMessage": "True"), not a boolean (which message_from would drop as bodiless).
@pytest.mark.parametrize("typed", ["True", "false"])
def test_a_body_property_that_reads_as_a_boolean_is_text_in_both_wires(typed: str) -> None:
    as_json = message_from(
        parse_resource({"rel": "message", "plainMessage": typed, "htmlMessage": typed})
    )
    assert as_json is not None
    assert (as_json.text, as_json.html) == (typed, typed)
    props = (
        f'<property name="plainMessage">{typed}</property>'
        f'<property name="htmlMessage">{typed}</property>'
    )
    resource = f'<resource rel="message" href="{C137}/messaging/messages/165">'
    # A resource (the fold) and a compact event batch (the fast path).
    as_xml = wire.decode(
        (resource.replace(">", f' xmlns="{wire.UCWA_NS}">', 1) + props + "</resource>").encode(),
        XML,
    )
    compact = (
        f'<events href="/e?ack=2" xmlns="{wire.UCWA_NS}">'
        f'<sender rel="conversation" href="{C137}">'
        f'<added rel="message" href="{C137}/messaging/messages/165">'
        f"{resource}{props}</resource></added></sender></events>"
    ).encode()
    fast = wire._FastBatch.start(compact)
    assert fast is not None  # the batch takes the fast path
    assert fast.run(len(compact))
    assert fast.done
    batch = wire.decode(compact, XML)
    in_event = batch["sender"][0]["events"][0]["_embedded"]["message"]
    for decoded in (as_xml, in_event):
        message = message_from(parse_resource(decoded))
        assert message is not None
        assert (message.text, message.html) == (typed, typed)


# A body property holds the text itself or (as the samples' links) a data: URI; text that
# only starts with "data:" is what a person typed, not a URI (RFC 2397: no white space
# before the comma), and was dropped (no comma) or cut (one).
@pytest.mark.parametrize(
    "typed", ["Data: see attached", "data: the figures, as promised", "data:", "DATA:  ok"]
)
def test_a_body_property_starting_with_data_colon_is_text(typed: str) -> None:
    for body in ("plainMessage", "htmlMessage"):
        message = message_from(parse_resource({"rel": "message", body: typed}))
        assert message is not None
        assert message.text == typed
    links = dict(INCOMING_INVITATION_LINKS)
    del links["message"]
    view = invitation_view(
        parse_resource(dict(INCOMING_INVITATION, _links=links, message=typed)), "https://h/inv"
    )
    assert view is not None
    assert view.message == typed
    # a data: URI property still reads as the link would
    uri = parse_resource({"rel": "message", "plainMessage": "data:text/plain,Hi%20Tosh"})
    assert message_from(uri) == Message(text="Hi Tosh")
