"""The simulator's directory: remote people and how each behaves in a conversation.

A :class:`Person` is the remote side of a conversation: the ``to`` of a
startMessaging/startPhoneAudio, the recipient of a conversation log, or the sender
of an IM injected with ``sim.incoming_message``. Its :class:`Behaviour` decides
whether it accepts an invitation and what it answers to the client's messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from ucwa_async.testing._config import Reason

__all__ = ["DEFAULT_PEOPLE", "Behaviour", "Person", "person_key"]

BehaviourKind = Literal["echo", "scripted", "decline", "never_answer", "silent"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a remote person acts. Build one with the class methods."""

    kind: BehaviourKind = "echo"
    delay: float = 0.0
    """Seconds between the event that calls for an answer and the answer."""
    replies: tuple[str, ...] = ()
    reason: Reason | None = None
    leave_after_messages: int | None = None
    """After this many client messages (answered first) the person leaves."""

    @classmethod
    def echo(cls, delay: float = 0.0) -> Behaviour:
        """Accepts invitations; answers each message with ``"echo: <text>"``."""
        return cls("echo", _delay(delay))

    @classmethod
    def scripted(cls, replies: Sequence[str], delay: float = 0.0) -> Behaviour:
        """Accepts; answers the n-th client message with ``replies[n-1]``, then is silent."""
        return cls("scripted", _delay(delay), tuple(replies))

    @classmethod
    def decline(
        cls,
        code: str = "RemoteFailure",
        subcode: str | None = "Declined",
        message: str | None = "The remote party declined the invitation.",
    ) -> Behaviour:
        """Declines invitations: they complete with Failure and this reason."""
        return cls("decline", reason=Reason(code, subcode, message))

    @classmethod
    def never_answer(cls) -> Behaviour:
        """Invitations stay Connecting until cancelled (or the application goes)."""
        return cls("never_answer")

    @classmethod
    def silent(cls) -> Behaviour:
        """Accepts, never replies."""
        return cls("silent")

    @classmethod
    def leave_after(cls, n: int, then: Behaviour | None = None) -> Behaviour:
        """Behaves as ``then`` (echo by default); after the n-th client message
        (answered per ``then``) the person leaves and the conversation ends."""
        if n < 1:
            raise ValueError("leave_after needs n >= 1")
        return replace(then or cls.echo(), leave_after_messages=n)

    @property
    def accepts(self) -> bool:
        return self.kind in ("echo", "scripted", "silent")

    def reply_to(self, text: str, count: int) -> str | None:
        """The answer to the ``count``-th (1-based) client message, or None."""
        if self.kind == "echo":
            return f"echo: {text}"
        if self.kind == "scripted" and count <= len(self.replies):
            return self.replies[count - 1]
        return None


def _delay(delay: float) -> float:
    if not delay >= 0:
        raise ValueError("delay must be >= 0")
    return delay


@dataclass(frozen=True, slots=True)
class Person:
    """Someone in the simulator's directory."""

    uri: str
    """``sip:user@domain``."""
    name: str = ""
    behaviour: Behaviour = field(default_factory=Behaviour.echo)

    def __post_init__(self) -> None:
        if not self.uri.lower().startswith("sip:") or "@" not in self.uri:
            raise ValueError(f"a person's uri is sip:user@domain, not {self.uri!r}")


def person_key(uri: str) -> str:
    """The directory key of a uri: case-insensitive, ``sip:`` optional."""
    lowered = uri.strip().lower()
    return lowered[4:] if lowered.startswith("sip:") else lowered


DEFAULT_PEOPLE: tuple[Person, ...] = (
    Person("sip:lenea@contoso.com", "Lene Aaling"),
    # The recipients of the simulated conversation logs (_state._PEOPLE).
    Person("sip:bob@contoso.com", "Bob Kelly"),
    Person("sip:carol@contoso.com", "Carol Diaz"),
    Person("sip:dan@contoso.com", "Dan Park"),
)
