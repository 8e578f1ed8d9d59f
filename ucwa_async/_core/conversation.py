"""Conversations from the event channel: routing and per-conversation state (sans-IO).

``ConversationBook.feed(event)`` says what one event means for conversations and for
incoming invitations, as a list of effects the IO shell acts on:

- which conversation an event belongs to: the sender's href when the sender is a
  ``conversation`` (ReceiveAnIM step 8: participants, messaging, messages), the link's
  href when the target *is* a conversation (``communication`` sender: added, updated,
  deleted), the embedded resource's ``conversation`` link, else the longest known
  conversation href that prefixes the target's href;
- an incoming ``messagingInvitation`` / ``phoneAudioInvitation`` ``started`` with
  direction Incoming -> :class:`Arrived` (once per invitation);
- its ``completed`` / ``deleted`` -> :class:`InvitationEnded` (Success: accepted;
  otherwise the caller withdrew it, or the accept failed);
- per conversation: state, subject, remote participants (added / updated / deleted),
  our own participant (``localParticipant`` deleted: we are out of it),
  the messaging and phoneAudio links, incoming messages (exactly once, in order, see
  ``MessageLog``), and how it ended (:class:`ConversationEndReason`).

States are bounded (``max_conversations``): past it, the oldest conversation nobody
claimed (no public ``Conversation`` for it) is forgotten, counted in ``evicted``. So are
the messages the ended ones keep (``max_ended_messages``, by default ten conversations'
worth, 10 x ``max_messages``, in total): past it, the conversations that ended first
(nobody claiming them, no message of theirs still being read) lose their messages; each
stays known as ended (a late event for it is still ignored) with an empty log whose
``dropped`` counts the messages nobody had read. Whoever holds the old state (a
``Conversation``) keeps its messages: the book's entry is replaced, not emptied in place.
Live conversations, claimed ones and ones a read is still filling in are never trimmed.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from typing import TypeVar

import attrs

from ucwa_async._core.chat import (
    INVITATION_KINDS,
    IncomingInvitationView,
    Message,
    Participant,
    invitation_view,
    link_of,
    message_from,
    participant_from,
)
from ucwa_async._core.message_log import MessageLog
from ucwa_async._core.models import Event, Link, Reason, Resource

__all__ = [
    "FINAL_ENDS",
    "Arrived",
    "ConversationBook",
    "ConversationEndReason",
    "ConversationState",
    "Effect",
    "Ended",
    "Fetch",
    "InvitationEnded",
    "Updated",
]


class ConversationEndReason(enum.StrEnum):
    """Why a conversation ended (``Conversation.wait_ended()``)."""

    LEFT = "left"
    """This session left it (``leave()`` / ``hang_up()``)."""
    REMOTE_LEFT = "remote_left"
    """Every remote participant left."""
    DISCONNECTED = "disconnected"
    """The server says the conversation (or its only modality) is disconnected, or that
    the user is no longer in it (its ``localParticipant`` deleted)."""
    DELETED = "deleted"
    """The server deleted the conversation."""
    APPLICATION_LOST = "application_lost"
    """The session's UCWA application was lost (the server forgot its conversations)."""
    SESSION_CLOSED = "session_closed"
    """The session closed."""
    CHANNEL_FAILED = "channel_failed"
    """The event channel failed for good (``ChannelFailedError``): nothing more of the
    conversation can be heard, and nothing can be said."""


@attrs.frozen
class Arrived:
    """A new incoming invitation."""

    view: IncomingInvitationView


@attrs.frozen
class InvitationEnded:
    """An incoming invitation completed (``accepted`` True: Success) or was deleted."""

    key: str
    accepted: bool
    reason: Reason | None


@attrs.frozen
class Updated:
    """Something of conversation ``key`` changed (state, links, participants, messages)."""

    key: str


@attrs.frozen
class Ended:
    key: str
    reason: ConversationEndReason


@attrs.frozen
class Fetch:
    """GET ``href`` (something an event announced without its resource: a message, a
    participant, the conversation, a modality, an invitation or its caller) and hand the
    result to ``ConversationBook.fetched`` (None if it could not be read). ``kind`` is the
    link's rel; ``key`` the conversation's (the invitation's own for an invitation and
    its caller)."""

    key: str
    kind: str
    href: str


Effect = Arrived | InvitationEnded | Updated | Ended | Fetch

_V = TypeVar("_V")
_REMOTE_PARTICIPANT = "participant"
_CALLER = "from"  # Fetch kind: an incoming invitation's caller
_OUTCOME = "invitationOutcome"  # Fetch kind: how an incoming invitation ended
_MODALITIES = ("messaging", "phoneAudio")
_MAX_ALIASES = 64
_MODALITY_END = "disconnected"
# Ends after which no event comes (every conversation ended at once): never reopened,
# and nothing more is read for them.
# What the server says ends a conversation (not this session's doing, nor a loss).
_SERVER_ENDS = (
    ConversationEndReason.REMOTE_LEFT,
    ConversationEndReason.DISCONNECTED,
    ConversationEndReason.DELETED,
)

