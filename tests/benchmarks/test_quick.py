"""Smoke test of the benchmark suite: ``python -m benchmarks --quick`` runs end to end.

Not a timed test: it asserts only that the run succeeds and reports its ratios.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_benchmarks_print_and_write_ratios(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ratios:" in proc.stdout
    assert "throughput vs raw-aiohttp floor" in proc.stdout

    data = json.loads((tmp_path / "BENCHMARKS.json").read_text())
    assert data["machine"]["cpu_count"]
    ratios = {row["figure"]: row["ratio"] for row in data["rows"]}
    floor = [r for f, r in ratios.items() if f.startswith("throughput vs raw-aiohttp floor")]
    sync = [r for f, r in ratios.items() if f.startswith("throughput vs synchronous client")]
    xml = [r for f, r in ratios.items() if "XML vs JSON" in f]
    assert len(floor) == 2
    assert len(sync) == 2
    assert len(xml) == 2
    conversations = [r for f, r in ratios.items() if "messages each way (messages/s)" in f]
    assert len(conversations) == 1
    assert all(isinstance(r, float) and r > 0 for r in floor + sync + xml + conversations)
    # Each heartbeat window reports the collector's passes beside its lateness.
    gc_rows = [row for row in data["rows"] if row["figure"].startswith("garbage-collector passes")]
    assert len(gc_rows) == 2
    table = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| figure | ours | floor / peer | ratio | target | met? |" in table


def test_quick_run_defaults_to_a_temporary_directory(tmp_path: Path) -> None:
    # In a subprocess: here ``benchmarks`` is this test package, not the suite.
    probe = (
        "import sys; from pathlib import Path; from benchmarks import cli;"
        "print(cli._output_dir(None, quick=True)); print(cli._output_dir(None, quick=False));"
        "print(cli._output_dir(Path(sys.argv[1]), quick=True))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    quick, full, explicit = (Path(line) for line in proc.stdout.split())
    try:
        assert quick.is_dir()
        assert not quick.resolve().is_relative_to(ROOT.resolve())
    finally:
        quick.rmdir()
    assert full.resolve() == ROOT.resolve()
    assert explicit == tmp_path


def test_heartbeat_records_the_collector_passes_of_its_window_only() -> None:
    # In a subprocess, as above. A full pass forced inside the window is recorded; one
    # after it is not (the callback is removed on exit).
    probe = (
        "import asyncio, gc; from benchmarks.heartbeat import Heartbeat\n"
        "async def main():\n"
        "    async with Heartbeat() as beat:\n"
        "        await asyncio.sleep(0.01)\n"
        "        gc.collect()\n"
        "        await asyncio.sleep(0.01)\n"
        "    gc.collect()\n"
        "    s = beat.summary()\n"
        "    print(s['gc_passes'][2], beat._on_gc in gc.callbacks)\n"
        "    print(s['gc_counts_at_end'] is not None)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1", "False", "True"]
