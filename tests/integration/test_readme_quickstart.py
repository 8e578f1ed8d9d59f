"""The README's quickstart, run verbatim against the simulator (in both wires)."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import SimulatorConfig, UcwaSimulator

README = Path(__file__).resolve().parents[2] / "README.md"


def _first_python_block() -> str:
    match = re.search(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    assert match is not None, "README.md has no ```python block"
    return match.group(1)


def _as_module(source: str) -> types.ModuleType:
    module = types.ModuleType("readme_quickstart")
    module.__file__ = str(README)
    # Executed as an imported module: its `if __name__ == "__main__":` guard stays shut.
    exec(compile(source, str(README), "exec"), module.__dict__)
    return module


def test_quickstart_block_is_what_we_expect() -> None:
    source = _first_python_block()
    assert "async def main(discovery_url: str, user: str, password: str)" in source
    assert 'if __name__ == "__main__":' in source
    assert 'wire_format="json"' in source


async def test_readme_quickstart_runs_against_simulator(
    wire_format: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _first_python_block()
    module = _as_module(source)
    assert callable(module.main)
    capsys.readouterr()  # nothing printed at import time
    opened: list[ucwa_async.Session] = []
    real_session = ucwa_async.Session

    class RecordingSession(real_session):  # type: ignore[misc,valid-type]
        """The real Session; records itself. For the XML run, switches the wire."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if wire_format != "json":
                # The README hard-codes json ("# or "xml""); take the other branch of
                # its own comment without editing the text under test.
                kwargs["wire_format"] = wire_format
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(ucwa_async, "Session", RecordingSession)
    async with UcwaSimulator(config=SimulatorConfig(completion_delay=0.01)) as sim:
        await module.main(sim.discovery_url, sim.username, sim.password)
        assert len(opened) == 1
        session = opened[0]
        assert session.wire_format == wire_format
        assert session.closed
        assert sim.application_ids == []  # the `async with` deleted its application
        continues = [r for r in sim.request_log if r.kind == "continue"]
        assert [(r.path.rsplit("/", 1)[-1], r.status) for r in continues] == [
            ("continueMessaging", 201),
            ("continuePhoneAudio", 201),
        ]
        assert sim.counters.invitations_by_state["Connected"] == 2
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("connected: ")
    assert "/communication/invitations/" in lines[0]
    assert lines[0].endswith(" Connected")
    assert "not connected" not in out
    assert "did not connect" not in out


async def test_readme_quickstart_reports_failures(
    wire_format: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every invitation declined: the quickstart's except branches print the reasons.
    module = _as_module(_first_python_block())
    real_session = ucwa_async.Session

    class WireSession(real_session):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["wire_format"] = wire_format
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ucwa_async, "Session", WireSession)
    config = SimulatorConfig(completion_delay=0.01, fail_rate=1.0)
    async with UcwaSimulator(config=config) as sim:
        await module.main(sim.discovery_url, sim.username, sim.password)
    out = capsys.readouterr().out
    assert "not connected: " in out
    assert "Declined" in out
    assert "call did not connect: " in out
    assert "connected: /" not in out
