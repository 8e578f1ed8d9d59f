"""Resources of conversations as the reference samples show them (link rels and
property names from conversation_ref, participant_ref, messaging_ref, message_ref,
phoneAudio_ref, messagingInvitation_ref, phoneAudioInvitation_ref, ReceiveAnIM and
SendAnIM; ``tests/simulator/test_conformance.py`` holds them to it).

Every builder takes ``h``, which writes a server path in the wanted href style.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from urllib.parse import quote_plus

from ucwa_async.testing._conv_model import Conversation, ConvInvitation, Message
from ucwa_async.testing._people import Person, person_key
from ucwa_async.testing._render import Res

__all__ = [
    "Href",
    "conversation_res",
    "html_data_uri",
    "invitation_res",
    "local_participant_res",
    "message_res",
    "modality_res",
    "participant_res",
    "plain_data_uri",
]

Href = Callable[[str], str]
_LIVE = ("Connecting", "Connected")


def plain_data_uri(text: str) -> str:
    """Percent-encoded, as ReceiveAnIM shows (``data:text/plain;charset=utf-8,Hi+Tosh%0d%0a``)."""
    return "data:text/plain;charset=utf-8," + quote_plus(text, safe="")


def html_data_uri(html: str) -> str:
    """Base64, as message_ref shows (``data:text/html;base64,...``)."""
    return "data:text/html;charset=utf-8;base64," + base64.b64encode(html.encode()).decode()


def _display_name(user: str) -> str:
    return user.split("@", 1)[0].title()


def conversation_res(conv: Conversation, h: Href) -> Res:
    path = conv.path
    links = [
        ("messaging", h(path + "/messaging")),
        ("phoneAudio", h(path + "/phoneAudio")),
    ]
    if conv.state not in ("Incoming", "Connecting"):
        links += [
            ("participants", h(path + "/participants")),
            ("localParticipant", h(conv.local_path)),
        ]
    modalities = [conv.modality] if conv.state in ("Incoming", "Connected") else []
    return Res(
        "conversation",
        h(path),
        links,
        {
            "state": conv.state,
            "threadId": conv.thread_id,
            "subject": conv.subject,
            "activeModalities": modalities,
            "importance": conv.importance,
            "recording": False,
        },
    )


def participant_res(conv: Conversation, person: Person, h: Href, key: str | None = None) -> Res:
    key_ = person_key(person.uri)
    contact = f"{conv.app.path}/people/{key_}"
    return Res(
        "participant",
        h(conv.participant_path(person.uri)),
        [
            ("conversation", h(conv.path)),
            ("contact", h(contact)),
            # As ReceiveAnIM shows them; the simulator does not serve presence or photos.
            ("contactPresence", h(contact + "/presence")),
            ("contactPhoto", h(f"{conv.app.path}/photos/{key_}")),
        ],
        {
            "sourceNetwork": "SameEnterprise",
            "anonymous": False,
            "name": person.name,
            "uri": person.uri,
        },
        key=key,
    )


def local_participant_res(conv: Conversation, h: Href, key: str | None = None) -> Res:
    user = conv.app.user
    return Res(
        "participant",
        h(conv.local_path),
        [("conversation", h(conv.path)), ("me", h(conv.app.path + "/me"))],
        {
            "sourceNetwork": "SameEnterprise",
            "anonymous": False,
            "name": _display_name(user),
            "uri": f"sip:{user}",
        },
        key=key,
    )


def modality_res(conv: Conversation, h: Href) -> Res:
    """The conversation's ``messaging`` or ``phoneAudio`` resource."""
    path = conv.modality_path
    state = conv.modality_state
    links = [("conversation", h(conv.path))]
    props: dict[str, object] = {"state": state}
    if conv.modality == "Messaging":
        if state in _LIVE:
            links.append(("stopMessaging", h(path + "/terminate")))
        if state == "Connected":
            links += [
                ("sendMessage", h(path + "/messages")),
                ("setIsTyping", h(path + "/typing")),
                ("typingParticipants", h(path + "/typingParticipants")),
            ]
            props["negotiatedMessageFormats"] = ["Plain", "Html"]
    elif state in _LIVE:
        links.append(("stopPhoneAudio", h(path + "/terminate")))
    return Res(conv.modality_rel, h(path), links, props)


def idle_modality_res(conv: Conversation, rel: str, h: Href) -> Res:
    """The modality a conversation does not use (always Disconnected)."""
    return Res(
        rel, h(f"{conv.path}/{rel}"), [("conversation", h(conv.path))], {"state": "Disconnected"}
    )


def message_res(conv: Conversation, msg: Message, h: Href, operation_id: bool) -> Res:
    path = f"{conv.messaging_path}/messages/{msg.number}"
    links = [("messaging", h(conv.messaging_path))]
    props: dict[str, object] = {
        "direction": msg.direction,
        # message_ref: the delivery Status (Pending, Succeeded, Failed); the flow samples
        # leave it out, the ref GET has it.
        "status": msg.status,
        # A datetime: the renderer writes each wire's form (PayloadFormat.md: JSON's
        # /Date(ms)/, XML's ISO 8601, as message_ref's XML sample shows).
        "timeStamp": datetime.datetime.fromtimestamp(msg.time_ms / 1000, datetime.UTC),
    }
    if msg.sender is not None:
        links += [
            ("contact", h(f"{conv.app.path}/people/{person_key(msg.sender.uri)}")),
            ("participant", h(conv.participant_path(msg.sender.uri))),
        ]
        if msg.text is not None:
            links.append(("plainMessage", plain_data_uri(msg.text)))
        if msg.html is not None:
            links.append(("htmlMessage", html_data_uri(msg.html)))
    else:
        if operation_id and msg.operation_id is not None:
            props["operationId"] = msg.operation_id
        if msg.status == "Failed":
            links.append(("failedDeliveryParticipant", h(conv.remote_path)))
    return Res("message", h(path), links, props)


def invitation_res(inv: ConvInvitation, h: Href) -> Res:
    conv = inv.conversation
    app_path = conv.app.path
    person_href = h(f"{app_path}/people/{person_key(conv.person.uri)}")
    me_href = h(f"{app_path}/people/{person_key(conv.app.user)}")
    connecting = inv.state == "Connecting"
    links: list[tuple[str, str]] = []
    embedded: list[Res] = []
    props: dict[str, object] = {
        "direction": inv.direction,
        "importance": conv.importance,
        "threadId": conv.thread_id,
        "state": inv.state,
        "subject": conv.subject,
    }
    if inv.direction == "Incoming":
        links.append(("to", me_href))
        links.append(("conversation", h(conv.path)))
        if connecting:
            links += [("accept", h(inv.path + "/accept")), ("decline", h(inv.path + "/decline"))]
        embedded.append(participant_res(conv, conv.person, h, key="from"))
    else:
        props["operationId"] = inv.operation_id
        props["to"] = conv.person.uri
        links.append(("from", h(conv.local_path)))
        links.append(("to", person_href))
        if connecting:
            links.append(("cancel", h(inv.path + "/cancel")))
        links.append(("conversation", h(conv.path)))
        if inv.state == "Connected":
            embedded.append(participant_res(conv, conv.person, h, key="acceptedByParticipant"))
    links.append((conv.modality_rel, h(conv.modality_path)))
    if inv.text is not None:
        links.append(("message", plain_data_uri(inv.text)))
    if inv.phone_number is not None:
        props["phoneNumber"] = inv.phone_number
    return Res(inv.rel, h(inv.path), links, props, embedded)
