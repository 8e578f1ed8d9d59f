"""Event batches copied from the reference (OfficeDev/skype-docs, Skype/UCWA/), trimmed.

Each constant names its source. Typos of the samples that would only break JSON syntax
(``type":"added"``, ``"self"{``) are fixed; their other quirks are kept on purpose
(``participants/lenea@metio.ms`` in ReceiveAnIM step 9, the completed invitation's
``self`` ``messagingInvitations/64088`` in step 15).
"""

from __future__ import annotations

from typing import Any

APP = "/ucwa/oauth/v1/applications/104"
CONV = f"{APP}/communication/conversations/eee0"
INV = f"{APP}/communication/messagingInvitations/6408"
LENE = f"{CONV}/participants/lenea@contoso.com"
TOSH = f"{CONV}/participants/toshm@contoso.com"


def _lene(with_photo: bool = False) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": {"href": LENE},
        "conversation": {"href": CONV},
        "contact": {"href": f"{APP}/people/lenea@contoso.com"},
        "contactPresence": {"href": f"{APP}/people/lenea@contoso.com/presence"},
    }
    if with_photo:
        links["contactPhoto"] = {"href": f"{APP}/photos/lenea@contoso.com"}
    return {
        "sourceNetwork": "SameEnterprise",
        "anonymous": False,
        "name": "Lene Aaling",
        "uri": "sip:lenea@contoso.com",
        "_links": links,
        "rel": "participant",
    }


def _invitation(state: str, *, answer_links: bool, self_href: str = INV) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": {"href": self_href},
        "to": {"href": f"{APP}/people/toshm@contoso.com"},
        "conversation": {"href": CONV},
    }
    if answer_links:
        links["accept"] = {"href": f"{INV}/accept"}
        links["decline"] = {"href": f"{INV}/decline"}
    links["messaging"] = {"href": f"{CONV}/messaging"}
    links["message"] = {"href": "data:text/plain;charset=utf-8,Hi+Tosh%0d%0a"}
    return {
        "direction": "Incoming",
        "importance": "Normal",
        "threadId": "Ac7bUftwUcVMzgTzRl+OQchCsUn35Q==",
        "state": state,
        "subject": "",
        "_links": links,
        "_embedded": {"from": _lene(with_photo=state != "Connecting" or not answer_links)},
        "rel": "messagingInvitation",
    }


def _conversation(state: str) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": {"href": CONV},
        "messaging": {"href": f"{CONV}/messaging"},
        "phoneAudio": {"href": f"{CONV}/phoneAudio"},
    }
    if state == "Connected":
        links["localParticipant"] = {"href": TOSH, "title": "Tosh Meston"}
    return {
        "state": state,
        "threadId": "Ac7bUftwUcVMzgTzRl+OQchCsUn35Q==",
        "subject": "",
        "activeModalities": ["Messaging"],
        "importance": "Normal",
        "recording": False,
        "_links": links,
        "rel": "conversation",
    }


def _batch(ack: int, *senders: dict[str, Any]) -> dict[str, Any]:
    return {
        "_links": {
            "self": {"href": f"{APP}/events?ack={ack}"},
            "next": {"href": f"{APP}/events?ack={ack + 1}"},
        },
        "sender": list(senders),
    }


def _communication(*events: dict[str, Any]) -> dict[str, Any]:
    return {"rel": "communication", "href": f"{APP}/communication", "events": list(events)}


def _in_conversation(*events: dict[str, Any]) -> dict[str, Any]:
    return {"rel": "conversation", "href": CONV, "events": list(events)}


# ReceiveAnIM.md step 8: the invitation started, the conversation added, our participant.
RECEIVE_STEP_8 = _batch(
    2,
    _communication(
        {
            "link": {"rel": "messagingInvitation", "href": INV},
            "_embedded": {"messagingInvitation": _invitation("Connecting", answer_links=True)},
            "type": "started",
        },
        {
            "link": {"rel": "conversation", "href": CONV},
            "_embedded": {"conversation": _conversation("Incoming")},
            "type": "added",
        },
    ),
    _in_conversation(
        {
            "link": {"rel": "localParticipant", "href": TOSH, "title": "Tosh Meston"},
            "_embedded": {
                "localParticipant": {
                    "name": "Tosh Meston",
                    "uri": "sip:toshm@contoso.com",
                    "_links": {
                        "self": {"href": TOSH},
                        "conversation": {"href": CONV},
                        "me": {"href": f"{APP}/me"},
                    },
                    "rel": "participant",
                }
            },
            "type": "added",
        }
    ),
)

# ReceiveAnIM.md step 9: the remote participant added (link only; the sample's host typo kept).
RECEIVE_STEP_9 = _batch(
    3,
    _in_conversation(
        {
            "link": {
                "rel": "participant",
                "href": f"{CONV}/participants/lenea@metio.ms",
                "title": "Lene Aaling",
            },
            "type": "added",
        }
    ),
)

# ReceiveAnIM.md step 10: the invitation updated (no accept/decline links any more).
RECEIVE_STEP_10 = _batch(
    4,
    _communication(
        {
            "link": {"rel": "messagingInvitation", "href": INV},
            "_embedded": {"messagingInvitation": _invitation("Connecting", answer_links=False)},
            "type": "updated",
        }
    ),
)

