"""_wire: XML decoding into the canonical shape, its refusals, and the XML request encoder."""

from __future__ import annotations

from typing import Any

import pytest

from ucwa_async._core.errors import BodyTooLargeError, DecodeError
from ucwa_async._core.wire import MAX_XML_DEPTH, UCWA_NS, UCWA_XML_MEDIA_TYPE, decode, encode_input

XML = UCWA_XML_MEDIA_TYPE


def dx(text: str | bytes, ctype: str = XML) -> dict[str, Any]:
    return decode(text.encode("utf-8") if isinstance(text, str) else text, ctype)


# ---------------------------------------------------------------- resources


@pytest.mark.parametrize(
    "ns",
    [
        f' xmlns="{UCWA_NS}"',
        ' xmlns="https://schemas.microsoft.com/rtc/2012/03/ucwa"',
        "",
    ],
)
def test_namespaces(ns: str) -> None:
    doc = f'<resource rel="me" href="/me"{ns}><property name="name">Sam</property></resource>'
    assert dx(doc) == {"rel": "me", "name": "Sam", "_links": {"self": {"href": "/me"}}}


def test_prefixed_elements() -> None:
    doc = (
        f'<u:resource xmlns:u="{UCWA_NS}" rel="me" href="/me">'
        '<u:link rel="note" href="/me/note"/><u:property name="x">1</u:property></u:resource>'
    )
    assert dx(doc) == {
        "rel": "me",
        "x": "1",
        "_links": {"self": {"href": "/me"}, "note": {"href": "/me/note"}},
    }


@pytest.mark.parametrize("ctype", ["application/xml", "text/xml", "application/xml; charset=utf-8"])
def test_xml_content_types(ctype: str) -> None:
    assert dx("<resource rel='a'/>", ctype) == {"rel": "a"}


def test_values() -> None:
    doc = """<resource rel="x">
      <property name="a">True</property>
      <property name="b">false</property>
      <property name="c">TRUE</property>
      <property name="totalRecipientsCount">91</property>
      <property name="participantCount">many</property>
      <property name="etag">2943169141</property>
      <property name="empty"></property>
      <property name="spaced">  two  words </property>
      <property name="rel">x</property>
      <property name="Truth">Trueish</property>
    </resource>"""
    assert dx(doc) == {
        "rel": "x",
        "a": True,
        "b": False,
        "c": True,
        "totalRecipientsCount": 91,
        "participantCount": "many",  # not a number after all: the text is kept
        "etag": "2943169141",  # not a known integer property: stays text, as in JSON
        "empty": "",
        "spaced": "  two  words ",
        "Truth": "Trueish",
    }


# missedItems_ref.md, GET: the XML sample. Its JSON sample has the five counts as numbers;
# missedItems is a resource of communication, whose updated events reach session.events().
_MISSED_ITEMS = [
    '<resource rel="missedItems" href="/ucwa/v1/applications/192/communication/missedItems">',
    '<property name="rel">missedItems</property>',
    '<property name="conversationLogsCount">97</property>',
    '<property name="conversationLogsNotifications">Disabled</property>',
    '<property name="missedConversationsCount">82</property>',
    '<property name="unreadMissedConversationsCount">70</property>',
    '<property name="unreadVoicemailsCount">1</property>',
    '<property name="voiceMailsCount">40</property>',
    "</resource>",
]
_MISSED_ITEMS_DECODED = {
    "rel": "missedItems",
    "_links": {"self": {"href": "/ucwa/v1/applications/192/communication/missedItems"}},
    "conversationLogsCount": 97,
    "conversationLogsNotifications": "Disabled",
    "missedConversationsCount": 82,
    "unreadMissedConversationsCount": 70,
    "unreadVoicemailsCount": 1,
    "voiceMailsCount": 40,
}


