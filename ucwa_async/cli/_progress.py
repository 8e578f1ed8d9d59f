"""Counting invitation outcomes and showing them.

A rich live view on a terminal; plain, unwrapped lines when stdout is not a
terminal (a pipe, a file, CI). Nothing here touches the network.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ucwa_async.cli._console import OK, PROBLEM, WARN, make_console

__all__ = ["ProgressView", "Tally", "channel_table", "make_console", "summary_table"]

MODALITIES = ("messaging", "phoneAudio")
OUTCOMES = ("connected", "failed", "error")


class Tally:
    """What happened so far, by outcome and by modality."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (modality, outcome)
        self.reasons: Counter[str] = Counter()
        self.in_flight = 0
        """Accepted by the server (201), no outcome yet."""
        self.reconnecting = 0
        """``ChannelReconnecting`` signals seen."""
        self.reconnected = 0
        """``ChannelReconnected`` signals seen."""
        self.channel = "connected"
        self.started = time.monotonic()

    def accepted(self) -> None:
        self.in_flight += 1

    def record(
        self, modality: str, outcome: str, reason: str | None = None, *, was_accepted: bool
    ) -> None:
        if was_accepted:
            self.in_flight -= 1
        self.outcomes[(modality, outcome)] += 1
        if reason:
            self.reasons[reason] += 1

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.outcomes.items() if o == outcome)

    @property
    def ended(self) -> int:
        return sum(self.outcomes.values())

    @property
    def waiting(self) -> int:
        """Not yet accepted by the server."""
        return self.total - self.ended - self.in_flight

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        return (
            f"[{self.elapsed:5.1f} s] queued {self.waiting}, in progress {self.in_flight}, "
            f"connected {self.count('connected')}, failed {self.count('failed')}, "
            f"errors {self.count('error')} | channel {self.channel}, "
            f"reconnects {self.reconnecting}"
        )


class ProgressView:
    """A context manager that keeps the user informed while the demo runs.

    On a terminal: a live table redrawn in place, notes printed above it. Otherwise:
    notes and a status line (at most every ``interval`` seconds, and at the end).
    """

    def __init__(self, tally: Tally, console: Console, *, interval: float = 0.5) -> None:
        self.tally = tally
        self.console = console
        self.interval = interval
        self.live: Live | None = None
        self._last_plain = float("-inf")
        self._dirty = False

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal

    def __enter__(self) -> ProgressView:
        if self.interactive:
            self.live = Live(
                self._render(), console=self.console, refresh_per_second=8, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.update(self._render(), refresh=True)
            self.live.__exit__(exc_type, exc, tb)
            self.live = None
        elif self._dirty:
            self._plain_line()

    def note(self, text: str, style: str | None = WARN) -> None:
        """A one-off message (a fault armed, a channel reconnect) above the live view."""
        self.console.print(text, style=style, soft_wrap=True)
        self.changed()

    def changed(self, *, force: bool = False) -> None:
        if self.live is not None:
            self.live.update(self._render())
            return
        self._dirty = True
        if force or time.monotonic() - self._last_plain >= self.interval:
            self._plain_line()

    def _plain_line(self) -> None:
        self._last_plain = time.monotonic()
        self._dirty = False
        self.console.print(self.tally.line(), soft_wrap=True)

    def _render(self) -> Table:
        t = self.tally
        table = Table(title=f"ucwa-async demo — {t.elapsed:.1f} s", expand=False)
        styles = {"connected": OK, "failed": WARN, "errors": PROBLEM}
        columns = ("queued", "in progress", "connected", "failed", "errors", "channel")
        for column in (*columns, "reconnects"):
            table.add_column(column, justify="right", style=styles.get(column))
        table.add_row(
            str(t.waiting),
            str(t.in_flight),
            str(t.count("connected")),
            str(t.count("failed")),
            str(t.count("error")),
            t.channel,
            str(t.reconnecting),
        )
        return table


def summary_table(tally: Tally, *, wire: str) -> Table:
    """Invitations by modality and outcome; the ``all`` row adds up to ``total``."""
    table = Table(title=f"Invitations ({wire}, {tally.elapsed:.2f} s)")
    table.add_column("modality")
    styles = {"connected": OK, "failed": WARN, "errors": PROBLEM}
    for column in ("connected", "failed", "errors", "total"):
        table.add_column(column, justify="right", style=styles.get(column))
    for modality in MODALITIES:
        row = [tally.outcomes[(modality, o)] for o in OUTCOMES]
        table.add_row(modality, *(str(n) for n in row), str(sum(row)))
    all_rows = [tally.count(o) for o in OUTCOMES]
    table.add_row("all", *(str(n) for n in all_rows), str(sum(all_rows)), style="bold")
    return table


def channel_table(
    tally: Tally, *, post_retries: int, faults_fired: Mapping[str, int], dropped: int
) -> Table:
    """What the event channel went through, as the client and the server saw it."""
    table = Table(title="Event channel")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("ChannelReconnecting signals", str(tally.reconnecting))
    table.add_row("ChannelReconnected signals", str(tally.reconnected))
    table.add_row("POSTs retried after CallbackChannelError", str(post_retries))
    for kind in sorted(faults_fired):
        table.add_row(f"faults injected by the server: {kind}", str(faults_fired[kind]))
    if dropped:
        table.add_row("events dropped by the demo's slow subscriber", str(dropped))
    return table
