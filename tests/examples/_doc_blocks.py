"""The Python code blocks of README.md and docs/*.md, and how each one is run.

A block says how it runs with an HTML comment (invisible on the rendered page) on the
line before its fence::

    <!-- doc-test: session -->        (the default, no comment needed)
    <!-- doc-test: session SETUP -->  the same, with more in the namespace (below)
    <!-- doc-test: script -->         a whole script: main(discovery_url, user, password)
    <!-- doc-test: file NAME -->      a file of the page's scratch pytest project
    <!-- doc-test: bot [NAME] -->     a bot that echoes IMs, run as a task (below)

``session`` runs the block with top-level ``await`` in a namespace where ``sim`` (a
running simulator), ``discovery_url``, ``user``, ``password``, an open ``session``, a
pending ``invitation``, ``log``, ``ucwa_async``, ``asyncio``, ``logging`` and ``pytest``
are defined. Its SETUPs, each with an IM that Lene Aaling (``sip:lenea@contoso.com``,
who echoes) sent to the session:

- ``incoming``: the IM waits in the session's inbox; the block reads it as ``invite``;
- ``invite``: ``invite`` is that IM's ``IncomingInvitation``, not yet answered;
- ``conversation``: ``conversation`` is the accepted, live ``Conversation``.

``bot`` runs a block that serves IMs forever: ``NAME(discovery_url, user, password)`` of
the block, or the block itself with ``url`` and ``auth`` defined. The test sends it an IM
and waits for the echo; then a bot whose code calls ``.leave()`` must leave the
conversation, any other must echo a second message in it. Then it is cancelled and must
stop cleanly (its ``async with Session`` closes everything).
There is no compile-only mode: every Python block runs against the simulator.
Fenced blocks of other languages (``sh``, ``text``) are not Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODES = ("session", "script", "file", "bot")
SESSION_SETUPS = ("incoming", "invite", "conversation")

_BLOCK = re.compile(
    r"(?:^<!-- doc-test: (?P<mode>[\w-]+)(?: (?P<arg>\S+))? -->\n)?^```python\n(?P<code>.*?)^```",
    re.S | re.M,
)


@dataclass(frozen=True)
class DocBlock:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    mode: str
    arg: str | None
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path) -> list[DocBlock]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        fence = match.start("code") - len("```python\n")
        found.append(
            DocBlock(
                page=page.relative_to(ROOT).as_posix(),
                line=text.count("\n", 0, fence) + 1,
                mode=match["mode"] or "session",
                arg=match["arg"],
                code=match["code"],
            )
        )
    return found


def all_blocks() -> list[DocBlock]:
    return [block for page in pages() for block in blocks(page)]