@pytest.mark.parametrize("where", ["resource", "compact event", "indented event"])
def test_numbers_of_the_json_samples_are_numbers(where: str) -> None:
    if where == "resource":
        doc = "\n  ".join(_MISSED_ITEMS).replace(
            "<resource ", f'<?xml version="1.0" encoding="utf-8"?><resource xmlns="{UCWA_NS}" ', 1
        )
        assert dx(doc) == _MISSED_ITEMS_DECODED
        return
    sep = "" if where == "compact event" else "\n  "
    doc = sep.join(
        [
            f'<?xml version="1.0" encoding="utf-8"?><events href="/e?ack=2" xmlns="{UCWA_NS}">',
            '<sender rel="communication" href="/ucwa/v1/applications/192/communication">',
            '<updated rel="missedItems" href="/ucwa/v1/applications/192/communication/'
            'missedItems">',
            *_MISSED_ITEMS,
            "</updated></sender></events>",
        ]
    )
    event = dx(doc)["sender"][0]["events"][0]
    assert event["_embedded"] == {"missedItems": _MISSED_ITEMS_DECODED}


@pytest.mark.parametrize(
    ("name", "page"),
    [
        ("ringDelay", "simultaneousRingSettings_ref.md"),
        ("udpPort", "mediaRelay_ref.md"),
        ("tcpPort", "mediaRelay_ref.md"),
        ("duration", "mediaRelayAccessToken_ref.md"),
        ("minimumAudioPort", "mediaPolicies_ref.md"),
        ("maximumAudioPort", "mediaPolicies_ref.md"),
        ("minimumVideoPort", "mediaPolicies_ref.md"),
        ("maximumVideoPort", "mediaPolicies_ref.md"),
        ("minimumApplicationSharingPort", "mediaPolicies_ref.md"),
        ("maximumApplicationSharingPort", "mediaPolicies_ref.md"),
        ("meetingSize", "onlineMeetingPolicies_ref.md"),
        ("participantsWarningThreshold", "onlineMeetingDefaultValues_ref.md"),
        ("locationRefreshInterval", "policies_ref.md"),
    ],
)
def test_every_number_of_the_json_samples_is_a_number(name: str, page: str) -> None:
    # Each is a number in the JSON sample of `page` (and text in its XML sample).
    assert dx(f'<resource rel="x"><property name="{name}">5</property></resource>')[name] == 5


def test_property_rel_without_attribute_is_the_rel() -> None:
    assert dx('<resource><property name="rel">me</property></resource>') == {"rel": "me"}


def test_property_rel_of_an_embedded_resource_is_its_rel() -> None:
    # messagingInvitation_ref.md, GET: the XML sample writes the invitation's caller as
    # <resource rel="from" ...><property name="rel">participant</property>, the JSON
    # sample as "_embedded": {"from": {"rel": "participant", ...}}: the attribute is the
    # name it is embedded under, the property its own rel, as in JSON.
    doc = """<resource rel="messagingInvitation" href="/i/1">
      <property name="rel">messagingInvitation</property>
      <resource rel="from" href="/c/1/participants/2">
        <property name="rel">participant</property>
        <property name="name">Joe Smith</property>
      </resource>
    </resource>"""
    assert dx(doc) == {
        "rel": "messagingInvitation",
        "_links": {"self": {"href": "/i/1"}},
        "_embedded": {
            "from": {
                "rel": "participant",
                "name": "Joe Smith",
                "_links": {"self": {"href": "/c/1/participants/2"}},
            }
        },
    }


@pytest.mark.parametrize("sep", ["", "\n  "], ids=["compact", "indented"])
def test_property_rel_of_an_event_resource_is_its_rel(sep: str) -> None:
    # The same in an event (EventsInUCWA.md's JSON sample embeds the localParticipant
    # as "_embedded": {"localParticipant": {"rel": "participant", ...}}); compact event
    # batches take the fast path, indented ones too.
    doc = sep.join(
        [
            f'<?xml version="1.0" encoding="utf-8"?><events href="/e?ack=2" xmlns="{UCWA_NS}">',
            '<link rel="next" href="/e?ack=3" />',
            '<sender rel="conversation" href="/c/1">',
            '<added rel="localParticipant" href="/c/1/participants/me">',
            '<resource rel="localParticipant" href="/c/1/participants/me">',
            '<property name="rel">participant</property>',
            '<property name="name">John Doe</property>',
            "</resource></added></sender></events>",
        ]
    )
    event = dx(doc)["sender"][0]["events"][0]
    assert event["_embedded"] == {
        "localParticipant": {
            "rel": "participant",
            "name": "John Doe",
            "_links": {"self": {"href": "/c/1/participants/me"}},
        }
    }


