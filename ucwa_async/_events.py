"""Session lifecycle signals delivered on ``session.events()`` beside UCWA events.

UCWA's own events (``ucwa_async.Event``) say what happened to resources and
operations; these say what happened to the event channel itself, so a bot can
log, alert or pause when the channel reconnects.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "ApplicationRecreated",
    "ChannelClosed",
    "ChannelConnected",
    "ChannelFailed",
    "ChannelReconnected",
    "ChannelReconnecting",
    "ChannelSignal",
    "ChannelStatus",
    "SessionState",
]


class ChannelStatus(enum.StrEnum):
    """What ``Session.channel_state`` reports (equal to its value: the README writes the
    states as words, ``channel_state == "connected"``)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    """Stopped for good while the session is open (``ChannelFailed`` was signalled;
    ``session.wait_connected()`` raises ``ChannelFailedError``): close the session,
    and open a new one to go on."""
    CLOSED = "closed"


class SessionState(enum.StrEnum):
    """What ``Session.state`` reports: ``new -> opening -> open -> closing -> closed``.

    The only transitions are forward ones: ``open()`` takes a new session to
    ``opening`` and, once signed in, to ``open``; ``aclose()`` (or a failed or
    cancelled ``open()``) takes it through ``closing`` to ``closed``, for good.
    ``aclose()`` on a ``new`` session goes straight to ``closed``.
    """

    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@attrs.frozen
class ChannelConnected:
    """The event channel is up for the first time (or for a new application)."""

    events_url: str


@attrs.frozen
class ChannelReconnecting:
    """The channel is being re-established; ``reason`` says why, ``error`` is the cause."""

    reason: str
    error: BaseException | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class ChannelReconnected:
    """The channel is back after ``attempts`` tries and ``downtime`` seconds."""

    attempts: int
    downtime: float


@attrs.frozen
class ApplicationRecreated:
    """The server lost our application; a new one was created.

    ``lost_invitations`` pending invitations of the old application could not be
    recovered and ended with ``InvitationLostError``.
    """

    application_url: str
    lost_invitations: int


@attrs.frozen
class ChannelFailed:
    """The channel stopped for good; the session can no longer receive events."""

    error: BaseException = attrs.field(eq=False)


@attrs.frozen
class ChannelClosed:
    """The session closed its channel (the last item a stream yields)."""


ChannelSignal = (
    ChannelConnected
    | ChannelReconnecting
    | ChannelReconnected
    | ApplicationRecreated
    | ChannelFailed
    | ChannelClosed
)
