"""Configuration of the UCWA simulator: what the server does, switch by switch.

Everything a test may want to vary lives in one frozen :class:`SimulatorConfig`,
so a test states its scenario in one place; behaviour that changes *during* a
test (faults) lives in :mod:`ucwa_async.testing._faults` instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ucwa_async.testing._people import Person

__all__ = [
    "CANCELLED",
    "DECLINED",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "ConflictRule",
    "HrefStyle",
    "InvitationRequest",
    "Outcome",
    "OutcomeRule",
    "Reason",
    "SimulatorConfig",
    "SimulatorReason",
]

HrefStyle = Literal["relative", "absolute", "v1"]
"""How an href is written: ``/ucwa/oauth/v1/...``, ``http://host:port/ucwa/...``
or the seeds' literal ``//v1/...`` (the application base path elided)."""

DEFAULT_USERNAME = "alice@contoso.com"
DEFAULT_PASSWORD = "sim-P@ssw0rd"


@dataclass(frozen=True, slots=True)
class Reason:
    """A UCWA error/failure reason: the body of an error, or of a failed ``completed`` event.

    What the simulator *sends*; also exported as :data:`SimulatorReason`, to tell it from
    ``ucwa_async.Reason``, the reason the client parsed (the same code, subcode, message).
    """

    code: str
    subcode: str | None = None
    message: str | None = None

    def __str__(self) -> str:
        # As ucwa_async.Reason reads: code/subcode: message.
        label = "/".join(part for part in (self.code, self.subcode) if part)
        if label and self.message:
            return f"{label}: {self.message}"
        return label or self.message or "no reason given"


SimulatorReason = Reason
"""``ucwa_async.testing.Reason`` under a name that does not clash with ``ucwa_async.Reason``."""

DECLINED = Reason("RemoteFailure", "Declined", "The remote party declined the invitation.")
CANCELLED = Reason("Cancelled", None, "The invitation was cancelled by the local user.")


@dataclass(frozen=True, slots=True)
class InvitationRequest:
    """What an outcome or conflict rule sees of an accepted continue POST."""

    application_id: str
    log_id: str
    modality: Literal["Messaging", "PhoneAudio"]
    operation_id: str
    message: str | None
    """The decoded text of the ``data:`` URI, when the request carried one."""
    phone_number: str | None
    number: int
    """1-based count of invitations created by this simulator (across applications)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one invitation ends.

    ``delay`` is the time from ``started`` to ``completed``; ``updated`` adds an
    ``updated`` event halfway; ``complete=False`` leaves it ``Connecting`` until it
    is cancelled (or its application goes away).
    """

    success: bool = True
    reason: Reason | None = None
    delay: float = 0.0
    updated: bool = False
    complete: bool = True


OutcomeRule = Callable[[InvitationRequest, random.Random], Outcome]
"""Decides an invitation's :class:`Outcome`; gets the simulator's seeded RNG."""

ConflictRule = Callable[[InvitationRequest], Reason | None]
"""Returns a reason to answer ``409`` with (e.g. ``Reason("Conflict", "TooManyGroups")``)."""