# messagingInvitation_ref.md, GET: the XML sample (trimmed), its free text set to words that
# read as booleans. In its JSON sample subject, name, operationId and rel are strings and
# anonymous a boolean (JSON true, XML "True").
_INVITATION = (
    '<resource rel="messagingInvitation" href="/ucwa/v1/applications/192/communication/'
    'invitations/602">'
    '<link rel="accept" href="/ucwa/v1/applications/192/communication/invitations/665/accept" />'
    '<property name="rel">messagingInvitation</property>'
    '<property name="direction">Incoming</property>'
    '<property name="operationId">true</property>'
    '<property name="subject">True</property>'
)
_CALLER = (
    '<resource rel="from" href="/ucwa/v1/applications/192/communication/conversations/137/'
    'participants/196">'
    '<property name="rel">participant</property>'
    '<property name="anonymous">True</property>'
    '<property name="name">False</property>'
    "</resource>"
)


def _check_text_like_bools(invitation: dict[str, Any], caller: dict[str, Any]) -> None:
    assert invitation["subject"] == "True"
    assert invitation["operationId"] == "true"
    assert invitation["rel"] == "messagingInvitation"
    assert caller["name"] == "False"
    assert caller["anonymous"] is True
    assert caller["rel"] == "participant"


def test_free_text_that_reads_as_a_boolean_stays_text() -> None:
    # A subject or a display name is whatever a person typed: "True" is text there, as
    # the JSON wire gives it (the client drops a subject that is not a str, and matches no
    # operation whose id would turn into a boolean).
    doc = _INVITATION.replace("<resource ", f'<resource xmlns="{UCWA_NS}" ', 1)
    decoded = dx(doc + _CALLER + "</resource>")
    _check_text_like_bools(decoded, decoded["_embedded"]["from"])


@pytest.mark.parametrize("sep", ["", "\n  "], ids=["compact", "indented"])
def test_free_text_that_reads_as_a_boolean_stays_text_in_events(sep: str) -> None:
    # The same resources in events (a compact batch takes the fast path).
    doc = sep.join(
        [
            f'<?xml version="1.0" encoding="utf-8"?><events href="/e?ack=2" xmlns="{UCWA_NS}">',
            '<sender rel="communication" href="/ucwa/v1/applications/192/communication">',
            '<started rel="messagingInvitation" href="/ucwa/v1/applications/192/'
            'communication/invitations/602">',
            _INVITATION + "</resource>",
            "</started>",
            '<added rel="participant" href="/ucwa/v1/applications/192/communication/'
            'conversations/137/participants/196">',
            _CALLER.replace('rel="from"', 'rel="participant"', 1),
            "</added></sender></events>",
        ]
    )
    events = dx(doc)["sender"][0]["events"]
    _check_text_like_bools(
        events[0]["_embedded"]["messagingInvitation"], events[1]["_embedded"]["participant"]
    )


def test_property_lists() -> None:
    doc = """<resource rel="x">
      <propertyList name="one"><item>Messaging</item></propertyList>
      <propertyList name="many"><item>A</item><item>B</item><item></item></propertyList>
      <propertyList name="none"/>
      <propertyList name="bags">
        <item><property name="type">Work</property><property name="number">tel:1</property></item>
        <item><property name="type">Home</property></item>
      </propertyList>
      <propertyList name="odd"><junk>x</junk><item>ok</item></propertyList>
    </resource>"""
    assert dx(doc) == {
        "rel": "x",
        "one": ["Messaging"],
        "many": ["A", "B", ""],
        "none": [],
        "bags": [{"type": "Work", "number": "tel:1"}, {"type": "Home"}],
        "odd": ["ok"],
    }


def test_links_one_many_and_extra_attributes() -> None:
    doc = """<resource rel="conversationLogs" href="/logs">
      <link rel="conversationLog" href="/logs/1"/>
      <link rel="single" href="/s" title="Photo"/>
      <link rel="conversationLog" href="/logs/2"/>
      <link rel="conversationLog" href="/logs/3"/>
      <link rel="self" href="/logs"/>
    </resource>"""
    assert dx(doc) == {
        "rel": "conversationLogs",
        "_links": {
            "self": {"href": "/logs"},
            "conversationLog": [{"href": "/logs/1"}, {"href": "/logs/2"}, {"href": "/logs/3"}],
            "single": {"href": "/s", "title": "Photo"},
        },
    }