FINAL_ENDS = (
    ConversationEndReason.APPLICATION_LOST,
    ConversationEndReason.CHANNEL_FAILED,
    ConversationEndReason.SESSION_CLOSED,
)


class ConversationState:
    """What the events said about one conversation.

    Slotted, and its message log and sets are made on first use: every outgoing
    invitation gets one (10 000 pending invitations, 10 000 of these), and most never
    see a message or a typing participant."""

    __slots__ = (
        "_aliases",
        "_had_remote",
        "_live_modalities",
        "_messages",
        "_new_log",
        "_typing",
        "claimed",
        "end_said",
        "ended",
        "href",
        "key",
        "leaving",
        "links",
        "local_participant",
        "messaging_state",
        "participants",
        "phone_audio_state",
        "skip_key",
        "skip_text",
        "state",
        "subject",
    )

    def __init__(
        self, key: str, href: str, log: MessageLog[Message] | Callable[[], MessageLog[Message]]
    ) -> None:
        self.key = key
        self.href = href
        self.state: str | None = None
        self.subject: str | None = None
        self.participants: dict[str, Participant] = {}  # remote ones, by href key
        self._typing: set[str] | None = None
        self.local_participant: str | None = None
        self.links: dict[str, str] = {}  # messaging / phoneAudio operation links
        self.messaging_state: str | None = None
        self._live_modalities: set[str] | None = None
        self.phone_audio_state: str | None = None
        self._messages = log if isinstance(log, MessageLog) else None
        self._new_log = None if isinstance(log, MessageLog) else log
        self.ended: ConversationEndReason | None = None
        # This session's stop POSTs (leave(), hang_up()) under way: an end the server
        # says meanwhile is theirs (see ``end``).
        self.leaving = 0
        self.end_said = False  # the server said it ended (see ``end``)
        self.skip_text: str | None = None  # an accepted invitation's first message
        self.skip_key: str | None = None  # the message that may repeat it (see _message)
        self.claimed = False
        self._had_remote = False
        self._aliases: dict[str, str] = {}  # participant key -> the key it is kept under

    @property
    def typing(self) -> set[str]:
        """Keys of the participants typing now."""
        if self._typing is None:
            self._typing = set()
        return self._typing

    @property
    def live_modalities(self) -> set[str]:
        """Modalities seen in a state other than Disconnected."""
        if self._live_modalities is None:
            self._live_modalities = set()
        return self._live_modalities

    @property
    def messages(self) -> MessageLog[Message]:
        """The conversation's message log (made on first use)."""
        if self._messages is None:
            assert self._new_log is not None
            self._messages, self._new_log = self._new_log(), None
        return self._messages

    def end(self, reason: ConversationEndReason) -> bool:
        """First reason wins; True if this call ended it. While ``leaving`` (a stop POST
        of this session's under way), an end the server says (disconnected, deleted,
        the remote side gone) is that stop's effect: ``LEFT``, whether its answer comes
        before the events, after them, or not at all."""
        if reason in _SERVER_ENDS:
            # The server's word, not this session's own end (nor a loss): a stop whose
            # answer was lost learns from it that the server took the stop.
            self.end_said = True
        if self.ended is not None:
            return False
        if self.leaving and reason in _SERVER_ENDS:
            reason = ConversationEndReason.LEFT
        self.ended = reason
        return True

    def participant(
        self, key: str | None, href: str | None, title: str | None = None
    ) -> Participant | None:
        """A message's sender: the known participant, else what its link says."""
        key = self.canonical(key) if key is not None else None
        if key is not None and key in self.participants:
            known = self.participants[key]
            if known.name is None and title is not None:
                known = attrs.evolve(known, name=title)
            return known
        return Participant(name=title, href=href) if href is not None else None

    def canonical(self, key: str) -> str:
        """The key a participant is kept under (see ``add_participant``)."""
        return self._aliases.get(key, key)

    def add_participant(self, key: str, participant: Participant) -> None:
        key = self.canonical(key)
        if participant.uri is not None:
            # One person under two hrefs (ReceiveAnIM's own samples name Lene's participant
            # .../lenea@contoso.com and .../lenea@metio.ms) is one participant, kept under
            # the first key; events for the other key reach it through an alias.
            uri = participant.uri.lower()
            for other, person in self.participants.items():
                if other != key and (person.uri or "").lower() == uri:
                    self._aliases[key] = other
                    while len(self._aliases) > _MAX_ALIASES:
                        del self._aliases[next(iter(self._aliases))]
                    if key in self.participants:
                        dropped = self.participants.pop(key)
                        participant = attrs.evolve(
                            participant, name=participant.name or dropped.name
                        )
                    if key in self.typing:
                        self.typing.discard(key)
                        self.typing.add(other)
                    key = other
                    break
        known = self.participants.get(key)
        if known is not None:
            participant = Participant(
                uri=participant.uri or known.uri,
                name=participant.name or known.name,
                href=participant.href or known.href,
            )
        self.participants[key] = participant
        self._had_remote = True

    def remove_participant(self, key: str) -> bool:
        """Remove a remote participant; True if no remote one is left (after some were)."""
        key = self.canonical(key)
        self.participants.pop(key, None)
        if self._typing:
            self._typing.discard(key)
        return self._had_remote and not self.participants


