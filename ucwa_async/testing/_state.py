"""The simulator's state: users' tokens, applications, conversation logs, invitations.

Plain objects mutated only from the event loop thread; lookups are dicts so the
per-request cost does not grow with the number of applications or invitations.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import random
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ucwa_async.testing._channel import EventChannel
from ucwa_async.testing._config import InvitationRequest, Reason, SimulatorConfig
from ucwa_async.testing._people import DEFAULT_PEOPLE, Person, person_key
from ucwa_async.testing._records import Counters
from ucwa_async.testing._urls import app_path

if TYPE_CHECKING:
    from ucwa_async.testing._conv_model import Conversation, ConvInvitation

__all__ = ["Application", "ConversationLog", "Invitation", "World"]


@dataclass(slots=True, eq=False)
class ConversationLog:
    id: str
    subject: str
    thread_id: str
    creation_time: datetime.datetime  # rendered per wire (see testing._render)
    direction: str
    modalities: tuple[str, ...]
    preview: str
    recipients: tuple[tuple[str, str], ...]
    status: str = "Archived"  # ConversationLogStatus_ref.md: Archived (answered) | Missed


@dataclass(slots=True, eq=False)
class Invitation:
    number: int
    app: Application
    path: str
    rel: str  # messagingInvitation | phoneAudioInvitation
    request: InvitationRequest
    log: ConversationLog
    state: str = "Connecting"
    reason: Reason | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def conversation_path(self) -> str:
        return f"{self.app.path}/communication/conversations/{self.number}"

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()


@dataclass(slots=True, eq=False)
class Application:
    id: str
    user: str
    pool: str
    origin: str
    endpoint_id: str
    user_agent: str
    culture: str
    created_at: float
    last_activity: float
    last_report: float
    channel: EventChannel = field(default_factory=EventChannel)
    invitations: dict[str, Invitation] = field(default_factory=dict)
    by_operation: dict[str, Invitation] = field(default_factory=dict)
    available: bool = False
    available_for: frozenset[str] = frozenset()
    """The modalities makeMeAvailable declared."""
    conversations: dict[str, Conversation] = field(default_factory=dict)
    conv_invitations: dict[str, ConvInvitation] = field(default_factory=dict)
    """startMessaging/startPhoneAudio and incoming invitations, by number."""

    @property
    def path(self) -> str:
        return app_path(self.pool, self.id)


_FIRST_APP_ID = 833  # the seeds' application number, for recognisable URLs
_SUBJECTS = ("Quarterly review", "Lunch?", "Build is red", "Release notes", "Re: budget")
_PEOPLE = (
    ("Bob Kelly", "sip:bob@contoso.com"),
    ("Carol Diaz", "sip:carol@contoso.com"),
    ("Dan Park", "sip:dan@contoso.com"),
)


class World:
    """Everything the handlers share."""

    def __init__(self, config: SimulatorConfig, counters: Counters, seed: int) -> None:
        self.config = config
        self.counters = counters
        self.rng = random.Random(seed)
        self.apps: dict[str, Application] = {}
        self.gone: dict[str, int] = {}  # app id -> status its requests now get (404/410)
        self.tokens: dict[str, tuple[str, str]] = {}  # token -> (user, host name)
        self.token_deadlines: dict[str, float] = {}  # token -> loop time it lapses at
        self.revoked: set[str] = set()
        self.next_app = _FIRST_APP_ID
        self.next_invitation = 0
        self.access_denied_left = config.html_access_denied_on_app_create
        self.logs = [self._make_log(i) for i in range(1, config.conversation_logs + 1)]
        self.logs_by_id = {log.id: log for log in self.logs}
        self.closing = False
        people = DEFAULT_PEOPLE if config.people is None else config.people
        self.people: dict[str, Person] = {person_key(p.uri): p for p in people}

    def person(self, uri: str) -> Person | None:
        return self.people.get(person_key(uri))

    def _make_log(self, n: int) -> ConversationLog:
        rng = self.rng
        recipients = tuple(rng.sample(_PEOPLE, k=rng.randint(1, len(_PEOPLE))))
        return ConversationLog(
            id=f"cl{n:04d}",
            subject=rng.choice(_SUBJECTS),
            thread_id=f"AdK{rng.getrandbits(64):016x}==",
            creation_time=datetime.datetime(
                2015, 3, (n % 28) + 1, rng.randint(8, 18), 14, 7, 517000, tzinfo=datetime.UTC
            ),
            direction=rng.choice(("Outgoing", "Incoming")),
            # ConversationModalityType_ref.md: a log's modalities say "Audio" (the sample of
            # conversationLog_ref.md too); "PhoneAudio" is how a client continues it.
            modalities=("Messaging",) if n % 2 else ("Messaging", "Audio"),
            preview=f"Message {n} of the past conversation",
            recipients=recipients,
            # Mixed, as a real mailbox: one log in three is Missed (followup_bot's default).
            status="Missed" if n % 3 == 1 else "Archived",
        )

    # --- tokens ---------------------------------------------------------------------

    def issue_token(self, user: str, host: str) -> str:
        # Random even with a seed: a token must never be predictable from a log.
        token = "cwt=" + secrets.token_urlsafe(30)
        self.tokens[token] = (user, host)
        # A token lives the expires_in its grant announces, as a real one does.
        lifetime = self.config.token_expires_in
        self.token_deadlines[token] = asyncio.get_running_loop().time() + lifetime
        self.counters.tokens_issued += 1
        return token

    def token_user(self, authorization: str | None, host: str) -> str | None:
        """The user a ``Bearer`` header authenticates on ``host``, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[7:].strip()
        found = self.tokens.get(token)
        if found is None or found[1] != host:
            return None
        if asyncio.get_running_loop().time() >= self.token_deadlines.get(token, math.inf):
            del self.tokens[token]  # lapsed: this and later requests are answered 401
            del self.token_deadlines[token]
            return None
        return found[0]

    def expire_tokens(self) -> int:
        count = len(self.tokens)
        self.revoked.update(self.tokens)
        self.tokens.clear()
        self.token_deadlines.clear()
        return count

    # --- applications ---------------------------------------------------------------

    def new_app_id(self) -> str:
        app_id = str(self.next_app)
        self.next_app += 1
        return app_id

    def delete_app(self, app: Application, status: int = 404) -> None:
        """Remove an application: its P-GET and later requests answer ``status``."""
        if self.apps.pop(app.id, None) is None:
            return
        self.gone[app.id] = status
        self.counters.applications_deleted += 1
        app.channel.close("gone")
        for inv in app.invitations.values():
            inv.cancel_timers()
        for conv in app.conversations.values():
            conv.cancel_timers()
        app.conversations.clear()  # everything of a deleted application goes with it
        app.conv_invitations.clear()

    def delete_applications(self, app_id: str | None) -> int:
        targets = list(self.apps.values()) if app_id is None else [self.apps[app_id]]
        for app in targets:
            self.delete_app(app)
        return len(targets)

    def expired(self, app: Application, now: float) -> bool:
        """Lazily apply idle/activity expiry (checked when the app is next used)."""
        cfg = self.config
        if (
            cfg.idle_expiry is not None
            and not app.channel.pget_pending
            and now - app.last_activity > cfg.idle_expiry
        ) or (cfg.activity_expiry is not None and now - app.last_report > cfg.activity_expiry):
            self.counters.applications_expired += 1
            self.delete_app(app, cfg.expiry_status)
            return True
        return False

    def shutdown(self) -> None:
        self.closing = True
        for app in self.apps.values():
            app.channel.close("shutdown")
            for inv in app.invitations.values():
                inv.cancel_timers()
            for conv in app.conversations.values():
                conv.cancel_timers()