def test_embedded_one_and_many_and_nested() -> None:
    doc = """<resource rel="a" href="/a">
      <resource rel="b" href="/b"><resource rel="c" href="/c"/></resource>
      <resource rel="r" href="/r1"/>
      <resource rel="r" href="/r2"/>
    </resource>"""
    assert dx(doc) == {
        "rel": "a",
        "_links": {"self": {"href": "/a"}},
        "_embedded": {
            "b": {
                "rel": "b",
                "_links": {"self": {"href": "/b"}},
                "_embedded": {"c": {"rel": "c", "_links": {"self": {"href": "/c"}}}},
            },
            "r": [
                {"rel": "r", "_links": {"self": {"href": "/r1"}}},
                {"rel": "r", "_links": {"self": {"href": "/r2"}}},
            ],
        },
    }


def test_unknown_elements_are_skipped_with_their_subtree() -> None:
    doc = """<resource rel="a"><!-- a comment --><?pi data?>
      <unknown><property name="hidden">x</property></unknown>
      <property name="p">text<b>bold</b>tail</property>
      <![CDATA[ loose text ]]>
    </resource>"""
    assert dx(doc) == {"rel": "a", "p": "textboldtail"}


def test_input_documents_decode_like_resources() -> None:
    doc = f"""<?xml version="1.0" encoding="utf-8"?><input xmlns="{UCWA_NS}">
      <property name="operationId">op-1</property>
      <propertyList name="supportedModalities"><item>Messaging</item></propertyList>
      <link rel="message" href="data:text/plain;base64,SGk="/>
    </input>"""
    assert dx(doc) == {
        "operationId": "op-1",
        "supportedModalities": ["Messaging"],
        "_links": {"message": {"href": "data:text/plain;base64,SGk="}},
    }


def test_utf16_document() -> None:
    doc = (
        '<?xml version="1.0" encoding="utf-16"?>'
        '<resource rel="a"><property name="s">Grüße ☃</property></resource>'
    )
    assert dx(doc.encode("utf-16")) == {"rel": "a", "s": "Grüße ☃"}


# ---------------------------------------------------------------- events


def test_event_children_and_attributes() -> None:
    doc = """<events href="/e?ack=1">
      <link rel="next" href="/e?ack=2"/>
      <link rel="next" href="/e?ack=3"/>
      <junk/>
      <sender rel="communication" href="/c">
        <added rel="conversation" href="/c/1">
          <link rel="in" href="/c"/>
          <link rel="related" href="/r"/>
          <link rel="related" href="/r2"/>
          <link href="/no-rel"/>
          <mystery/>
        </added>
        <completed rel="messagingInvitation" href="/i/1" status="Failure"
                   code="RemoteFailure" subcode="Declined" message="No.">
          <status>Failure</status>
        </completed>
        <completed rel="phoneAudioInvitation" href="/i/2" code="RemoteFailure">
          <reason subcode="Declined"><message>Callee said no</message><debugInfo/>
            <link rel="help" href="/help"/></reason>
        </completed>
        <brandNewEvent rel="thing" href="/t"/>
        <started/>
      </sender>
    </events>"""
    assert dx(doc) == {
        "_links": {
            "self": {"href": "/e?ack=1"},
            "next": [{"href": "/e?ack=2"}, {"href": "/e?ack=3"}],
        },
        "sender": [
            {
                "rel": "communication",
                "href": "/c",
                "events": [
                    {
                        "type": "added",
                        "link": {"rel": "conversation", "href": "/c/1"},
                        "in": {"href": "/c"},
                        "_links": {"related": [{"href": "/r"}, {"href": "/r2"}]},
                    },
                    {
                        "type": "completed",
                        "link": {"rel": "messagingInvitation", "href": "/i/1"},
                        "status": "Failure",
                        "reason": {
                            "code": "RemoteFailure",
                            "subcode": "Declined",
                            "message": "No.",
                        },
                    },
                    {
                        "type": "completed",
                        "link": {"rel": "phoneAudioInvitation", "href": "/i/2"},
                        "reason": {
                            "code": "RemoteFailure",
                            "subcode": "Declined",
                            "message": "Callee said no",
                            "link": {"rel": "help", "href": "/help"},
                        },
                    },
                    {"type": "brandNewEvent", "link": {"rel": "thing", "href": "/t"}},
                    {"type": "started"},
                ],
            }
        ],
    }


