"""What the simulator lets a test observe: the request log and the counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Counters", "RequestRecord"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the simulator saw it. Never holds the token itself."""

    method: str
    path: str
    query: str
    host: str
    """The Host header's host name (no port): tells the redirect host apart."""
    authorized: bool
    """Whether an Authorization header was present (its value is never kept)."""
    status: int
    kind: str
    """Route kind: discovery, user, token, applications, application, pget, continue, ..."""
    fault: str | None = None
    """The fault injected into this request, if one was."""


@dataclass(slots=True)
class Counters:
    """Running totals. Plain attributes and dicts: read them, don't write them."""

    requests: int = 0
    pgets: int = 0
    """Event-channel GETs received."""
    pget_replaced: int = 0
    """P-GETs released with 409 PGetReplaced."""
    resyncs: int = 0
    """Responses carrying only a resync link (out-of-range ack or injected)."""
    redeliveries: int = 0
    """P-GETs answered with a batch delivered before but not acknowledged."""
    tokens_issued: int = 0
    token_rejections: int = 0
    """401s for a missing, unknown, expired or other-host token."""
    applications_created: int = 0
    applications_deleted: int = 0
    """By the client (DELETE), by a fault, or by idle/activity expiry."""
    applications_expired: int = 0
    callback_channel_errors: int = 0
    """500 CallbackChannelError answers, injected or real (no channel)."""
    reconnect_faults: int = 0
    """Faults after which a client must rebuild its channel: CallbackChannelError,
    dropped P-GET, injected resync, application deletion."""
    events_emitted: int = 0
    batches_delivered: int = 0
    invitations_created: int = 0
    invitations_by_state: Counter[str] = field(default_factory=Counter)
    """Current state of every invitation: Connecting / Connected / Failed / Declined."""
    messages_received: int = 0
    """Messages the client sent (sendMessage POSTs answered 201)."""
    messages_sent: int = 0
    """Messages of remote people to the client (replies, ``sim.say``, first messages)."""
    faults_injected: Counter[str] = field(default_factory=Counter)
    """Fault kind -> times it actually fired."""
