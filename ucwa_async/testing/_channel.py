"""One application's event channel: ack/next sequencing, retention, the pending P-GET.

Sequencing **[our rule, as the protocol doc describes]**: batch ``N`` is what a
P-GET with ``ack=N`` receives; its ``next`` link is ``ack=N+1``. Following
``ack=N+1`` acknowledges every batch before it; until then batch ``N`` is kept and
a P-GET with ``ack=N`` gets it again, unchanged. An ``ack`` outside the retained
window answers a ``resync`` link to the oldest retained (or next) batch. An empty
(timeout) answer forms no batch, so its ``next`` repeats its own ``ack``.

Waiting uses one future per pending P-GET, woken by ``push`` (no polling), and at
most one P-GET is pending: a newer one releases the older with 409 PGetReplaced.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ucwa_async.testing._render import Ev
    from ucwa_async.testing._state import Invitation

__all__ = ["ChannelEvent", "Emitted", "EventChannel", "SimEvent", "Wake"]

Wake = Literal["events", "timeout", "replaced", "gone", "shutdown"]


@dataclass(slots=True)
class SimEvent:
    """An event about an invitation, frozen at the state it had when emitted."""

    type: str  # started | updated | completed
    invitation: Invitation
    state: str


@dataclass(slots=True)
class Emitted:
    """An event rendered when emitted (hrefs styled, resource frozen): conversations,
    participants, messaging, messages. ``sender`` is the (rel, styled href) it comes from."""

    sender: tuple[str, str]
    event: Ev


ChannelEvent = SimEvent | Emitted


class EventChannel:
    __slots__ = (
        "_formed_waiters",
        "batches",
        "last_pget_end",
        "low",
        "next_seq",
        "pending",
        "waiter",
    )

    def __init__(self) -> None:
        self.pending: list[ChannelEvent] = []
        self.batches: dict[int, list[ChannelEvent]] = {}
        self.low = 1
        self.next_seq = 1
        self.waiter: asyncio.Future[Wake] | None = None
        self.last_pget_end = float("-inf")
        self._formed_waiters: list[asyncio.Future[None]] = []

    @property
    def pget_pending(self) -> bool:
        return self.waiter is not None and not self.waiter.done()

    def alive(self, now: float, grace: float) -> bool:
        """A P-GET is pending, or one ended within ``grace`` seconds.

        A P-GET counts until its handler has finished (``waiter`` is cleared in
        the same step that stamps ``last_pget_end``): between ``wake()`` and that
        step the waiter is already done, and checking only ``pget_pending`` there
        refused POSTs with a false CallbackChannelError.
        """
        return self.waiter is not None or now - self.last_pget_end < grace

    def wake(self, why: Wake) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(why)

    def push(self, events: list[ChannelEvent]) -> None:
        self.pending.extend(events)
        self.wake("events")

    def classify(self, ack: int) -> Literal["resync", "redeliver", "new"]:
        """What a P-GET with ``ack`` gets; acknowledges every batch before ``ack``."""
        if ack < self.low or ack > self.next_seq:
            return "resync"
        for seq in range(self.low, ack):
            self.batches.pop(seq, None)
        self.low = ack
        return "redeliver" if ack in self.batches else "new"

    def form(self, ack: int, limit: int) -> list[ChannelEvent]:
        """Move up to ``limit`` pending events into batch ``ack`` (retained until acked)."""
        events = self.pending[:limit]
        del self.pending[:limit]
        self.batches[ack] = events
        self.next_seq = ack + 1
        if self._formed_waiters:
            waiters, self._formed_waiters = self._formed_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        return events

    def replace_batch(self, ack: int, events: list[ChannelEvent]) -> None:
        """Swap a just-formed batch's events (duplicate/reorder faults): redelivery repeats it."""
        self.batches[ack] = events

    def reset(self) -> None:
        """Forget every undelivered and unacknowledged event (a discarding resync)."""
        self.pending.clear()
        self.batches.clear()
        self.low = self.next_seq

    def formed_future(self) -> asyncio.Future[None]:
        """Resolves when the next batch is formed (used to send events before a 201)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._formed_waiters.append(fut)
        return fut

    def close(self, why: Wake) -> None:
        self.wake(why)
        for fut in self._formed_waiters:  # release a held 201: no batch will come now
            if not fut.done():
                fut.set_result(None)
        self._formed_waiters.clear()