def test_event_order_is_document_order() -> None:
    # The reason this decoder is not xmltodict: same-named siblings must not be grouped.
    doc = """<events href="/e"><sender rel="s" href="/s">
      <started rel="x" href="/1"/><updated rel="x" href="/2"/><started rel="x" href="/3"/>
      <completed rel="x" href="/4"/></sender><sender rel="t" href="/t"><added rel="y" href="/5"/>
      </sender><sender rel="s" href="/s"><deleted rel="x" href="/6"/></sender></events>"""
    decoded = dx(doc)
    flat = [(e["type"], e["link"]["href"]) for s in decoded["sender"] for e in s["events"]]
    assert flat == [
        ("started", "/1"),
        ("updated", "/2"),
        ("started", "/3"),
        ("completed", "/4"),
        ("added", "/5"),
        ("deleted", "/6"),
    ]


def test_empty_batch_and_special_links() -> None:
    assert dx('<events href="/e?ack=4"><link rel="next" href="/e?ack=5"/></events>') == {
        "_links": {"self": {"href": "/e?ack=4"}, "next": {"href": "/e?ack=5"}}
    }
    assert dx('<events><link rel="resync" href="/e?ack=1"/></events>') == {
        "_links": {"resync": {"href": "/e?ack=1"}}
    }
    assert dx('<events href="/e"><link rel="resume" href="/e?ack=9"/></events>')["_links"][
        "resume"
    ] == {"href": "/e?ack=9"}


def test_event_embedded_resources() -> None:
    doc = """<events href="/e"><sender rel="c" href="/c"><updated rel="c" href="/c">
      <resource rel="c" href="/c"><property name="etag">1</property></resource>
      <resource rel="c" href="/c2"/>
    </updated></sender></events>"""
    event = dx(doc)["sender"][0]["events"][0]
    assert event["_embedded"] == {
        "c": [
            {"rel": "c", "etag": "1", "_links": {"self": {"href": "/c"}}},
            {"rel": "c", "_links": {"self": {"href": "/c2"}}},
        ]
    }


# ---------------------------------------------------------------- error bodies


def test_error_body_shapes() -> None:
    doc = """<reason xmlns:xsd="http://www.w3.org/2001/XMLSchema"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xmlns="https://schemas.microsoft.com/rtc/2012/03/ucwa">
      <code>BadRequest</code>
      <subcode>  ParameterValidationFailure  </subcode>
      <message></message>
      <debugInfo><diagnostics>d1</diagnostics><nested><deep>v</deep></nested></debugInfo>
      <parameters><property name="phoneNumber">not a number</property>
        <propertyList name="fields"><item>a</item></propertyList></parameters>
      <link rel="help" href="/h"/>
    </reason>"""
    assert dx(doc) == {
        "code": "BadRequest",
        "subcode": "ParameterValidationFailure",
        "debugInfo": {"diagnostics": "d1", "nested": {"deep": "v"}},
        "parameters": {"phoneNumber": "not a number", "fields": ["a"]},
        "link": {"rel": "help", "href": "/h"},
    }


def test_error_body_with_attributes() -> None:
    assert dx('<reason code="Gone" subcode="CannotRedirect"/>') == {
        "code": "Gone",
        "subcode": "CannotRedirect",
    }


# ---------------------------------------------------------------- refusals


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<resource rel="x"><property name="p">&lol4;</property></resource>"""

EXTERNAL_FILE = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<resource rel="x"><property name="p">&xxe;</property></resource>"""

