"""``python -m benchmarks [--quick] [--output DIR] [--only SECTION ...]``.

Runs the four sections in one process (each contender against its own fresh
simulator process), prints every figure and the ratios, and writes
``DIR/BENCHMARKS.md`` (the table, then ``benchmarks/notes.md``) and
``DIR/BENCHMARKS.json`` (raw figures + machine info). ``--quick`` is a CI smoke
test (< 30 s): small N, one round; its figures are not meant to be compared.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    conversations,
    reconnect,
    report,
    responsiveness,
    scale,
    scaleout,
    throughput,
    wirecost,
)

SECTIONS = (
    "throughput",
    "scale",
    "responsiveness",
    "wire",
    "reconnect",
    "scaleout",
    "conversations",
)
_ROOT = Path(__file__).resolve().parent.parent
_NOTES = Path(__file__).resolve().parent / "notes.md"

FULL = {
    "total": 2000,
    "concurrency": 200,
    "sync_total_0": 500,
    "sync_total_50": 100,
    "rounds": 9,
    "scale_total": 10_000,
    "scale_concurrency": 50,
    "wire_repeat": 7,
    "wire_number": 20,
    "reconnect_rounds": 20,
    "giant_events": 60_000,
    "sessions": 100,
    "idle_window_ms": 5000,
    "conversations": 200,
    "conversation_messages": 10,
    "conversation_rounds": 11,
}
QUICK = {
    "total": 200,
    "concurrency": 50,
    "sync_total_0": 50,
    "sync_total_50": 10,
    "rounds": 1,
    "scale_total": 500,
    "scale_concurrency": 50,
    "wire_repeat": 3,
    "wire_number": 3,
    "reconnect_rounds": 2,
    "giant_events": 5_000,
    "sessions": 5,
    "idle_window_ms": 1000,
    "conversations": 40,
    "conversation_messages": 3,
    "conversation_rounds": 1,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI smoke test: small N, < 30 s")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where BENCHMARKS.md/.json go (default: the checkout for a full run, a new"
        " temporary directory for --quick, so smoke figures never replace the committed ones)",
    )
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("-n", "--invitations", type=int, help="throughput N (default 2000)")
    p.add_argument("-c", "--concurrency", type=int, help="throughput C (default 200)")
    p.add_argument("--rounds", type=int, help="throughput rounds per contender (default 9)")
    p.add_argument("--pending", type=int, help="scale: invitations pending (default 10000)")
    return p


def _output_dir(requested: Path | None, *, quick: bool) -> Path:
    """Only a full run regenerates the committed BENCHMARKS.md/.json by default."""
    if requested is not None:
        return requested
    if quick:
        return Path(tempfile.mkdtemp(prefix="ucwa-benchmarks-quick-"))
    return _ROOT


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on this platform
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    output = _output_dir(args.output, quick=args.quick)
    logging.basicConfig(level=logging.ERROR)  # the reconnect section logs warnings by design
    cfg = dict(QUICK if args.quick else FULL)
    for key, value in (
        ("total", args.invitations),
        ("concurrency", args.concurrency),
        ("rounds", args.rounds),
        ("scale_total", args.pending),
    ):
        if value is not None:
            cfg[key] = value
    figures: dict[str, Any] = {"quick": args.quick, "config": cfg, "load_start": _loadavg()}
    started = time.perf_counter()
    if "throughput" in args.only:
        figures["throughput"] = []
        for latency, sync_total in ((0.0, cfg["sync_total_0"]), (0.05, cfg["sync_total_50"])):
            print(
                f"throughput: {cfg['total']} invitations at concurrency {cfg['concurrency']},"
                f" latency {latency * 1000:.0f} ms (sync client: {sync_total})",
                flush=True,
            )
            figures["throughput"].append(
                throughput.measure(
                    latency=latency,
                    total=cfg["total"],
                    concurrency=cfg["concurrency"],
                    sync_total=sync_total,
                    rounds=cfg["rounds"],
                    log=lambda line: print(line, flush=True),
                )
            )
    if "scale" in args.only:
        print(f"scale: {cfg['scale_total']} pending invitations", flush=True)
        figures["scale"] = scale.measure(
            total=cfg["scale_total"], concurrency=cfg["scale_concurrency"]
        )
        s = figures["scale"]
        print(
            f"  {s['bytes_per_invitation']:.0f} bytes per pending invitation;"
            f" dispatch from receipt {s['dispatch_ms_from_receipt']}",
            flush=True,
        )
    if "responsiveness" in args.only:
        print(f"responsiveness: one batch of {cfg['giant_events']} events", flush=True)
        figures["responsiveness"] = responsiveness.measure(events=cfg["giant_events"])
        print(f"  heartbeat {figures['responsiveness']['heartbeat']}", flush=True)
    if "wire" in args.only:
        print("wire: one 500-event batch, JSON vs XML", flush=True)
        figures["wire"] = wirecost.measure(repeat=cfg["wire_repeat"], number=cfg["wire_number"])
    if "reconnect" in args.only:
        print(f"reconnect: {cfg['reconnect_rounds']} CallbackChannelErrors", flush=True)
        figures["reconnect"] = reconnect.measure(rounds=cfg["reconnect_rounds"])
    if "scaleout" in args.only:
        print(f"scale-out: {cfg['sessions']} sessions in one process", flush=True)
        figures["scaleout"] = scaleout.measure(
            sessions=cfg["sessions"], idle_window=cfg["idle_window_ms"] / 1000
        )
        print(f"  {figures['scaleout']}", flush=True)
    if "conversations" in args.only:
        print(
            f"conversations: {cfg['conversations']} at once,"
            f" {cfg['conversation_messages']} messages each way",
            flush=True,
        )
        figures["conversations"] = conversations.measure(
            conversations=cfg["conversations"],
            messages=cfg["conversation_messages"],
            rounds=cfg["conversation_rounds"],
            log=lambda line: print(line, flush=True),
        )
        c = figures["conversations"]
        print(
            f"  ours / floor: {c['ratio_ours_floor']:.2f}x (ratio of medians),"
            f" {c['ratio_paired_median']:.2f}x (median of the rounds' ratios);"
            f" CPU per message {c['cpu_ratio_ours_floor']:.2f}x",
            flush=True,
        )
    figures["elapsed_s"] = time.perf_counter() - started
    figures["load_end"] = _loadavg()
    report.print_summary(figures)
    notes = _NOTES.read_text() if _NOTES.exists() else ""
    md, js = report.write(figures, output, notes)
    print(f"\nwrote {md} and {js} ({figures['elapsed_s']:.1f} s)")
    return 0
