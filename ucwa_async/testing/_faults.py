"""Fault injection: scriptable from tests (``sim.faults``), deterministic with a seed.

A fault is *armed* for the next N matching requests and counted in
``sim.counters.faults_injected[kind]`` only when it actually fires, so a test can
assert that its client really met it. Requests are matched by *target* tags:

- ``any`` every request; ``get`` / ``post`` / ``delete`` by method;
- ``pget`` event-channel GETs; ``continue`` continueMessaging/continuePhoneAudio POSTs;
- ``applications`` application creation; ``application`` GET/DELETE of it;
- ``token``, ``user``, ``discovery``, ``makeMeAvailable``, ``reportMyActivity``,
  ``conversationLogs``, ``conversationLog``, ``invitation``, ``cancel``;
- conversations: ``startMessaging``, ``startPhoneAudio``, ``accept``, ``decline``,
  ``sendMessage``, ``setIsTyping``, ``stopMessaging``, ``stopPhoneAudio``,
  ``conversation`` (GET/DELETE) and ``conversationResource`` (its participants,
  messaging, phoneAudio, messages).

``message_delivery_failed`` is armed like a fault and counted under that name in
``faults_injected``, but it is not a :data:`FaultKind` (``random()`` and the soak's
every-kind-fires check are about invitations and the event channel; it needs messages).
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from ucwa_async.testing._config import Reason
from ucwa_async.testing._records import Counters

__all__ = [
    "ALL_FAULT_KINDS",
    "HOSTILE_FAULT_KINDS",
    "RANDOM_DEFAULT_KINDS",
    "Armed",
    "FaultInjector",
    "FaultKind",
]

FaultKind = Literal[
    "callback_channel_error",
    "conflict",
    "delete_application",
    "drop_pget",
    "duplicate_events",
    "events_before_201",
    "expire_tokens",
    "html_access_denied",
    "latency",
    "malformed_body",
    "reorder_events",
    "resync",
    "service_unavailable",
    "too_many_requests",
    "unauthorized_forever",
    "redirect_3xx",
    "late_answer",
    "instant_empty_polls",
    "resume_only",
    "endless_resync",
    "retry_after_zero",
    "retry_after_past",
    "not_found_forever",
    "giant_batch",
]
# Derived from the Literal so the two can never disagree.
ALL_FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
RANDOM_DEFAULT_KINDS: tuple[FaultKind, ...] = (
    "callback_channel_error",
    "drop_pget",
    "duplicate_events",
    "events_before_201",
    "expire_tokens",
    "malformed_body",
    "reorder_events",
    "resync",
    "service_unavailable",
    "too_many_requests",
)
"""What ``random()`` picks from by default: faults a correct client recovers from
without losing an invitation (no application deletion, no discarding resync, no
409s, no added latency)."""
HOSTILE_FAULT_KINDS: frozenset[FaultKind] = frozenset({"unauthorized_forever", "redirect_3xx"})
"""Pathologies a correct client must refuse or give up on (typed errors, bounded
requests), not recover from: a soak that expects every operation to end well
leaves them out."""

_COUNT_AS = {"latency_once": "latency"}
_RECONNECT_KINDS = frozenset({"callback_channel_error", "drop_pget", "resync"})
_DEFAULT_TARGET: dict[str, str] = {
    "callback_channel_error": "continue",
    "conflict": "continue",
    "drop_pget": "pget",
    "duplicate_events": "pget",
    "events_before_201": "continue",
    "html_access_denied": "applications",
    "late_answer": "continue",
    "malformed_body": "pget",
    "reorder_events": "pget",
    "resync": "pget",
    "service_unavailable": "any",
    "too_many_requests": "any",
    "unauthorized_forever": "pget",
    "redirect_3xx": "continue",
    "instant_empty_polls": "pget",
    "resume_only": "pget",
    "endless_resync": "pget",
    "retry_after_zero": "pget",
    "retry_after_past": "pget",
    "not_found_forever": "pget",
    "giant_batch": "pget",
}
FOREVER = 2**62
"""What ``next_n=None`` arms: every matching request until :meth:`FaultInjector.clear`."""


class _Hooks(Protocol):
    def expire_tokens(self) -> int: ...

    def delete_applications(self, app_id: str | None) -> int: ...


@dataclass(slots=True)
class Armed:
    """One armed fault: fires on the next ``remaining`` requests tagged ``target``."""

    kind: str
    remaining: int
    target: str
    retry_after: float | None = None
    subcode: str | None = None
    status: int = 0
    discard: bool = False
    size: int = 0
    malformed: bool = False
    reason: Reason | None = None


@dataclass(slots=True)
class _RandomPlan:
    rate: float
    kinds: tuple[FaultKind, ...]
    rng: _random.Random
    retry_after: float


class FaultInjector:
    """``sim.faults``: arm faults for the next requests; read what fired in ``sim.counters``."""

    def __init__(self, counters: Counters, hooks: _Hooks) -> None:
        self._counters = counters
        self._hooks = hooks
        self._armed: dict[str, list[Armed]] = {}
        self._latency: dict[str, float] = {}
        self._random: _RandomPlan | None = None

    # --- public: arm faults --------------------------------------------------------

    def callback_channel_error(self, next_n: int = 1, *, target: str = "continue") -> None:
        """Answer 500 ServiceFailure/CallbackChannelError to the next N continue POSTs
        (``target="makeMeAvailable"``, ``"sendMessage"``, ``"startMessaging"``,
        ``"accept"``... for those POSTs instead)."""
        self._arm(Armed("callback_channel_error", next_n, target))

    def message_delivery_failed(
        self,
        next_n: int = 1,
        *,
        code: str = "ServiceFailure",
        subcode: str | None = None,
        message: str | None = "The message could not be delivered.",
    ) -> None:
        """The next N sendMessage POSTs answer 201 as usual, but their message completes
        with status Failure and this reason (no reply from the remote person)."""
        reason = Reason(code, subcode, message)
        self._arm(Armed("message_delivery_failed", next_n, "sendMessage", reason=reason))

    def conflict(self, next_n: int = 1, *, subcode: str | None = "AlreadyExists") -> None:
        """Answer 409 Conflict (subcode AlreadyExists, TooManyGroups or None) to continue POSTs."""
        self._arm(Armed("conflict", next_n, "continue", subcode=subcode))

    def drop_pget(self, next_n: int = 1) -> None:
        """Close the connection of the next N P-GETs mid-poll, without an answer.

        A P-GET that had events formed them into a batch first: that batch is not
        acknowledged, so re-polling the same URL delivers it again. Note that
        aiohttp's client re-sends a dropped idempotent GET once by itself: use
        ``next_n=2`` for a drop an aiohttp-based client actually sees.
        """
        self._arm(Armed("drop_pget", next_n, "pget"))

    def service_unavailable(
        self, next_n: int = 1, *, retry_after: float | None = 1.0, target: str = "any"
    ) -> None:
        """Answer 503 ServiceUnavailable (with ``Retry-After`` unless None)."""
        self._arm(Armed("service_unavailable", next_n, target, retry_after=retry_after))

    def too_many_requests(
        self, next_n: int = 1, *, retry_after: float | None = 1.0, target: str = "any"
    ) -> None:
        """Answer 429 TooManyRequests (with ``Retry-After`` unless None)."""
        self._arm(Armed("too_many_requests", next_n, target, retry_after=retry_after))

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far: their next request answers 401."""
        self._counters.faults_injected["expire_tokens"] += 1
        self._hooks.expire_tokens()

    def duplicate_events(self, next_n: int = 1) -> None:
        """The next N non-empty batches carry each of their events twice."""
        self._arm(Armed("duplicate_events", next_n, "pget"))

    def reorder_events(self, next_n: int = 1) -> None:
        """The next N batches of two events or more carry them in reverse order."""
        self._arm(Armed("reorder_events", next_n, "pget"))

    def events_before_201(self, next_n: int = 1, *, target: str = "continue") -> None:
        """The next N continue POSTs hold their 201 until a P-GET has carried the
        invitation's events (bounded to 1 s when no P-GET comes). ``target="sendMessage"``
        (the message's events), ``"startMessaging"`` or ``"startPhoneAudio"`` likewise."""
        self._arm(Armed("events_before_201", next_n, target))

    def resync(self, *, discard_events: bool = False) -> None:
        """The next P-GET answers only a ``resync`` link. With ``discard_events`` the
        server also drops every undelivered and unacknowledged event (clients must
        re-read their invitations by GET)."""
        self._arm(Armed("resync", 1, "pget", discard=discard_events))

    def delete_application(self, app_id: str | None = None) -> int:
        """Delete one application (or all): pending P-GETs answer 404 ApplicationNotFound,
        and so does every later request to it. Returns how many were deleted."""
        deleted = self._hooks.delete_applications(app_id)
        if deleted:
            self._counters.faults_injected["delete_application"] += deleted
            self._counters.reconnect_faults += deleted
        return deleted

    def malformed_body(self, next_n: int = 1, *, target: str = "pget") -> None:
        """The next N successful responses with a body (matching target) are cut short:
        the right Content-Type, broken JSON/XML."""
        self._arm(Armed("malformed_body", next_n, target))

    def html_access_denied(self, next_n: int = 1, *, status: int = 403) -> None:
        """The next N application creations answer an HTML "Access is denied" page."""
        self._arm(Armed("html_access_denied", next_n, "applications", status=status))

    def latency(self, seconds: float, *, target: str = "any") -> None:
        """Delay every response matching target by ``seconds`` (0 removes it)."""
        if seconds > 0:
            self._latency[target] = seconds
        else:
            self._latency.pop(target, None)

    def random(
        self,
        rate: float = 0.1,
        *,
        kinds: Iterable[FaultKind] | None = None,
        seed: int = 0,
        retry_after: float = 0.0,
    ) -> None:
        """For a soak test: before each request, with probability ``rate`` arm one fault
        kind picked at random (deterministic for a given seed and request sequence).
        ``rate=0`` stops it. Defaults to :data:`RANDOM_DEFAULT_KINDS`."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        chosen = tuple(kinds) if kinds is not None else RANDOM_DEFAULT_KINDS
        unknown = set(chosen) - set(ALL_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if rate == 0.0 or not chosen:
            self._random = None
            return
        self._random = _RandomPlan(rate, chosen, _random.Random(seed), retry_after)

    def clear(self) -> None:
        """Disarm everything: armed faults, latency and random mode."""
        self._armed.clear()
        self._latency.clear()
        self._random = None

    @property
    def armed(self) -> dict[str, int]:
        """Fault kind -> how many more times it is armed to fire."""
        return {k: sum(a.remaining for a in v) for k, v in self._armed.items() if v}

    # --- internal: used by the request pipeline ------------------------------------

    def _arm(self, armed: Armed) -> None:
        if armed.remaining < 1:
            raise ValueError("next_n must be >= 1")
        self._armed.setdefault(armed.kind, []).append(armed)

    def take(self, kind: str, tags: frozenset[str]) -> Armed | None:
        """The armed fault of ``kind`` for a request with ``tags``, consumed and counted."""
        queue = self._armed.get(kind)
        if not queue:
            return None
        for i, armed in enumerate(queue):
            if armed.target in tags:
                armed.remaining -= 1
                if armed.remaining <= 0:
                    del queue[i]
                self._counters.faults_injected[_COUNT_AS.get(kind, kind)] += 1
                if kind in _RECONNECT_KINDS:
                    self._counters.reconnect_faults += 1
                return armed
        return None

    def has(self, kind: str) -> bool:
        return bool(self._armed.get(kind))

    def latency_for(self, tags: frozenset[str]) -> float:
        if not self._latency:
            return 0.0
        return max((s for t, s in self._latency.items() if t in tags), default=0.0)

    def roll(self) -> None:
        """Random mode: maybe arm one fault before a request is handled."""
        plan = self._random
        if plan is None or plan.rng.random() >= plan.rate:
            return
        kind = plan.rng.choice(plan.kinds)
        if kind == "expire_tokens":
            self.expire_tokens()
        elif kind == "delete_application":
            self.delete_application()
        elif kind == "latency":
            # A one-off delay stands in for "latency" in random mode.
            self._arm(Armed("latency_once", 1, "any", retry_after=plan.retry_after or 0.05))
        elif not self.has(kind):  # one armed at a time per kind keeps the queue bounded
            self._arm(
                Armed(
                    kind,
                    1,
                    _DEFAULT_TARGET[kind],
                    retry_after=plan.retry_after,
                    subcode="AlreadyExists",
                    status=403,
                )
            )

    # --- appended fault kinds (hardening, issue 11) ---------------------------------

    def unauthorized_forever(
        self, *, target: str = "pget", next_n: int | None = None, html: bool = False
    ) -> None:
        """Answer every request tagged ``target`` (default: the P-GET) with 401 and the
        MsRtcOAuth challenge, whatever its token, while the token endpoint keeps
        granting: a client that re-authenticates without a budget sprays passwords.
        With ``html``, the 401 is a front proxy's instead: an HTML "Access is denied"
        page and no challenge (a password grant cannot help). Forever (until
        :meth:`clear`) unless ``next_n`` is given. Each 401 is counted in
        ``faults_injected["unauthorized_forever"]`` (and ``token_rejections``)."""
        remaining = _count(next_n)
        # The variant rides in ``subcode`` ("html"): Armed is shared by every kind.
        self._arm(
            Armed("unauthorized_forever", remaining, target, subcode="html" if html else None)
        )

    def redirect_3xx(self, next_n: int = 1, *, target: str = "continue", status: int = 302) -> None:
        """Answer the next N requests tagged ``target`` with ``status`` (302) and a
        ``Location`` to an HTML sign-in page, as a front proxy whose session expired
        does. The request is not handled (a continue POST starts no invitation).
        Redirects are never followed: a client must raise, not take the page for a
        success. Counted in ``faults_injected["redirect_3xx"]``."""
        if not 300 <= status < 400:
            raise ValueError("status must be a 3xx")
        self._arm(Armed("redirect_3xx", next_n, target, status=status))

    def late_answer(
        self, seconds: float, next_n: int = 1, *, target: str = "continue", drop: bool = False
    ) -> None:
        """The next N requests matching target are handled at once (a continue POST
        creates its invitation, whose events start) but answered ``seconds`` later:
        the server acted, the client does not know yet. ``latency`` delays before.
        ``drop``: never answered; the connection is closed after ``seconds`` instead
        (the server acted, and its answer is lost)."""
        if not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        self._arm(Armed("late_answer", next_n, target, retry_after=seconds, discard=drop))

    # --- pathological servers: the event channel (P-GET) ----------------------------
    # One-shot by default like every kind (the soak arms each once); next_n=None arms
    # every matching P-GET until clear(): the pathological servers of issue 11.

    def instant_empty_polls(self, next_n: int | None = 1) -> None:
        """Answer the next N P-GETs at once with an empty batch (a ``next`` link, no
        events) instead of holding them; pending events are still delivered."""
        self._arm(Armed("instant_empty_polls", _count(next_n), "pget"))

    def resume_only(self, next_n: int | None = 1) -> None:
        """Answer the next N P-GETs at once with only a ``resume`` link (same ack)."""
        self._arm(Armed("resume_only", _count(next_n), "pget"))

    def endless_resync(self, next_n: int | None = 1) -> None:
        """Answer the next N P-GETs (None: every one) with only a ``resync`` link,
        nothing discarded."""
        self._arm(Armed("endless_resync", _count(next_n), "pget"))

    def retry_after_zero(self, next_n: int | None = 1) -> None:
        """Answer the next N P-GETs 503 ServiceUnavailable with ``Retry-After: 0``."""
        self._arm(Armed("retry_after_zero", _count(next_n), "pget", retry_after=0.0))

    def retry_after_past(self, next_n: int | None = 1) -> None:
        """Answer the next N P-GETs 503 ServiceUnavailable with a ``Retry-After``
        HTTP-date in the past."""
        self._arm(Armed("retry_after_past", _count(next_n), "pget"))

    def not_found_forever(self, next_n: int | None = 1) -> None:
        """Answer the next N P-GETs (None: every one) 404 ApplicationNotFound, whatever
        the application (it is not deleted: DELETE and other requests still work)."""
        self._arm(Armed("not_found_forever", _count(next_n), "pget"))

    def giant_batch(self, events: int = 10_000, *, malformed: bool = False) -> None:
        """Answer the next P-GET at once with one batch of ``events`` resource events
        (``added`` conversation events), or of malformed events (JSON: ``0``; XML: an
        event element without a link). Its ``next`` link repeats the ack."""
        if events < 1:
            raise ValueError("events must be >= 1")
        self._arm(Armed("giant_batch", 1, "pget", size=events, malformed=malformed))


def _count(next_n: int | None) -> int:
    return FOREVER if next_n is None else next_n
