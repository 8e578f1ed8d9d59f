"""``MessageLog``: a conversation's incoming messages, exactly once, in server order.

Sans-IO. Messages are identified by their href (normalised by the caller): a message
seen twice (``started`` then ``completed``, a resync re-delivery) is logged once. A
message announced without its body (a link-only event) reserves its place; the
messages after it are held until it is filled in (or given up), so server order holds
even when a body must be fetched.

Overflow policy (bounded memory): the log keeps the newest ``max_messages`` released
messages; when full, the oldest is evicted, counted in ``dropped`` if an open reader
(or, none being open, the next reader) had not read it. A reader whose next message
was evicted skips to the oldest kept one and counts what it skipped in ``missed``. At
most ``max_pending`` placeholders wait for a body: past that, the oldest is given up
(counted in ``dropped``). The set of hrefs already seen is bounded too
(``seen_limit``, oldest forgotten first).
"""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

__all__ = ["MessageLog", "Reader"]

T = TypeVar("T")
_WAITING = object()  # a placeholder's value until its body arrives


class Reader:
    """One reader's place in a :class:`MessageLog`."""

    __slots__ = ("closed", "missed", "next_seq")

    def __init__(self, next_seq: int) -> None:
        self.next_seq = next_seq
        self.missed = 0
        self.closed = False


class MessageLog(Generic[T]):
    """Released messages with sequence numbers; placeholders keep server order."""

    def __init__(
        self, *, max_messages: int = 1000, max_pending: int = 100, seen_limit: int = 4096
    ) -> None:
        if max_messages < 1 or max_pending < 1 or seen_limit < 1:
            raise ValueError("max_messages, max_pending and seen_limit must be >= 1")
        self._max = max_messages
        self._max_pending = max_pending
        self._seen_limit = seen_limit
        self._released: collections.deque[T] = collections.deque()
        self._first_seq = 0  # sequence number of _released[0]
        self._pending: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._watermark = 0  # where a new reader starts: what closed readers consumed
        self._readers: set[Reader] = set()
        self.dropped = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next released message gets."""
        return self._first_seq + len(self._released)

    def __len__(self) -> int:
        return len(self._released)

    @property
    def unread(self) -> int:
        """Released messages the next reader would get (none consumed by a closed one)."""
        return self.next_seq - max(self._watermark, self._first_seq)

    @property
    def holding(self) -> bool:
        """True while a placeholder waits for its body (and holds what came after it)."""
        return bool(self._pending)

    def seen(self, key: str) -> bool:
        """True if ``key`` was logged, reserved or given up."""
        return key in self._seen

    def add(self, key: str, message: T) -> bool:
        """Log a message (fills its placeholder if it had one); False if already seen."""
        if key in self._pending:
            if self._pending[key] is _WAITING:
                self._pending[key] = message
                self._flush()
                return True
            return False
        if key in self._seen:
            return False
        self._remember(key)
        if self._pending:
            self._pending[key] = message  # behind a placeholder: wait for it
        else:
            self._release(message)
        return True

    def reserve(self, key: str) -> bool:
        """Hold a place for a message whose body is not known yet; False if seen."""
        if key in self._seen:
            return False
        self._remember(key)
        self._pending[key] = _WAITING
        while sum(1 for v in self._pending.values() if v is _WAITING) > self._max_pending:
            oldest = next(k for k, v in self._pending.items() if v is _WAITING)
            del self._pending[oldest]
            self.dropped += 1
            self._flush()
        return True

    def give_up(self, key: str) -> None:
        """A placeholder whose body cannot be had: drop it (counted in ``dropped``) and
        release what waited behind it."""
        if self._pending.get(key, None) is _WAITING:
            del self._pending[key]
            self.dropped += 1
            self._flush()

    def ignore(self, key: str) -> None:
        """Not a message for this log (an outgoing one, or one already known another
        way): remember it as seen, drop its placeholder if any, uncounted."""
        self._remember(key)
        if self._pending.get(key, None) is _WAITING:
            del self._pending[key]
            self._flush()

    def hand_over(self) -> None:
        """The messages still awaited will be logged elsewhere (the conversation was
        opened again as a new state): drop every placeholder, uncounted, and release
        what waited behind them."""
        for key in [k for k, v in self._pending.items() if v is _WAITING]:
            del self._pending[key]
        self._flush()

    def open_reader(self) -> Reader:
        """A reader from the oldest message no closed reader has consumed."""
        reader = Reader(self._watermark)
        self._readers.add(reader)
        return reader

    def close_reader(self, reader: Reader) -> None:
        if not reader.closed:
            reader.closed = True
            self._readers.discard(reader)
            self._watermark = max(self._watermark, reader.next_seq)

    def read(self, reader: Reader) -> list[T]:
        """Every message ``reader`` has not read yet (advancing it)."""
        if reader.next_seq < self._first_seq:
            gap = self._first_seq - reader.next_seq
            reader.missed += gap
            reader.next_seq = self._first_seq
        start = reader.next_seq - self._first_seq
        out = [self._released[i] for i in range(start, len(self._released))]
        reader.next_seq = self.next_seq
        return out

    def _flush(self) -> None:
        while self._pending:
            key, value = next(iter(self._pending.items()))
            if value is _WAITING:
                return
            del self._pending[key]
            self._release(value)  # type: ignore[arg-type]

    def _release(self, message: T) -> None:
        self._released.append(message)
        if len(self._released) > self._max:
            self._released.popleft()
            evicted = self._first_seq
            self._first_seq += 1
            # Lost for somebody: an open reader that had not read it, or (no reader
            # open) the next reader to come.
            # A snapshot: a stream dropped without close() leaves the set from its
            # finalizer, which the cyclic collector may run during this very walk.
            cursors = [r.next_seq for r in tuple(self._readers)] or [self._watermark]
            if min(cursors) <= evicted:
                self.dropped += 1

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        while len(self._seen) > self._seen_limit:
            self._seen.popitem(last=False)