# ReceiveAnIM.md step 15 (after the accept): messaging connected, conversation connected,
# participantMessaging added, the invitation completed with Success.
RECEIVE_STEP_15 = _batch(
    5,
    _in_conversation(
        {
            "link": {"rel": "messaging", "href": f"{CONV}/messaging"},
            "_embedded": {
                "messaging": {
                    "state": "Connected",
                    "negotiatedMessageFormats": ["Plain"],
                    "_links": {
                        "self": {"href": f"{CONV}/messaging"},
                        "conversation": {"href": CONV},
                        "stopMessaging": {"href": f"{CONV}/messaging/terminate"},
                        "sendMessage": {"href": f"{CONV}/messaging/messages"},
                        "setIsTyping": {"href": f"{CONV}/messaging/typing"},
                        "typingParticipants": {"href": f"{CONV}/messaging/typingParticipants"},
                    },
                    "rel": "messaging",
                }
            },
            "type": "updated",
        }
    ),
    _communication(
        {
            "link": {"rel": "conversation", "href": CONV},
            "_embedded": {"conversation": _conversation("Connected")},
            "type": "updated",
        }
    ),
    _in_conversation(
        {
            "link": {"rel": "participantMessaging", "href": f"{LENE}/messaging"},
            "in": {"rel": "participant", "href": LENE, "title": "Lene Aaling"},
            "type": "added",
        },
        {"link": {"rel": "participant", "href": LENE, "title": "Lene Aaling"}, "type": "updated"},
    ),
    _communication(
        {
            "link": {"rel": "messagingInvitation", "href": INV},
            "status": "Success",
            "_embedded": {
                "messagingInvitation": _invitation(
                    "Connected",
                    answer_links=False,
                    self_href=f"{APP}/communication/messagingInvitations/64088",
                )
            },
            "type": "completed",
        }
    ),
)

# ReceiveAnIM.md step 16: the first message again, as a message completed event.
RECEIVE_STEP_16 = _batch(
    6,
    _in_conversation(
        {
            "link": {"rel": "message", "href": f"{CONV}/messaging/messages/2"},
            "status": "Success",
            "_embedded": {
                "message": {
                    "direction": "Incoming",
                    "timeStamp": "\\/Date(1383784870271)\\/",
                    "_links": {
                        "self": {"href": f"{CONV}/messaging/messages/2"},
                        "contact": {"href": f"{APP}/people/lenea@contoso.com"},
                        "participant": {"href": LENE, "title": "Lene Aaling"},
                        "messaging": {"href": f"{CONV}/messaging"},
                        "plainMessage": {"href": "data:text/plain;charset=utf-8,Hi+Tosh%0d%0a"},
                    },
                    "rel": "message",
                }
            },
            "type": "completed",
        }
    ),
)


def incoming_message(n: int, text_uri: str, *, direction: str = "Incoming") -> dict[str, Any]:
    """A message completed event shaped like ReceiveAnIM step 16 (message n)."""
    return _batch(
        10 + n,
        _in_conversation(
            {
                "link": {"rel": "message", "href": f"{CONV}/messaging/messages/{n}"},
                "status": "Success",
                "_embedded": {
                    "message": {
                        "direction": direction,
                        "timeStamp": "\\/Date(1383784870271)\\/",
                        "_links": {
                            "self": {"href": f"{CONV}/messaging/messages/{n}"},
                            "participant": {"href": LENE},
                            "plainMessage": {"href": text_uri},
                        },
                        "rel": "message",
                    }
                },
                "type": "completed",
            }
        ),
    )


def link_only(
    rel: str, href: str, kind: str, *, sender_rel: str = "conversation"
) -> dict[str, Any]:
    """A link-only event (participant_ref / message_ref / conversation_ref event samples)."""
    sender_href = CONV if sender_rel == "conversation" else f"{APP}/communication"
    return _batch(
        90,
        {
            "rel": sender_rel,
            "href": sender_href,
            "events": [{"link": {"rel": rel, "href": href}, "type": kind}],
        },
    )


# The same as RECEIVE_STEP_16 in XML (message_ref.md's XML shapes, events_ref's XML batch).
RECEIVE_STEP_16_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<events href="{APP}/events?ack=6" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <link rel="next" href="{APP}/events?ack=7" />
  <sender rel="conversation" href="{CONV}">
    <completed rel="message" href="{CONV}/messaging/messages/3">
      <status>Success</status>
      <resource rel="message" href="{CONV}/messaging/messages/3">
        <link rel="participant" href="{LENE}" />
        <link rel="plainMessage" href="data:text/plain;charset=utf-8,How+are+you%3F" />
        <property name="direction">Incoming</property>
        <property name="timeStamp">2016-09-26T16:20:27.6158253-07:00</property>
      </resource>
    </completed>
  </sender>
</events>""".encode()

RECEIVE_STEP_8_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<events href="{APP}/events?ack=2" xmlns="http://schemas.microsoft.com/rtc/2012/03/ucwa">
  <link rel="next" href="{APP}/events?ack=3" />
  <sender rel="communication" href="{APP}/communication">
    <started rel="messagingInvitation" href="{INV}">
      <resource rel="messagingInvitation" href="{INV}">
        <link rel="conversation" href="{CONV}" />
        <link rel="accept" href="{INV}/accept" />
        <link rel="decline" href="{INV}/decline" />
        <link rel="messaging" href="{CONV}/messaging" />
        <link rel="message" href="data:text/plain;base64,SGkgVG9zaA==" />
        <property name="direction">Incoming</property>
        <property name="state">Connecting</property>
        <property name="subject">Build</property>
        <resource rel="participant" href="{LENE}">
          <property name="name">Lene Aaling</property>
          <property name="uri">sip:lenea@contoso.com</property>
        </resource>
      </resource>
    </started>
  </sender>
</events>""".encode()