EXTERNAL_HTTP = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/evil.dtd">]>
<resource rel="x"><property name="p">&xxe;</property></resource>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE resource SYSTEM "http://127.0.0.1:9/evil.dtd">
<resource rel="x"/>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<resource rel="x"/>"""

PLAIN_DOCTYPE = '<?xml version="1.0"?><!DOCTYPE resource><resource rel="x"/>'


@pytest.mark.parametrize(
    "doc",
    [BILLION_LAUGHS, EXTERNAL_FILE, EXTERNAL_HTTP, EXTERNAL_DTD, PARAMETER_ENTITY, PLAIN_DOCTYPE],
    ids=["billion-laughs", "external-file", "external-http", "external-dtd", "param", "doctype"],
)
def test_dtds_and_entities_are_refused(doc: str) -> None:
    with pytest.raises(DecodeError, match="refused") as info:
        dx(doc)
    assert info.value.content_type == XML


def test_undeclared_entity_is_malformed() -> None:
    with pytest.raises(DecodeError):
        dx('<resource rel="x"><property name="p">&nope;</property></resource>')


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = "<resource rel='x'>" + "<a>" * 100_000 + "</a>" * 100_000 + "</resource>"
    with pytest.raises(DecodeError, match="deeper"):
        dx(deep)
    nested = "<resource rel='r'>" * (MAX_XML_DEPTH + 1) + "</resource>" * (MAX_XML_DEPTH + 1)
    with pytest.raises(DecodeError, match="deeper"):
        dx(nested)
    ok = "<resource rel='r'>" * MAX_XML_DEPTH + "</resource>" * MAX_XML_DEPTH
    assert dx(ok)["rel"] == "r"


def test_too_large_xml() -> None:
    doc = b"<resource rel='x'/>"
    with pytest.raises(BodyTooLargeError):
        decode(doc, XML, max_size=len(doc) - 1)


@pytest.mark.parametrize(
    "doc",
    [
        "<resource",
        "<resource rel='x'></resourc>",
        "<resource/><resource/>",
        "<?xml version='1.0'?>",
        "not xml at all",
        "<html><body>Access is denied</body></html>",
        "<input><property>no name</property></input>",
        "<resource><propertyList>no name</propertyList></resource>",
        "<resource><link href='/no-rel'/></resource>",
        "<resource><resource href='/no-rel'/></resource>",
        "<events><link href='/no-rel'/></events>",
        "<reason><debugInfo><property>no name</property></debugInfo></reason>",
        "<?xml version='1.0' encoding='no-such-encoding'?><resource/>",
        b"\xff\xfe<\x00r\x00",
        b"<resource rel='\xff'/>",
    ],
)
def test_malformed_xml_is_one_typed_error(doc: str | bytes) -> None:
    with pytest.raises(DecodeError) as info:
        dx(doc)
    assert type(info.value) is DecodeError


# ---------------------------------------------------------------- encoder


def test_encode_xml_shape_and_roundtrip() -> None:
    data = {
        "operationId": "op-1",
        "flag": True,
        "off": False,
        "count": 3,
        "ratio": 1.5,
        "skipped": None,
        "supportedModalities": ["Messaging", "PhoneAudio"],
        "empty": [],
        "_links": {"message": {"href": "data:text/plain;base64,SGk="}},
    }
    body, ctype = encode_input(data, "xml")
    assert ctype == XML
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?><input xmlns="')
    assert b'<property name="flag">True</property>' in body
    assert b'<property name="off">False</property>' in body
    assert b"skipped" not in body
    assert dx(body) == {
        "operationId": "op-1",
        "flag": True,
        "off": False,
        "count": "3",  # XML is text; only known integer properties come back as int
        "ratio": "1.5",
        "supportedModalities": ["Messaging", "PhoneAudio"],
        "empty": [],
        "_links": {"message": {"href": "data:text/plain;base64,SGk="}},
    }


def test_encode_xml_escapes() -> None:
    nasty = "a <b> & \"c\" 'd' ]]> \r\n\ttab"
    body, ctype = encode_input(
        {"subject": nasty, "to": [nasty], 'we"ird<name': "v", "_links": {"m": {"href": nasty}}},
        "xml",
    )
    assert decode(body, ctype) == {
        "subject": nasty,
        "to": [nasty],
        'we"ird<name': "v",
        "_links": {"m": {"href": nasty}},
    }


def test_encode_xml_several_links_with_one_rel() -> None:
    body, ctype = encode_input({"_links": {"to": [{"href": "/a"}, {"href": "/b"}]}}, "xml")
    assert decode(body, ctype) == {"_links": {"to": [{"href": "/a"}, {"href": "/b"}]}}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"x": {"nested": 1}}, TypeError),
        ({"x": [{"nested": 1}]}, TypeError),
        ({"_links": ["not", "a", "mapping"]}, TypeError),
        ({"_links": {"m": "not-a-link"}}, TypeError),
        ({"_links": {"m": {"no": "href"}}}, TypeError),
        ({"_links": {"m": {"href": 5}}}, TypeError),
        ({"x": "bell \x07"}, ValueError),
        ({"x": "half \ud800"}, ValueError),
        ({"x": "not a char \uffff"}, ValueError),
    ],
)
def test_encode_xml_refuses_what_xml_cannot_carry(data: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        encode_input(data, "xml")


# ---------------------------------------------------------------- one malformed event


def _batch_with(middle: str) -> str:
    event = '<{t} rel="messagingInvitation" href="/inv/{n}"><resource rel="messagingInvitation" href="/inv/{n}"><property name="operationId">op{n}</property>{extra}</resource></{t}>'  # noqa: E501
    events = "".join(
        event.format(t="started", n=n, extra=middle if n == 2 else "") for n in (1, 2, 3)
    )
    return (
        f'<events xmlns="{UCWA_NS}" href="/ev?ack=1"><link rel="next" href="/ev?ack=2"/>'
        f'<sender rel="communication" href="/comm">{events}</sender></events>'
    )


@pytest.mark.parametrize(
    ("middle", "why"),
    [
        ("<property>no name</property>", "<property> without a name"),
        ("<propertyList><item>x</item></propertyList>", "<propertyList> without a name"),
        ('<link href="/no-rel"/>', "<link> without a rel"),
        ('<resource href="/no-rel"><property name="a">b</property></resource>', "without a rel"),
    ],
)
def test_a_malformed_element_rejects_its_event_not_the_batch(middle: str, why: str) -> None:
    # A JSON batch skips a malformed event and is acknowledged; an XML batch refused whole
    # would be fetched again forever (the server re-sends an unacknowledged batch).
    from ucwa_async._core.models import parse_event_batch

    batch = parse_event_batch(dx(_batch_with(middle)))
    assert [e.operation_id for e in batch.events] == ["op1", "op3"]
    assert batch.next_href == "/ev?ack=2"
    assert batch.rejected_count == 1
    assert batch.rejected[0].startswith("malformed XML event: ")
    assert why in batch.rejected[0]


def test_two_malformed_elements_of_one_event_reject_it_once() -> None:
    from ucwa_async._core.models import parse_event_batch

    batch = parse_event_batch(dx(_batch_with('<property>a</property><link href="/x"/>')))
    assert [e.operation_id for e in batch.events] == ["op1", "op3"]
    assert batch.rejected == ("malformed XML event: <property> without a name",)


def test_a_batch_of_one_malformed_event_is_read_as_in_json() -> None:
    # A malformed JSON event object counts as a delivered event for the channel (no
    # pacing, the application's channel proven): an XML one rejected so counts alike.
    import json

    from ucwa_async._core.models import read_event_batch
    from ucwa_async._core.wire import complete, decode_steps

    only = (
        f'<events xmlns="{UCWA_NS}" href="/ev?ack=1"><link rel="next" href="/ev?ack=2"/>'
        '<sender rel="communication" href="/comm"><started rel="messagingInvitation" '
        'href="/inv/1"><resource rel="messagingInvitation" href="/inv/1">'
        "<property>no name</property></resource></started></sender></events>"
    )
    as_xml = read_event_batch(dx(only))
    event = {"type": "started", "link": {"rel": "messagingInvitation", "href": "/inv/1"}}
    event["_embedded"] = {"messagingInvitation": {"_links": 5}}
    body = {"_links": {"next": {"href": "/ev?ack=2"}}, "sender": [{"events": [event]}]}
    for lazy in (True, False):
        decoded = complete(
            decode_steps(json.dumps(body).encode(), "application/json", lazy_events=lazy)
        )
        as_json = read_event_batch(decoded)
        assert as_json.may_hold_events
        assert as_xml.may_hold_events == as_json.may_hold_events
    assert as_xml.read_all().rejected_count == 1
    assert not as_xml.may_hold_events  # taken