class ConversationBook:
    """Every conversation and incoming invitation the events told us about."""

    def __init__(
        self,
        *,
        normalize: Callable[[str], str],
        resolve: Callable[[str], str] = str,
        max_conversations: int = 10_000,
        max_messages: int = 1000,
        max_ended_messages: int | None = None,
    ) -> None:
        if max_conversations < 1:
            raise ValueError("max_conversations must be >= 1")
        if max_ended_messages is None:
            max_ended_messages = 10 * max_messages
        if max_ended_messages < 0:
            raise ValueError("max_ended_messages must be >= 0")
        self._key = normalize
        self._resolve = resolve
        self._max_conversations = max_conversations
        self._max_messages = max_messages
        self._max_ended_messages = max_ended_messages
        # Ended states nobody claims whose messages count against max_ended_messages, in
        # the order they were let go (the first to go is the first emptied), with the
        # messages each held then, and their sum. (Nothing is added to an ended state's
        # log once no read of it is under way: what it held then is what it holds.)
        self._retired: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._retired_messages = 0
        self._states: collections.OrderedDict[str, ConversationState] = collections.OrderedDict()
        self._incoming: dict[str, IncomingInvitationView] = {}
        # Invitations announced by a link-only ``started`` and being read (GET).
        self._reading_invitations: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Incoming invitations whose caller is only a ``from`` link, the caller being read.
        self._reading_callers: collections.OrderedDict[str, IncomingInvitationView] = (
            collections.OrderedDict()
        )
        # Conversations of our own outgoing invitations, by the hash of their key: a
        # state is made when an event for them arrives (or ``claim``), not for every
        # invitation event. 10 000 pending invitations would otherwise keep 10 000
        # states that mostly never see an event; a hash (not the key string) keeps each
        # entry small, and a collision only makes a state early. Bounded like states.
        self._announced: dict[int, None] = {}
        # Noted conversations that end_all ended (application lost, session closed).
        self._ended_notes: dict[int, ConversationEndReason] = {}
        self.evicted = 0

    # -- queries and commands ------------------------------------------------------

    def key(self, href: str) -> str | None:
        try:
            return self._key(href)
        except ValueError:
            return None

    def absolute(self, href: str) -> str:
        """``href`` as an absolute URL (as given if it cannot be resolved)."""
        try:
            return self._resolve(href)
        except ValueError:
            return href

    def _participant_of(self, resource: Resource) -> Participant:
        participant = participant_from(resource)
        if participant.href is None:
            return participant
        return attrs.evolve(participant, href=self.absolute(participant.href))

    def get(self, key: str) -> ConversationState | None:
        return self._states.get(key)

    def track(self, href: str, *, claim: bool = False) -> ConversationState | None:
        """The state of the conversation at ``href``, created if new (None: bad href).

        ``claim``: a public Conversation exists for it: never evicted.
        """
        key = self.key(href)
        if key is None:
            return None
        state = self._states.get(key)
        if state is None:
            self._announced.pop(hash(key), None)
            state = self._track_key(key, self.absolute(href))
            state.claimed = claim
        elif claim:
            state.claimed = True
            self._discharge(key)  # claimed again: not the book's to empty
        return state

    def _track_key(self, key: str, href: str) -> ConversationState:
        """A new state for the conversation ``key`` at ``href`` (absolute)."""
        state = ConversationState(key, href, self._new_log)
        if self._ended_notes:
            reason = self._ended_notes.pop(hash(key), None)
            if reason is not None:
                state.end(reason)  # noted, then ended by end_all before it had a state
        self._evict()  # before adding: the new one is never the victim
        self._states[key] = state
        return state

    def _new_log(self) -> MessageLog[Message]:
        return MessageLog(max_messages=self._max_messages)

    def claim(self, href: str) -> ConversationState | None:
        """``track`` and mark it claimed."""
        return self.track(href, claim=True)

    def forget(self, key: str) -> None:
        self._drop(key)

    def unclaim(self, state: ConversationState) -> None:
        """No public ``Conversation`` claims ``state`` any more (it ended, or was never
        handed to anyone): evictable, and once ended its messages count against
        ``max_ended_messages``."""
        state.claimed = False
        self._retire(state)

    def is_incoming(self, href: str) -> bool:
        key = self.key(href)
        return key is not None and key in self._incoming

    def end_all(self, reason: ConversationEndReason) -> list[Effect]:
        """End every conversation (application lost, session closed)."""
        effects: list[Effect] = []
        for state in self._states.values():
            if state.end(reason):
                effects.append(Ended(state.key, reason))
        # Conversations only noted (no state yet) end too: a later claim gets them ended.
        for noted in self._announced:
            self._ended_notes[noted] = reason
        self._announced.clear()
        _trim(self._ended_notes, self._max_conversations)
        self._incoming.clear()
        self._reading_invitations.clear()
        self._reading_callers.clear()
        return self._let_go(effects)

    def fetched(self, fetch: Fetch, resource: Resource | None) -> list[Effect]:
        """The outcome of a :class:`Fetch`."""
        return self._let_go(self._fetched(fetch, resource))

    def _fetched(self, fetch: Fetch, resource: Resource | None) -> list[Effect]:
        if fetch.kind in INVITATION_KINDS:
            return self._invitation_read(fetch, resource)
        if fetch.kind == _CALLER:
            return self._caller_read(fetch, resource)
        if fetch.kind == _OUTCOME:
            return self._outcome_read(fetch, resource)
        state = self._states.get(fetch.key)
        if state is None:
            return []
        item = self.key(fetch.href)
        if item is None:  # pragma: no cover - Fetch hrefs come from keyable events
            return []
        if fetch.kind == "conversation":
            if resource is None or state.ended is not None:
                return []
            event = Event("updated", Link("conversation", state.href), resource=resource)
            return self._apply(state, event) + _end_effects(state)
        if fetch.kind in _MODALITIES:
            return self.read_modality(state, fetch.kind, resource) if resource is not None else []
        if fetch.kind == "message":
            message = message_from(resource) if resource is not None else None
            if message is None or (message.direction or "").lower() == "outgoing":
                if state.skip_key == item:
                    state.skip_key = None  # not the repeat: the next message may be
                if message is None:
                    state.messages.give_up(item)
                else:
                    state.messages.ignore(item)
            else:
                self._log_message(state, item, resource, message)
        elif resource is not None and state.canonical(item) in state.participants:
            state.add_participant(item, self._participant_of(resource))
        return [Updated(state.key)]

    def _invitation_read(self, fetch: Fetch, resource: Resource | None) -> list[Effect]:
        """A link-only ``started`` invitation, read: an incoming one arrives now, unless
        it ended meanwhile or is no longer waiting for an answer."""
        if fetch.key not in self._reading_invitations:
            return []  # completed / deleted while it was being read
        del self._reading_invitations[fetch.key]
        if resource is None:
            return []
        state = resource.properties.get("state")
        if isinstance(state, str) and state.lower() != "connecting":
            return []
        event = Event("started", Link(fetch.kind, fetch.href), resource=resource)
        return self._invitation_event(event)

    def _caller_read(self, fetch: Fetch, resource: Resource | None) -> list[Effect]:
        """The caller of an incoming invitation, read: the invitation arrives now (with
        what its ``from`` link said if the caller could not be read)."""
        view = self._reading_callers.pop(fetch.key, None)
        if view is None:
            return []  # completed / deleted while its caller was read
        if resource is not None:
            caller = self._participant_of(resource)
            known = view.sender
            sender = Participant(
                uri=caller.uri, name=caller.name or known.name, href=caller.href or known.href
            )
            view = attrs.evolve(view, sender=sender)
        return self._arrive(fetch.key, view)

    def _outcome_read(self, fetch: Fetch, resource: Resource | None) -> list[Effect]:
        """An incoming invitation completed without saying how, read: Connected is
        accepted. Unreadable (gone already): its conversation's messaging state says."""
        view = self._incoming.pop(fetch.key, None)
        if view is None:
            return []  # judged already
        if resource is not None:
            now = resource.properties.get("state")
        else:
            href = view.conversation_href
            conversation = self._states.get(self.key(href) or "") if href else None
            now = conversation.messaging_state if conversation is not None else None
        accepted = isinstance(now, str) and now.lower() == "connected"
        return [InvitationEnded(fetch.key, accepted, None)]

    def _arrive(self, key: str, view: IncomingInvitationView) -> list[Effect]:
        self._incoming[key] = view
        while len(self._incoming) > self._max_conversations:
            del self._incoming[next(iter(self._incoming))]  # never ended: forget
        return [Arrived(view)]

    def resynced(self) -> list[Effect]:
        """Events may have been lost: read every live claimed conversation again."""
        return [
            Fetch(state.key, "conversation", state.href)
            for state in self._states.values()
            if state.claimed and state.ended is None
        ]

    def gone(self, fetch: Fetch) -> list[Effect]:
        """A conversation read after a resync is not found: it was deleted meanwhile."""
        return self._let_go(self._gone(fetch))

    def _gone(self, fetch: Fetch) -> list[Effect]:
        state = self._states.get(fetch.key)
        if fetch.kind != "conversation" or state is None:
            return []
        if not state.end(ConversationEndReason.DELETED):
            return [Updated(state.key)]
        return [Updated(state.key), *_end_effects(state)]

    def learn_invitation(self, state: ConversationState, resource: Resource) -> list[Effect]:
        """What a (final) invitation resource says about its conversation."""
        if state.ended is not None:
            return []
        self._learn_from_invitation(state, resource)
        return [Updated(state.key)]

    def read_modality(self, state: ConversationState, rel: str, resource: Resource) -> list[Effect]:
        """A messaging / phoneAudio resource read with a GET."""
        return self._let_go(self._read_modality(state, rel, resource))

    def _read_modality(
        self, state: ConversationState, rel: str, resource: Resource
    ) -> list[Effect]:
        if state.ended is not None:
            return []
        self._modality(state, rel, resource)
        return [Updated(state.key), *_end_effects(state)]

    # -- events ------------------------------------------------------------------

    def feed(self, event: Event) -> list[Effect]:
        """What ``event`` means for conversations and incoming invitations."""
        return self._let_go(self._feed(event))

    def _feed(self, event: Event) -> list[Effect]:
        rel = event.link.rel
        if rel in INVITATION_KINDS:
            return self._invitation_event(event)
        key = self._conversation_of(event)
        if key is None:
            return []
        state = self._states.get(key)
        if state is None:
            announced = self._announced.pop(hash(key), 0) is None
            # Not only announced ones: a continued conversation whose invitation events
            # came link-only was never announced, and its own events (its participants,
            # messaging Connected, the reply: SendAnIM step 6, ReceiveAnIM step 16) may
            # come before (or with) the invitation's completed event (EventsInUCWA.md:
            # queued events come ahead of the one releasing the P-GET). Without them the
            # Conversation claimed next would miss the reply, and the remote side's
            # leaving (a participant it never knew, a modality never seen live) would not
            # end it. Unclaimed, the state is evicted as usual.
            if not announced and event.type == "deleted":
                return []  # nothing to keep of a conversation we knew nothing of
            state = self._track_key(key, self._href_of(key, event))
        if state.ended is not None:
            return []
        return self._apply(state, event) + _end_effects(state)

    def _href_of(self, key: str, event: Event) -> str:
        """The absolute href of conversation ``key``, which ``event`` belongs to."""
        if event.link.rel == "conversation":
            return self.absolute(event.link.href)
        sender = event.sender
        if sender is not None and sender.rel == "conversation":
            return self.absolute(sender.href)
        return key  # found by its prefix: keys are absolute hrefs

    def _conversation_of(self, event: Event) -> str | None:
        sender = event.sender
        if sender is not None and sender.rel == "conversation":
            return self.key(sender.href)
        if event.link.rel == "conversation":
            return self.key(event.link.href)
        resource = event.resource
        if resource is not None:
            href = resource.link("conversation")
            if href is not None:
                return self.key(href)
        target = self.key(event.link.href)
        while target is not None and "/" in target:
            target = target.rsplit("/", 1)[0]
            if target in self._states or hash(target) in self._announced:
                return target
        return None

    def _invitation_event(self, event: Event) -> list[Effect]:
        resource = event.resource
        if (
            resource is not None
            and not self._incoming
            and not self._reading_invitations
            and not _is_incoming(resource)
        ):
            # Our own invitation, and no incoming one to tell it from: only its
            # conversation matters (the common case: every continue and start).
            return self._learn_conversation(event, resource, False)
        key = self.key(event.link.href)
        if key is None:
            return []
        effects: list[Effect] = []
        if resource is None and event.type == "started" and key not in self._incoming:
            # A link-only ``started``: read the invitation to know whether it is an
            # incoming one (our own outgoing ones are the operations table's business).
            if key not in self._reading_invitations:
                self._reading_invitations[key] = None
                while len(self._reading_invitations) > self._max_conversations:
                    self._reading_invitations.popitem(last=False)
                effects.append(Fetch(key, event.link.rel, event.link.href))
            return effects
        if event.type in ("completed", "deleted"):
            self._reading_invitations.pop(key, None)  # over before it was read: ignore it
            self._reading_callers.pop(key, None)
        incoming = resource is not None and _is_incoming(resource)
        new = (
            event.type == "started"
            and incoming
            and key not in self._incoming
            and key not in self._reading_callers
        )
        if resource is not None:
            effects.extend(self._learn_conversation(event, resource, incoming, reopen=new))
        if new:
            assert resource is not None
            view = invitation_view(resource, self.absolute(event.link.href), event.link.rel)
            if view is None:
                return effects
            caller = view.sender.href
            if caller is not None:
                sender = attrs.evolve(view.sender, href=self.absolute(caller))
                view = attrs.evolve(view, sender=sender)
                if view.sender.uri is None:
                    # Only a ``from`` link names the caller (messagingInvitation_ref): read
                    # it first, as ReceiveAnIM step 11 does, so the invitation says who calls.
                    self._reading_callers[key] = view
                    while len(self._reading_callers) > self._max_conversations:
                        self._reading_callers.popitem(last=False)
                    effects.append(Fetch(key, _CALLER, caller))
                    return effects
            effects.extend(self._arrive(key, view))
            return effects
        if key in self._incoming and event.type in ("completed", "deleted"):
            status = (event.status or "").lower()
            if (
                event.type == "completed"
                and not status
                and resource is None
                and event.reason is None
            ):
                # Says nothing of how it ended: read the invitation, as the operations
                # table does for the session's own ones (correlate's NeedsLookup). A
                # reason block says it failed (EventChannelDetails.md), as in correlate.
                effects.append(Fetch(key, _OUTCOME, event.link.href))
                return effects
            del self._incoming[key]
            now = str(resource.properties.get("state", "")) if resource is not None else ""
            # Success, or (a server that gives no status) the invitation now Connected.
            accepted = event.type == "completed" and (
                status == "success" or (not status and now.lower() == "connected")
            )
            effects.append(InvitationEnded(key, accepted, event.reason))
        return effects

    def _learn_conversation(
        self, event: Event, resource: Resource, incoming: bool, *, reopen: bool = False
    ) -> list[Effect]:
        """What an invitation's resource says of its conversation (if it has a state).
        ``reopen``: a new incoming invitation, which opens its conversation again if that
        had ended here."""
        href = resource.link("conversation")
        if reopen and href is not None:
            self._reopen(href)
        state = self._invitation_conversation(href, event.type, incoming)
        if state is None or state.ended is not None:
            return []
        self._learn_from_invitation(state, resource)
        return [Updated(state.key)]

    def _reopen(self, href: str) -> None:
        """An incoming invitation may add messaging to an existing conversation
        (messagingInvitation_ref): one that had ended here (its modality disconnected,
        its remote participants gone, left) is a live one again, as a new state (what
        ended stays ended; the session makes a new Conversation for it)."""
        key = self.key(href)
        state = self._states.get(key) if key is not None else None
        if state is not None and state.ended not in (None, *FINAL_ENDS):
            # Reads are by key: a message of it still being read is logged in the new
            # state now, so the old streams stop waiting for it.
            state.messages.hand_over()
            self._drop(state.key)

    def _invitation_conversation(
        self, href: str | None, event_type: str, incoming: bool
    ) -> ConversationState | None:
        """The state of an invitation's conversation; for our own (outgoing) invitation,
        only noted (see ``_announced``) unless its state already exists: the final
        resource is learnt when ``Invitation.conversation()`` asks for it."""
        if href is None:
            return None
        key = self.key(href)
        if key is None:
            return None
        state = self._states.get(key)
        if state is not None or incoming:
            self._announced.pop(hash(key), None)
            return self._track_key(key, self.absolute(href)) if state is None else state
        self._announced[hash(key)] = None
        _trim(self._announced, self._max_conversations)
        return None

    def _learn_from_invitation(self, state: ConversationState, resource: Resource) -> None:
        for rel in ("messaging", "phoneAudio"):
            href = resource.link(rel)
            if href is not None:
                state.links.setdefault(rel, href)
        subject = resource.properties.get("subject")
        if isinstance(subject, str) and subject and state.subject is None:
            state.subject = subject
        # Embedded participants of an invitation: its caller (``from``) is the remote
        # one of an incoming invitation, who accepted it (``acceptedByParticipant``,
        # SendAnIM step 6) of an outgoing one; the other one, if embedded, is us
        # (messagingInvitation_ref embeds both).
        ours = "acceptedByParticipant" if _is_incoming(resource) else "from"
        for child in resource.embedded:
            if (child.embedded_as or child.rel) == ours:
                continue
            if child.rel in ("participant", "from", "acceptedByParticipant") and child.href:
                pkey = self.key(child.href)
                if pkey is not None and pkey != state.local_participant:
                    state.add_participant(pkey, self._participant_of(child))

    def _apply(self, state: ConversationState, event: Event) -> list[Effect]:
        rel, kind, resource = event.link.rel, event.type, event.resource
        effects: list[Effect] = [Updated(state.key)]
        if rel == "conversation":
            if kind == "deleted":
                state.end(ConversationEndReason.DELETED)
            elif resource is None:
                effects.append(Fetch(state.key, "conversation", state.href))  # link-only
            else:
                props = resource.properties
                if isinstance(props.get("state"), str):
                    state.state = props["state"]
                if isinstance(props.get("subject"), str) and props["subject"]:
                    state.subject = props["subject"]
                local = resource.link("localParticipant")
                if local is not None:
                    state.local_participant = self.key(local)
                for modality in ("messaging", "phoneAudio"):
                    href = resource.link(modality)
                    if href is not None:
                        state.links.setdefault(modality, href)
                if (state.state or "").lower() == _MODALITY_END:
                    state.end(ConversationEndReason.DISCONNECTED)
        elif rel in ("messaging", "phoneAudio"):
            state.links[rel] = event.link.href
            if resource is not None:
                self._modality(state, rel, resource)
            elif kind != "deleted":
                effects.append(Fetch(state.key, rel, event.link.href))  # link-only
        elif rel == "localParticipant":
            state.local_participant = self.key(event.link.href)
            collection = event.in_link.rel if event.in_link is not None else None
            if kind == "deleted" and collection in (None, "participants", "conversation"):
                # localParticipant_ref.md, Deleted: "the user has left a conversation"
                # (not a typingParticipants change): it is over for us.
                state.end(ConversationEndReason.DISCONNECTED)
        elif rel == _REMOTE_PARTICIPANT:
            effects.extend(self._participant(state, event))
        elif rel == "message":
            effects.extend(self._message(state, event))
        return effects

    def _modality(self, state: ConversationState, rel: str, resource: Resource) -> None:
        names = (
            ("stopMessaging", "sendMessage", "setIsTyping")
            if rel == "messaging"
            else ("stopPhoneAudio",)
        )
        for name in names:
            href = resource.link(name)
            if href is not None:
                state.links[name] = href
            else:
                state.links.pop(name, None)
        value = resource.properties.get("state")
        modality_state = value if isinstance(value, str) else None
        if rel == "messaging":
            state.messaging_state = modality_state
        else:
            state.phone_audio_state = modality_state
        # A modality that was live and is now Disconnected, with no other one live,
        # ends the conversation; one that was never live (an IM conversation's
        # phoneAudio, say) says nothing about it.
        if modality_state is None:
            return
        if modality_state.lower() != _MODALITY_END:
            state.live_modalities.add(rel)
        elif rel in state.live_modalities:
            state.live_modalities.discard(rel)
            if not state.live_modalities:
                state.end(ConversationEndReason.DISCONNECTED)

    def _participant(self, state: ConversationState, event: Event) -> list[Effect]:
        pkey = self.key(event.link.href)
        if pkey is None or pkey == state.local_participant:
            return []
        pkey = state.canonical(pkey)
        collection = event.in_link.rel if event.in_link is not None else None
        if collection == "typingParticipants":
            # Someone started / stopped typing (typingParticipants_ref): not a membership
            # change; a "deleted" here must not read as "left the conversation".
            if event.type == "added":
                state.typing.add(pkey)
            elif event.type == "deleted":
                state.typing.discard(pkey)
            return []
        if collection not in (None, "participants", "conversation"):
            return []
        if event.type == "deleted":
            if pkey in state.participants and state.remove_participant(pkey):
                state.end(ConversationEndReason.REMOTE_LEFT)
            return []
        if event.resource is not None:
            state.add_participant(pkey, self._participant_of(event.resource))
            return []
        # A link-only participant: its link's title is its display name (ReceiveAnIM
        # step 9); its uri needs a GET.
        title = event.link.title
        if pkey not in state.participants or title is not None:
            link_only = Participant(name=title, href=self.absolute(event.link.href))
            state.add_participant(pkey, link_only)
        if state.participants[pkey].uri is None:
            return [Fetch(state.key, "participant", event.link.href)]
        return []

    def _message(self, state: ConversationState, event: Event) -> list[Effect]:
        mkey = self.key(event.link.href)
        resource = event.resource
        if mkey is None or event.type == "deleted":
            return []
        outgoing = resource is not None and (
            str(resource.properties.get("direction", "")).lower() == "outgoing"
        )
        if (
            state.skip_text is not None
            and state.skip_key is None
            and not outgoing
            and not state.messages.seen(mkey)
        ):
            # The first message announced after the accept is the one that may repeat
            # the invitation's (ReceiveAnIM step 16), whichever body arrives first.
            state.skip_key = mkey
        if resource is None:
            if state.messages.reserve(mkey):
                return [Fetch(state.key, "message", event.link.href)]
            return []
        if outgoing:
            state.messages.ignore(mkey)
            return []
        message = message_from(resource)
        if message is None:
            if state.messages.reserve(mkey):  # the body may come with a later event
                return [Fetch(state.key, "message", event.link.href)]
            return []
        self._log_message(state, mkey, resource, message)
        return []

    def _log_message(
        self, state: ConversationState, mkey: str, resource: Resource | None, message: Message
    ) -> None:
        link = link_of(resource, "participant") if resource is not None else None
        pkey = self.key(link.href) if link is not None else None
        sender = state.participant(
            pkey,
            self.absolute(link.href) if link is not None else None,
            link.title if link is not None else None,
        )
        href = self.absolute(message.href) if message.href is not None else None
        message = attrs.evolve(message, sender=sender, href=href)
        if state.skip_text is not None and state.skip_key in (None, mkey):
            text, state.skip_text, state.skip_key = state.skip_text, None, None
            bodies = (message.text, message.html or message.text)
            if text.strip() and text.strip() in (body.strip() for body in bodies):
                # The invitation's first message, delivered again once accepted
                # (ReceiveAnIM step 16): it is ``invite.message``, not a new one.
                state.messages.ignore(mkey)
                return
        state.messages.add(mkey, message)

    def _evict(self) -> None:
        while len(self._states) >= self._max_conversations:
            victim = next((k for k, s in self._states.items() if not s.claimed), None)
            if victim is None:
                return
            self._drop(victim)
            self.evicted += 1

    def _drop(self, key: str) -> None:
        """The state of ``key`` leaves the book."""
        self._states.pop(key, None)
        self._discharge(key)

    def _discharge(self, key: str) -> None:
        """The messages of ``key`` no longer count against ``max_ended_messages``."""
        count = self._retired.pop(key, None)
        if count is not None:
            self._retired_messages -= count

    def _let_go(self, effects: list[Effect]) -> list[Effect]:
        """The conversations ``effects`` ended or changed may be over for good: see
        ``_retire``. Returns ``effects``."""
        for effect in effects:
            if isinstance(effect, Ended | Updated):
                self._retire(self._states.get(effect.key))
        return effects

    def _retire(self, state: ConversationState | None) -> None:
        """``state`` counts against ``max_ended_messages`` once it has ended, nobody
        claims it and no message of it is still being read (nothing is added to its log
        after that); past the bound, the states let go first are replaced by empty ones."""
        log = state._messages if state is not None else None
        if (
            state is None
            or state.claimed
            or state.ended is None
            or log is None
            or not len(log)
            or log.holding
            or state.key in self._retired
            or self._states.get(state.key) is not state
        ):
            return
        self._retired[state.key] = len(log)
        self._retired_messages += len(log)
        while self._retired_messages > self._max_ended_messages:
            key, count = self._retired.popitem(last=False)
            self._retired_messages -= count
            # (A state leaving the book leaves _retired too: ``key`` is still there.)
            self._states[key] = self._emptied(self._states[key])  # keeps its place

    def _emptied(self, old: ConversationState) -> ConversationState:
        """An ended state as ``old`` but for its messages: a new object, so a
        ``Conversation`` holding ``old`` keeps them. Its log (made only if something was
        lost) counts in ``dropped`` what a reader of it would have had."""
        state = ConversationState(old.key, old.href, self._new_log)
        state.ended = old.ended
        state.state = old.state
        state.subject = old.subject
        state.participants = dict(old.participants)
        state.local_participant = old.local_participant
        state.messaging_state = old.messaging_state
        state.phone_audio_state = old.phone_audio_state
        lost = old.messages.dropped + old.messages.unread
        if lost:
            state.messages.dropped = lost
        return state


def _trim(notes: dict[int, _V], bound: int) -> None:
    """Past ``bound`` entries, keep the newest half: O(1) amortised, and no scan over the
    dead slots that deleting a dict's oldest entries one at a time leaves."""
    if len(notes) > bound:
        kept = list(notes.items())[-max(1, bound // 2) :]
        notes.clear()
        notes.update(kept)


def _is_incoming(resource: Resource) -> bool:
    return str(resource.properties.get("direction", "")).lower() == "incoming"


def _end_effects(state: ConversationState) -> list[Effect]:
    """``[Ended]`` if ``state`` has ended (a separate function: callers check ``ended``
    before the change, and a type checker would take that for the value after it)."""
    return [Ended(state.key, state.ended)] if state.ended is not None else []
