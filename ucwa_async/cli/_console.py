"""Where the command's output goes: colour only for people, and a closed pipe is no error.

Colour (outcomes green / yellow / red) comes from ``rich`` when it is installed (the
``cli`` extra) and stdout is a terminal; ``NO_COLOR`` turns it off, ``FORCE_COLOR`` on
(rich reads both). Without ``rich``, the real-server commands print plain text.

``ucwa-async demo | head``: once the reader has gone, output is dropped (stdout is
pointed at the null device) and the command ends with its own exit status.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["OK", "PROBLEM", "WARN", "make_console", "say", "silence_stdout"]

OK = "green"
WARN = "yellow"
PROBLEM = "bold red"


def silence_stdout() -> None:
    """The reader of our stdout has gone: drop the rest (and the final flush) quietly."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def make_console(stream: TextIO | None = None) -> Console:
    """A rich console that prints text as it is: no markup, no highlighting, no wrapping
    of plain lines (``[messaging]`` must not be eaten as a style tag)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich's default exits with status 1; a closed pipe is not a failure.
            self.quiet = True
            silence_stdout()

    return _Console(file=stream or sys.stdout, markup=False, highlight=False, emoji=False)


_consoles: dict[int, Any] = {}  # id(sys.stdout) -> its rich console, or False without rich


def say(text: str, style: str | None = None) -> None:
    """One line on stdout, in ``style`` when colour is on (and ``rich`` is installed)."""
    console: Any = _consoles.get(id(sys.stdout))
    if console is None:
        try:
            console = make_console()
        except ImportError:
            console = False
        _consoles.clear()  # one stdout at a time (tests swap it)
        _consoles[id(sys.stdout)] = console
    if console is False:
        print(text, flush=True)
    else:
        console.print(text, style=style, soft_wrap=True)
