"""Docs point only at files that are in the repository (issue 14: docs/architecture.md
linked ``../shared/design.md``, which is not)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PATH_IN_CODE = re.compile(r"`(\.\./[^`\s]+|(?:ucwa_async|tests|examples|docs)/[^`\s*]+\.\w+)`")


def test_relative_links_and_quoted_paths_exist() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        targets = [t for t in _LINK.findall(text) if "://" not in t and not t.startswith("#")]
        for target in targets:
            if not (doc.parent / target.split("#", 1)[0]).exists():
                missing.append(f"{doc.name}: ({target})")
        for path in _PATH_IN_CODE.findall(text):
            base = doc.parent if path.startswith("..") else ROOT
            if not (base / path).exists():
                missing.append(f"{doc.name}: `{path}`")
    assert missing == []
