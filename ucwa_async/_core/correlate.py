"""Operation correlation: which pending invitation an event is about (sans-IO).

The session registers every operation *before* it sends the POST (``expect``), because
the server may report on the operation before the ``201`` answers; after the ``201``
it adds the Location href as a second key (``bind``). ``feed`` then maps each operation
event to at most one pending operation:

1. by the embedded resource's ``operationId``, if that operation is pending;
2. else by the normalised link href among bound operations;
3. else the event waits in a small orphan buffer (bounded, time-limited, keyed by
   normalised href) until a ``bind`` claims it.

Invariant: each expected operation gets at most one terminal resolution
(:class:`Succeeded`, :class:`Failed` or :class:`NeedsLookup`). After it, the operation is
*finished*; finished operations and their hrefs are remembered (bounded) so that late or
duplicated events are dropped instead of being orphaned or resolving twice.

No futures and no IO here: the session turns resolutions into future results, and GETs
the invitation for :class:`NeedsLookup` (or for a :class:`Succeeded` without resource).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

import attrs

from ucwa_async._core import urls

__all__ = [
    "Correlator",
    "EventLike",
    "Failed",
    "LinkLike",
    "NeedsLookup",
    "Progress",
    "Resolution",
    "Succeeded",
    "check_operation_id",
    "new_operation_id",
]

OPERATION_EVENT_TYPES = frozenset({"started", "updated", "completed"})
_SUCCESS_STATES = frozenset({"connected"})
IN_PROGRESS_STATES = frozenset({"", "connecting", "alerting", "teamring"})
"""Invitation states (lower case) of a call not decided yet: InvitationState_ref.md's
Connecting, Alerting (ringing) and TeamRing; "" is no state given."""
# A completed event whose resource is still in progress (or says nothing) does not
# tell us the outcome: the session must look.
_UNDECIDED_STATES = IN_PROGRESS_STATES
# UCWA allows a client-generated operationId of at most 50 characters; ours is also
# restricted to characters that need no escaping in JSON, XML or a log line.
_OPERATION_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,50}")


# operationIds need to be unique, not secret: a generator seeded from os.urandom (and
# seeded afresh in a forked child, which would otherwise repeat its parent's ids) makes
# them without a system call each (uuid4 and os.urandom: one getrandom per id).
_IDS = random.Random()
if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_IDS.seed)


def new_operation_id() -> str:
    """A fresh operationId: 32 random hex digits, like ``uuid.uuid4().hex``."""
    return f"{_IDS.getrandbits(128):032x}"


def check_operation_id(value: object) -> str:
    """``value`` if it is a valid operationId (1..50 of letters, digits, ``-_.:``)."""
    if not isinstance(value, str) or _OPERATION_ID.fullmatch(value) is None:
        raise ValueError(
            "operation_id must be 1 to 50 characters of ASCII letters, digits and -_.: "
            f"(got {value!r:.80})"
        )
    return value


class LinkLike(Protocol):
    """What the correlator reads from an event's link (``_models.Link`` fits)."""

    @property
    def href(self) -> str: ...


class EventLike(Protocol):
    """What the correlator reads from an event (``_models.Event`` fits).

    ``resource`` and ``reason`` are passed through untouched; the correlator only reads
    the resource's ``state`` (an attribute, or a ``properties`` mapping entry).
    """

    @property
    def type(self) -> str: ...

    @property
    def link(self) -> LinkLike: ...

    @property
    def operation_id(self) -> str | None: ...

    @property
    def status(self) -> str | None: ...

    @property
    def reason(self) -> Any: ...

    @property
    def resource(self) -> Any: ...


@attrs.frozen
class Progress:
    """A ``started``/``updated`` event of a pending operation (``state`` if the resource said)."""

    operation_id: str
    event: EventLike
    state: str | None


@attrs.frozen
class Succeeded:
    """The operation completed successfully. ``resource`` None: GET the invitation for it."""

    operation_id: str
    event: EventLike
    resource: Any


