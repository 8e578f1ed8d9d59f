"""Conversations, their invitations and messages: plain state, bounded.

URL layout under ``{app}/communication`` (as the reference samples name them)::

    conversations/{n}                                  conversation (DELETE ends it)
    conversations/{n}/participants[/{user@domain}]     participants, participant
    conversations/{n}/messaging[/messages|/typing|/typingParticipants|/terminate]
    conversations/{n}/messaging/messages/{m}           message
    conversations/{n}/phoneAudio[/terminate]
    messagingInvitations/{n}[/accept|/decline|/cancel]   (POST messagingInvitations: start)
    phoneAudioInvitations/{n}[/accept|/decline|/cancel]  (POST phoneAudioInvitations: start)
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ucwa_async.testing._config import Reason
from ucwa_async.testing._people import Person, person_key

if TYPE_CHECKING:
    from ucwa_async.testing._state import Application

__all__ = ["ConvInvitation", "Conversation", "Message", "Modality"]

Modality = Literal["Messaging", "PhoneAudio"]


@dataclass(slots=True, eq=False)
class Message:
    number: int
    direction: Literal["Incoming", "Outgoing"]
    text: str | None
    html: str | None
    sender: Person | None
    """The remote author of an incoming message (None: the local user)."""
    time_ms: int
    operation_id: str | None = None
    status: Literal["Pending", "Succeeded", "Failed"] = "Pending"
    reason: Reason | None = None


@dataclass(slots=True, eq=False)
class ConvInvitation:
    """An invitation of a conversation created by startMessaging/startPhoneAudio or
    injected as incoming (continue invitations are :class:`_state.Invitation`)."""

    number: int
    path: str
    rel: Literal["messagingInvitation", "phoneAudioInvitation"]
    direction: Literal["Incoming", "Outgoing"]
    conversation: Conversation
    operation_id: str | None = None
    text: str | None = None
    html: str | None = None
    phone_number: str | None = None
    state: str = "Connecting"
    reason: Reason | None = None


@dataclass(slots=True, eq=False)
class Conversation:
    id: str
    app: Application
    person: Person
    """The remote participant (peer-to-peer)."""
    modality: Modality
    subject: str
    thread_id: str
    importance: str = "Normal"
    state: str = "Connecting"
    """Incoming, Connecting, Connected or Disconnected."""
    modality_state: str = "Connecting"
    remote_present: bool = False
    deleted: bool = False
    """Ended (conversation deleted event sent): its resources answer 404."""
    invitation: ConvInvitation | None = None
    reply_first_message: bool = False
    """Answer the invitation's message as a client message (startMessaging only)."""
    messages: OrderedDict[int, Message] = field(default_factory=OrderedDict)
    next_message: int = 1
    client_texts: deque[str] = field(default_factory=deque)
    client_count: int = 0
    last_due: float = 0.0
    timers: set[asyncio.TimerHandle] = field(default_factory=set)

    @property
    def path(self) -> str:
        return f"{self.app.path}/communication/conversations/{self.id}"

    @property
    def messaging_path(self) -> str:
        return self.path + "/messaging"

    @property
    def modality_path(self) -> str:
        return self.path + ("/messaging" if self.modality == "Messaging" else "/phoneAudio")

    @property
    def modality_rel(self) -> str:
        return "messaging" if self.modality == "Messaging" else "phoneAudio"

    def participant_path(self, uri: str) -> str:
        return f"{self.path}/participants/{person_key(uri)}"

    @property
    def local_path(self) -> str:
        return self.participant_path(self.app.user)

    @property
    def remote_path(self) -> str:
        return self.participant_path(self.person.uri)

    def add_message(self, message: Message, limit: int) -> None:
        self.messages[message.number] = message
        while len(self.messages) > limit:
            self.messages.popitem(last=False)

    def new_message_number(self) -> int:
        number = self.next_message
        self.next_message += 1
        return number

    def record_client_text(self, text: str, limit: int) -> None:
        self.client_texts.append(text)
        while len(self.client_texts) > limit:
            self.client_texts.popleft()

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()