def _default_users() -> Mapping[str, str]:
    return {DEFAULT_USERNAME: DEFAULT_PASSWORD}


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Every switch of the simulator. The defaults give a well-behaved, fast server."""

    # --- accounts and sign-in -------------------------------------------------
    users: Mapping[str, str] = field(default_factory=_default_users)
    """username -> password accepted by the password grant (the first is ``sim.username``)."""
    token_expires_in: int = 28799
    """The grant's ``expires_in`` (seconds); a token is refused (401) once it is that old."""
    challenge_href_quoted: bool = True
    """``MsRtcOAuth href="..."`` (True) or the reference page's unquoted ``href=...``."""
    dual_challenge: Literal["off", "combined", "separate"] = "off"
    """Add a ``Bearer`` challenge before the MsRtcOAuth one: in the same header
    (``combined``) or as a separate ``WWW-Authenticate`` header (``separate``)."""
    redirect_hops: int = 0
    """User GETs (with a token) answer ``_links.redirect`` to ``/pool1``, ``/pool2``...
    this many times before giving the applications link."""
    redirect_host: str | None = None
    """Host name the redirect points to (e.g. ``"localhost"``); it demands its own token."""
    html_access_denied_on_app_create: int = 0
    """The first N ``POST applications`` answer an HTML "Access is denied" page."""
    html_access_denied_status: Literal[401, 403] = 403

    # --- hrefs and bodies -----------------------------------------------------
    location_style: HrefStyle = "relative"
    event_href_style: HrefStyle = "relative"
    """Style of the hrefs inside events (sender, target link, embedded resource)."""
    embed_resources: bool = True
    """Embed the invitation resource in its events (False: link-only events)."""
    xml_status_as_attribute: bool = False
    link_titles: bool = False
    """Participant event links carry the display name as ``title`` (ReceiveAnIM step 9);
    with ``embed_resources=False`` it is all a client has until it reads the participant."""
    """XML ``completed`` events carry ``status`` as an attribute instead of a child."""
    conversation_logs: int = 3
    log_href_query: str | None = None
    """Query string (without ``?``) on every conversationLog href and its continue
    links; when set, continue POSTs without it answer 404."""

    # --- continue POSTs and invitations -------------------------------------------
    continue_status: Literal[200, 201] = 201
    location_on_200: bool = True
    """With ``continue_status=200``: whether the Location header is still sent."""
    require_channel: bool = True
    """Answer 500 ServiceFailure/CallbackChannelError when the app has no event channel."""
    channel_grace: float = 1.0
    """A P-GET that ended less than this many seconds ago still counts as a channel
    (the gap between a P-GET's answer and the next one)."""
    reject_duplicate_operation_id: bool = True
    """409 Conflict/AlreadyExists for an operationId still Connecting in the app."""
    conflict_rule: ConflictRule | None = None
    outcome_rule: OutcomeRule | None = None
    """Overrides the simple rules below when set."""
    fail_rate: float = 0.0
    failure_reasons: tuple[Reason, ...] = (DECLINED,)
    completion_delay: float = 0.0
    send_updated: bool = False
    make_me_available_conflict: bool = True
    """A second makeMeAvailable on the same application answers 409 Conflict/AlreadyExists."""
    make_me_available_link: Literal["me", "communication", "none"] = "me"
    """Which resource links ``makeMeAvailable``: ``me`` (UCWA's reference, ``me_ref``),
    ``communication`` (a misreading some clients depend on) or ``none``."""
    make_me_available_path: Literal["communication", "me"] = "communication"
    """Where its href points: ``{app}/communication/makeMeAvailable`` (the reference
    samples) or ``{app}/me/makeMeAvailable``. A POST to the other path answers 404, so a
    client that builds the URL instead of following the link fails."""

    # --- conversations (issue 12) --------------------------------------------------
    people: tuple[Person, ...] | None = None
    """The directory of remote people; None: Lene Aaling and the conversation logs'
    recipients, all echoing (:data:`ucwa_async.testing._people.DEFAULT_PEOPLE`)."""
    max_conversations: int = 1000
    """Conversations kept per application (ended ones are forgotten first; beyond it
    startMessaging/startPhoneAudio answer 409 Conflict and a continue POST makes the
    oldest one forgotten)."""
    max_messages_per_conversation: int = 500
    """Messages kept per conversation (older ones then answer 404)."""
    incoming_message_events: tuple[Literal["started", "completed", "added"], ...] = ("completed",)
    """Event types announcing an incoming message: ReceiveAnIM shows ``completed``
    (status Success), message_ref ``started``; several exercise de-duplication."""
    repeat_first_message: bool = True
    """After accept, the incoming invitation's first message also arrives as a
    message event (ReceiveAnIM step 16)."""
    message_operation_id: bool = False
    """Sent messages carry ``operationId`` (message_ref); the SendAnIM flow shows none."""
    typing_events: bool = False
    """Before each reply the remote person shows as typing: participant ``added`` then
    ``deleted`` events ``in`` typingParticipants (typingParticipants_ref)."""
    continue_conversation_events: bool = False
    """A continue invitation that connects also emits the conversation's events
    (participant added, messaging/phoneAudio updated, conversation updated) before
    ``completed``, as SendAnIM shows; off by default (the invitation events alone)."""

    # --- event channel and application lifetime -----------------------------------
    pget_timeout_cap: float = 1.0
    """Longest a P-GET is held, whatever its ``timeout`` asks (tests want it short)."""
    max_events_per_batch: int = 500
    idle_expiry: float | None = None
    """Delete an application with no pending P-GET and no request for this long."""
    activity_expiry: float | None = None
    """Delete an application with no reportMyActivity (or creation) for this long."""
    expiry_status: Literal[404, 410] = 404
    """After expiry: 404 ApplicationNotFound or 410 InactiveApplicationExpired."""

    # --- server ---------------------------------------------------------------
    latency: float = 0.0
    """Added to every response (seconds); ``sim.faults.latency()`` changes it live."""
    request_log_limit: int = 100_000
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        if not self.users:
            raise ValueError("SimulatorConfig.users needs at least one user")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within 0..1")
        if self.fail_rate and not self.failure_reasons:
            raise ValueError("fail_rate needs at least one failure reason")
        if self.redirect_hops < 0 or self.conversation_logs < 0:
            raise ValueError("redirect_hops and conversation_logs must be >= 0")
        if self.max_events_per_batch < 1:
            raise ValueError("max_events_per_batch must be >= 1")
        if self.max_conversations < 1 or self.max_messages_per_conversation < 1:
            raise ValueError("max_conversations and max_messages_per_conversation must be >= 1")
        if not self.incoming_message_events:
            raise ValueError("incoming_message_events needs at least one event type")