@attrs.frozen
class Failed:
    """The operation completed with a failure; ``reason`` is the server's (may be None)."""

    operation_id: str
    event: EventLike
    reason: Any


@attrs.frozen
class NeedsLookup:
    """A ``completed`` event that does not say how it ended: GET ``href`` to decide.

    ``href`` is the bound href when known (as given to ``bind``), else the event's link
    href; None only if both are empty. The operation is finished either way.
    """

    operation_id: str
    href: str | None
    event: EventLike


Resolution: TypeAlias = Progress | Succeeded | Failed | NeedsLookup


@attrs.define
class _Pending:
    href: str | None = None  # as given to bind()
    key: str | None = None  # normalised, bound or learnt from an operationId match


@attrs.frozen
class _Orphan:
    at: float
    key: str
    event: EventLike


def state_of(resource: Any) -> str | None:
    """The ``state`` of an embedded resource: an attribute or a ``properties`` entry."""
    if resource is None:
        return None
    state = getattr(resource, "state", None)
    if state is None:
        properties = getattr(resource, "properties", None)
        if properties is None and isinstance(resource, dict):
            properties = resource
        if properties is not None and hasattr(properties, "get"):
            state = properties.get("state")
    return state if isinstance(state, str) else None


class Correlator:
    """Maps operation events to pending operations; see the module docstring."""

    def __init__(
        self,
        *,
        normalize: Callable[[str], str] = urls.normalize,
        clock: Callable[[], float] = time.monotonic,
        orphan_limit: int = 1024,
        orphan_ttl: float = 60.0,
        finished_limit: int = 4096,
    ) -> None:
        if orphan_limit < 0 or finished_limit < 0:
            raise ValueError("orphan_limit and finished_limit must be >= 0")
        if orphan_ttl < 0:
            raise ValueError("orphan_ttl must be >= 0")
        self._normalize = normalize
        self._clock = clock
        self._orphan_limit = orphan_limit
        self._orphan_ttl = orphan_ttl
        self._finished_limit = finished_limit
        self._pending: dict[str, _Pending] = {}
        self._by_key: dict[str, str] = {}
        # Insertion order = arrival order, so expiry and "drop oldest" pop from the front.
        self._orphans: OrderedDict[int, _Orphan] = OrderedDict()
        self._orphan_seq = 0
        self._finished_ops: OrderedDict[str, None] = OrderedDict()
        self._finished_keys: OrderedDict[str, None] = OrderedDict()
        # Pending operations whose id an earlier, finished operation had (a caller's
        # retry with its own operationId): events of the earlier one must not match.
        self._reused: set[str] = set()

    # -- registration ---------------------------------------------------------------

    def expect(self, operation_id: str) -> None:
        """Register ``operation_id`` before its POST is sent."""
        if not operation_id:
            raise ValueError("operation_id must be a non-empty string")
        if operation_id in self._pending:
            raise ValueError(f"operation {operation_id!r} is already pending")
        # A reused id starts afresh; the earlier operation's late events are told apart
        # by their href (see feed).
        if operation_id in self._finished_ops:
            del self._finished_ops[operation_id]
            self._reused.add(operation_id)
        self._pending[operation_id] = _Pending()

    def bind(self, operation_id: str, href: str) -> list[Resolution]:
        """Add the ``201`` Location as the operation's second key.

        Replays buffered orphans for that href in arrival order. If the operation is
        already finished (resolved through ``operationId`` before the ``201``), only
        remembers the href so later events about it are dropped, and returns ``[]``.
        Raises ``KeyError`` for an operation that was never expected (or was forgotten),
        ``ValueError`` when the href is bound to another pending operation.
        """
        key = self._normalize(href)
        self._expire_orphans()
        if operation_id in self._finished_ops:
            self._remember_finished_key(key)
            self._take_orphans(key)
            return []
        op = self._pending[operation_id]
        owner = self._by_key.get(key)
        if owner is not None and owner != operation_id:
            raise ValueError(f"href {href!r} is already bound to operation {owner!r}")
        if op.key is not None and op.key != key:
            self._by_key.pop(op.key, None)
        op.href = href
        op.key = key
        self._by_key[key] = operation_id
        return self._replay(operation_id, key)

    def forget(self, operation_id: str) -> None:
        """Stop tracking ``operation_id`` without remembering it (e.g. its POST failed).

        Later events about it become orphans like any unknown event. Unknown ids are ignored.
        """
        op = self._pending.pop(operation_id, None)
        if op is not None and op.key is not None:
            # Invariant: a pending op's key always maps back to it.
            del self._by_key[op.key]
        self._finished_ops.pop(operation_id, None)
        self._reused.discard(operation_id)

    def finish(self, operation_id: str) -> None:
        """Mark ``operation_id`` ended by other means (timeout, cancel, lookup).

        Later events about it are dropped. Works for unknown ids too (a late bind of a
        finished operation only records its href).
        """
        op = self._pending.pop(operation_id, None)
        if op is not None and op.key is not None:
            del self._by_key[op.key]
            self._remember_finished_key(op.key)
            self._take_orphans(op.key)
        self._reused.discard(operation_id)
        self._remember_finished_op(operation_id)

    def clear(self) -> list[str]:
        """Drop all state; return the operations that were pending (session close)."""
        pending = list(self._pending)
        self._pending.clear()
        self._by_key.clear()
        self._orphans.clear()
        self._finished_ops.clear()
        self._finished_keys.clear()
        self._reused.clear()
        return pending

    # -- queries --------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Pending operation ids, in the order they were expected."""
        return list(self._pending)

    def bound(self) -> dict[str, str]:
        """Pending operations with a bound href: ``{operation_id: href}`` (resync re-reads)."""
        return {op_id: op.href for op_id, op in self._pending.items() if op.href is not None}

    def owner(self, href: str) -> str | None:
        """The pending operation bound (or matched) to ``href``, if any."""
        try:
            key = self._normalize(href)
        except ValueError:
            return None
        return self._by_key.get(key)

    def is_pending(self, operation_id: str) -> bool:
        """True if ``operation_id`` is expected and has not ended."""
        return operation_id in self._pending

    def is_finished(self, operation_id: str) -> bool:
        """True if ``operation_id`` resolved or was finished (and is still remembered)."""
        return operation_id in self._finished_ops

    @property
    def orphan_count(self) -> int:
        """Events currently held in the orphan buffer (expired ones are purged first)."""
        self._expire_orphans()
        return len(self._orphans)

    def orphan_events(self, since: float | None = None) -> list[EventLike]:
        """The latest event of each href waiting in the orphan buffer (oldest href
        first): events nobody claimed, whose resource a client may read to learn whose
        they are (a link-only event carries no operationId).

        ``since`` (the clock's time): only the hrefs whose first event waiting came at
        or after it (a resource whose events came before a request was made is not the
        one the request made)."""
        return [event for _, event in self.orphans(since)]

    def orphans(self, since: float | None = None) -> list[tuple[float, EventLike]]:
        """``orphan_events(since)``, each with the time its href's first event waiting
        came (the clock's time; ascending): a caller that looks for several requests
        tells which came after each one was made."""
        self._expire_orphans()
        latest: dict[str, tuple[float, EventLike]] = {}
        older: set[str] = set()
        for orphan in self._orphans.values():
            if since is not None and orphan.at < since:
                older.add(orphan.key)
            elif orphan.key not in older:
                first = latest.get(orphan.key)
                latest[orphan.key] = (orphan.at if first is None else first[0], orphan.event)
        return list(latest.values())

    # -- events ---------------------------------------------------------------------

    def feed(self, event: EventLike) -> list[Resolution]:
        """Resolutions caused by ``event`` (often ``[]``). Never raises on odd input."""
        if (event.type or "").lower() not in OPERATION_EVENT_TYPES:
            return []
        self._expire_orphans()
        # The key (href resolution + normalisation: the costly part) is computed only
        # when it is used: an operationId match on an already-keyed operation needs none.
        op_id = event.operation_id
        if op_id is not None and op_id in self._pending:
            op = self._pending[op_id]
            if op_id in self._reused:
                own = self._key_of(event)
                if own is not None and own != op.key and own in self._finished_keys:
                    return []  # about the earlier operation that had this id: it ended
            resolutions: list[Resolution] = []
            key = self._key_of(event) if op.key is None else None
            if key is not None and key not in self._by_key:
                # Learn the href now: later link-only events (and orphans that came
                # before this one) then match before the 201 arrives.
                op.key = key
                self._by_key[key] = op_id
                resolutions = self._replay(op_id, key)
                if op_id not in self._pending:
                    return resolutions  # an earlier orphan already ended it
            return resolutions + self._apply(op_id, event)
        if op_id is not None and op_id in self._finished_ops:
            return []

        key = self._key_of(event)
        if key is None:
            return []
        owner = self._by_key.get(key)
        if owner is not None:
            return self._apply(owner, event)
        if key in self._finished_keys:
            return []
        self._add_orphan(key, event)
        return []

    # -- internals ------------------------------------------------------------------

    def _key_of(self, event: EventLike) -> str | None:
        href = event.link.href
        if not href:
            return None
        try:
            return self._normalize(href)
        except ValueError:
            # An href we cannot resolve (unsafe or malformed) cannot match a bind either.
            return None

    def _apply(self, op_id: str, event: EventLike) -> list[Resolution]:
        """One event for a pending operation -> its resolution (finishing it if terminal)."""
        kind = (event.type or "").lower()
        resource = event.resource
        state = state_of(resource)
        if kind != "completed":
            return [Progress(op_id, event, state)]

        resolution: Resolution
        status = (event.status or "").strip().lower()
        if status == "success":
            resolution = Succeeded(op_id, event, resource)
        elif status == "failure":
            resolution = Failed(op_id, event, event.reason)
        elif resource is not None and state is not None and state.lower() in _SUCCESS_STATES:
            resolution = Succeeded(op_id, event, resource)
        elif (
            resource is not None and state is not None and state.lower() not in (_UNDECIDED_STATES)
        ) or event.reason is not None:
            # A reason block is what an event carries "for failed operations"
            # (EventChannelDetails.md): with no Success, it says how it ended.
            resolution = Failed(op_id, event, event.reason)
        else:
            op = self._pending[op_id]
            href = op.href if op.href is not None else (event.link.href or None)
            resolution = NeedsLookup(op_id, href, event)
        self.finish(op_id)
        return [resolution]

    def _replay(self, op_id: str, key: str) -> list[Resolution]:
        resolutions: list[Resolution] = []
        for event in self._take_orphans(key):
            if op_id not in self._pending:
                break  # finished by an earlier orphan: the rest are duplicates
            resolutions.extend(self._apply(op_id, event))
        return resolutions

    def _take_orphans(self, key: str) -> list[EventLike]:
        taken = [seq for seq, orphan in self._orphans.items() if orphan.key == key]
        return [self._orphans.pop(seq).event for seq in taken]

    def _add_orphan(self, key: str, event: EventLike) -> None:
        if self._orphan_limit == 0:
            return
        while len(self._orphans) >= self._orphan_limit:
            self._orphans.popitem(last=False)
        self._orphan_seq += 1
        self._orphans[self._orphan_seq] = _Orphan(self._clock(), key, event)

    def _expire_orphans(self) -> None:
        if not self._orphans:
            return
        deadline = self._clock() - self._orphan_ttl
        while self._orphans:
            seq, orphan = next(iter(self._orphans.items()))
            if orphan.at >= deadline:
                break
            del self._orphans[seq]

    def _remember_finished_op(self, operation_id: str) -> None:
        _remember(self._finished_ops, operation_id, self._finished_limit)

    def _remember_finished_key(self, key: str) -> None:
        _remember(self._finished_keys, key, self._finished_limit)


def _remember(memory: OrderedDict[str, None], item: str, limit: int) -> None:
    memory[item] = None
    memory.move_to_end(item)
    while len(memory) > limit:
        memory.popitem(last=False)
