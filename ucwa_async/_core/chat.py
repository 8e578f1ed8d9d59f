"""Conversation values: participants, messages, incoming invitations (sans-IO).

Built from the reference samples (ReceiveAnIM.md, SendAnIM.md, message_ref.md,
participant_ref.md, messagingInvitation_ref.md): a message carries its body as a
``plainMessage`` or ``htmlMessage`` link whose href is a ``data:`` URI (or, as the
Properties tables list them, a property of that name); its sender is
its ``participant`` link; its time is ``timeStamp`` (``/Date(ms)/`` in JSON samples,
ISO 8601 in XML samples). An incoming invitation embeds its caller as ``from`` and its
first message as a ``message`` link.
"""

from __future__ import annotations

import datetime
import re
from typing import Literal

import attrs

from ucwa_async._core.dates import parse_time_stamp
from ucwa_async._core.errors import DecodeError
from ucwa_async._core.models import Link, Resource
from ucwa_async._core.wire import parse_data_uri

__all__ = [
    "IncomingInvitationView",
    "Message",
    "Participant",
    "invitation_view",
    "link_of",
    "message_from",
    "message_text",
    "parse_time_stamp",
    "participant_from",
]

INVITATION_KINDS: dict[str, Literal["messaging", "phoneAudio"]] = {
    "messagingInvitation": "messaging",
    "phoneAudioInvitation": "phoneAudio",
}
# A data: URI up to its comma (RFC 2397: media type and parameters, no white space).
_DATA_URI_HEAD = re.compile(r"data:[^\s,]*,", re.IGNORECASE).match


@attrs.frozen
class Participant:
    """Someone in a conversation: ``uri`` (``sip:...``), display ``name``, and the
    participant resource's ``href``; each is None when not known. A message's sender
    named only by a link (its participant not announced by the server) has its ``href``
    and neither ``uri`` nor ``name``."""

    uri: str | None = None
    name: str | None = None
    href: str | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Message:
    """An instant message of a conversation.

    ``text`` is the plain body (or the HTML body when only that was sent), ``html`` the
    HTML body or None; ``direction`` is ``"Incoming"`` or ``"Outgoing"``; ``time`` is the
    server's time stamp (UTC) or None.
    """

    text: str
    html: str | None = None
    sender: Participant | None = None
    time: datetime.datetime | None = None
    href: str | None = None
    direction: str | None = None


@attrs.frozen
class IncomingInvitationView:
    """What an incoming ``started`` invitation event says (sans-IO part of
    ``IncomingInvitation``)."""

    kind: Literal["messaging", "phoneAudio"]
    href: str
    sender: Participant
    subject: str | None
    message: str | None
    conversation_href: str | None
    accept_href: str | None
    decline_href: str | None


def message_text(uri: str) -> str:
    """The text of a ``data:`` URI message body.

    Charset honoured, base64 or percent-encoded. In a percent-encoded body ``+`` stands
    for a space: the reference's own sample is ``data:text/plain;charset=utf-8,Hi+Tosh%0d%0a``
    ("Hi Tosh"); a literal plus is sent as ``%2B``.
    """
    header = uri.partition(",")[0].lower()
    if "base64" not in header.split(";"):
        head, sep, payload = uri.partition(",")
        uri = head + sep + payload.replace("+", "%20")
    return parse_data_uri(uri)[1]


def link_of(resource: Resource, rel: str) -> Link | None:
    """The first link of ``resource`` with this rel (its title too), or None."""
    for link in resource.links:
        if link.rel == rel:
            return link
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def participant_from(resource: Resource) -> Participant:
    """A participant (or contact) resource as a :class:`Participant`."""
    props = resource.properties
    return Participant(uri=_str(props.get("uri")), name=_str(props.get("name")), href=resource.href)


def _body(resource: Resource, rel: str) -> str | None:
    """A body from the ``rel`` link (the samples' form) or, without one, from the property
    of that name (the Properties tables of message_ref.md and messagingInvitation_ref.md
    list ``plainMessage``, ``htmlMessage`` and ``message``): its text, or a ``data:`` URI."""
    href = resource.link(rel)
    if href is None:
        value = resource.properties.get(rel)
        if not isinstance(value, str) or not value:  # "If populated"
            return None
        if _DATA_URI_HEAD(value) is None:
            return value  # the text itself, even one a person began with "data:"
        href = value
    try:
        return message_text(href)
    except DecodeError:
        return None


def message_from(resource: Resource, sender: Participant | None = None) -> Message | None:
    """A message resource as a :class:`Message`; None if it carries no readable body."""
    plain = _body(resource, "plainMessage")
    html = _body(resource, "htmlMessage")
    text = plain if plain is not None else html
    if text is None:
        return None
    if sender is None:
        participant = link_of(resource, "participant")
        if participant is not None:
            # The link's title is the participant's display name (participant_ref).
            sender = Participant(name=participant.title, href=participant.href)
    return Message(
        text=text,
        html=html,
        sender=sender,
        time=parse_time_stamp(resource.properties.get("timeStamp")),
        href=resource.href,
        direction=_str(resource.properties.get("direction")),
    )


def invitation_view(
    resource: Resource, href: str, rel: str | None = None
) -> IncomingInvitationView | None:
    """An incoming invitation resource as a view (``rel``: the event link's, for a
    resource that names none); None if it is not one."""
    kind = INVITATION_KINDS.get(resource.rel or rel or "")
    if kind is None:
        return None
    # JSON embeds the caller under "from", but its own rel ("participant") names it,
    # and XML has only that: the invitation's embedded participant is its caller.
    caller = resource.embedded_one("from") or resource.embedded_one("participant")
    if caller is not None:
        sender = participant_from(caller)
    else:  # only a link (messagingInvitation_ref): its title, if any, names the caller
        link = link_of(resource, "from")
        sender = Participant(name=link.title, href=link.href) if link else Participant()
    subject = _str(resource.properties.get("subject")) or None
    return IncomingInvitationView(
        kind=kind,
        href=href,
        sender=sender,
        subject=subject,
        message=_body(resource, "message"),
        conversation_href=resource.link("conversation"),
        accept_href=resource.link("accept"),
        decline_href=resource.link("decline"),
    )
