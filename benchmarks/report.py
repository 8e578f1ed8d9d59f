"""Turn the raw figures into the table of BENCHMARKS.md and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

TARGETS = {
    "ours_floor": 0.8,
    "ours_floor_50": 0.9,
    "ours_sync_50": 50.0,
    "bytes_per_invitation": 1024.0,
    "dispatch_p50_ms": 1.0,
    "dispatch_p99_ms": 10.0,
    "xml_json": 2.0,
    "client_floor": 2.0,
    "heartbeat_p99_ms": 5.0,
    "heartbeat_max_ms": 20.0,
    "reconnect_ms": 20.0,
}


def machine() -> dict[str, Any]:
    versions = {}
    for dist in ("ucwa_async", "aiohttp", "yarl", "attrs", "cattrs", "xmltodict"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "versions": versions,
    }


def rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """(figure, ours, floor/peer, ratio, target, met) for every measured figure."""
    out: list[dict[str, Any]] = []

    def add(
        figure: str, ours: str, peer: str, ratio: float | None, target: str, met: bool | None
    ) -> None:
        out.append(
            {
                "figure": figure,
                "ours": ours,
                "peer": peer,
                "ratio": None if ratio is None else round(ratio, 3),
                "target": target,
                "met": met,
            }
        )

    for t in figures.get("throughput", []):
        lat = f"{t['latency_ms']:.0f} ms"
        ps = t["per_second"]
        is_50 = t["latency_ms"] >= 50
        floor_target = TARGETS["ours_floor_50" if is_50 else "ours_floor"]
        spread = t.get("spread", {})

        def cell(name: str, ps: dict[str, float] = ps, spread: dict[str, Any] = spread) -> str:
            low_high = spread.get(name)
            if low_high is None:
                return f"{ps[name]:.0f}"
            return f"{ps[name]:.0f} ({low_high[0]:.0f}-{low_high[1]:.0f})"

        add(
            f"throughput vs raw-aiohttp floor, {lat} (inv/s; median (min-max) of"
            f" {t['rounds']} rounds)",
            cell("ours"),
            cell("floor"),
            t["ratio_ours_floor"],
            f">= {floor_target}x",
            t["ratio_ours_floor"] >= floor_target,
        )
        add(
            f"throughput vs synchronous client, {lat} (inv/s)",
            f"{ps['ours']:.0f}",
            f"{ps['sync']:.1f}" + (f" ({t['sync_invitations']} inv, rate)" if is_50 else ""),
            t["ratio_ours_sync"],
            ">= 50x" if is_50 else "-",
            t["ratio_ours_sync"] >= TARGETS["ours_sync_50"] if is_50 else None,
        )
    scale = figures.get("scale")
    if scale:
        n = scale["pending"]
        bpi = scale["bytes_per_invitation"]
        add(
            f"client memory per pending invitation, {n} pending (bytes)",
            f"{bpi:.0f}",
            "-",
            None,
            "<= 1024",
            bpi <= TARGETS["bytes_per_invitation"],
        )
        _heartbeat_rows(add, scale.get("heartbeat"), f"{n} released in 500-event batches")
        for source, label in (("from_receipt", "batch received"), ("from_deliver", "deliver()")):
            d = scale[f"dispatch_ms_{source}"]
            if not d.get("count"):
                continue
            add(
                f"dispatch p50, {label} -> future done, {n} released (ms)",
                f"{d['p50']:.2f}",
                "-",
                None,
                "< 1 ms",
                d["p50"] < TARGETS["dispatch_p50_ms"],
            )
            add(
                f"dispatch p99, {label} -> future done, {n} released (ms)",
                f"{d['p99']:.2f}",
                "-",
                None,
                "< 10 ms",
                d["p99"] < TARGETS["dispatch_p99_ms"],
            )
    giant = figures.get("responsiveness")
    if giant:
        _heartbeat_rows(add, giant.get("heartbeat"), f"one {giant['events']}-event batch")
    wire = figures.get("wire")
    if wire:
        per_event = wire["json"]["decode_parse_s"] / wire["events"] * 1e6
        floor_event = wire["json"]["decode_s"] / wire["events"] * 1e6
        dispatched = wire.get("per_event")
        if dispatched:
            # The figure: decode + parse + dispatch, the floor's the same.
            ratio = wire["ratio_client_floor"]
            add(
                "per-event client cost, JSON: decode + parse + dispatch vs the floor's"
                " json.loads + dispatch (us/event)",
                f"{dispatched['ours_json_us']:.1f}",
                f"{dispatched['floor_us']:.1f}",
                ratio,
                "<= 2x",
                ratio <= TARGETS["client_floor"],
            )
        add(
            "per-event client cost, JSON: decode + parse vs the floor's json.loads (us/event;"
            " dispatch not included)",
            f"{per_event:.1f}",
            f"{floor_event:.1f}",
            per_event / floor_event,
            "-" if dispatched else "<= 2x",
            None if dispatched else per_event / floor_event <= 2.0,
        )
        for key, label in (
            ("decode_parse_s", "decode + parse_event_batch"),
            ("decode_s", "decode only"),
        ):
            ratio = wire["xml"][key] / wire["json"][key]
            gated = key == "decode_parse_s"
            add(
                f"{wire['events']}-event batch, {label}: XML vs JSON (ms)",
                f"{wire['xml'][key] * 1000:.2f}",
                f"{wire['json'][key] * 1000:.2f}",
                ratio,
                "<= 2x" if gated else "-",
                ratio <= TARGETS["xml_json"] if gated else None,
            )
    out_ = figures.get("scaleout")
    if out_:
        n = out_["sessions"]
        add(
            f"scale-out: {n} sessions in one process, memory per session (bytes)",
            f"{out_['bytes_per_session']:.0f}",
            f"{out_['connected']}/{n} connected",
            None,
            "-",
            None,
        )
        add(
            f"scale-out: idle CPU per session, {out_['idle_window_s']:.0f} s window (% of a core)",
            f"{out_['idle_cpu_percent_per_session']:.4f}",
            "-",
            None,
            "-",
            None,
        )
        add(
            f"scale-out: one continue on each of the {n} sessions at once (s, all)",
            f"{out_['continue_all_seconds']:.2f}",
            f"{out_['continues_connected']}/{n} Connected",
            None,
            "-",
            None,
        )
    conv = figures.get("conversations")
    if conv:
        ps = conv["per_second"]
        add(
            f"conversations: {conv['conversations']} x {conv['messages_each_way']} messages"
            " each way (messages/s)",
            f"{ps['ours']:.0f}",
            f"{ps['floor']:.0f}",
            conv["ratio_ours_floor"],
            "-",  # issue 13 asks for the figure and sets no number
            None,
        )
        cpu = conv.get("cpu_us_per_message")
        if cpu:
            add(
                f"conversations: client CPU per message, {conv['conversations']} x"
                f" {conv['messages_each_way']} (us)",
                f"{cpu['ours']:.0f}",
                f"{cpu['floor']:.0f}",
                conv["cpu_ratio_ours_floor"],
                "-",
                None,
            )
    rec = figures.get("reconnect")
    if rec:
        add(
            "reconnect: CallbackChannelError -> retried POST's 201 (ms, median)",
            f"{rec['cost_ms']['median']:.1f}",
            f"{rec['plain_post_ms']['median']:.1f} (plain POST)",
            rec["cost_ms"]["median"] / rec["plain_post_ms"]["median"],
            "<= 20 ms",
            rec["cost_ms"]["median"] <= TARGETS["reconnect_ms"],
        )
    return out


def _heartbeat_rows(add: Any, beat: dict[str, Any] | None, during: str) -> None:
    if not beat or not beat.get("beats"):
        return
    for key, label, target in (
        ("p99_ms", "p99", "heartbeat_p99_ms"),
        ("max_ms", "max", "heartbeat_max_ms"),
    ):
        add(
            f"loop lateness {label} of a 1 ms heartbeat, {during} (ms)",
            f"{beat[key]:.1f}",
            f"{beat['beats']} beats",
            None,
            f"<= {TARGETS[target]:g} ms",
            beat[key] <= TARGETS[target],
        )
    if "busy_max_ms" in beat:
        # The same beats in CPU time of the loop's thread: the loop's own work, without
        # the time another process held the core (the lateness above includes it).
        add(
            f"loop busy p99 / max between two beats (CPU time), {during} (ms)",
            f"{beat['busy_p99_ms']:.1f} / {beat['busy_max_ms']:.1f}",
            f"{beat['beats']} beats",
            None,
            "-",
            None,
        )
    if beat.get("gc_passes"):
        # Whether a full pass fell in the window decides the maximum: see the notes.
        passes, longest = beat["gc_passes"], beat["gc_longest_ms"]
        add(
            f"garbage-collector passes gen 0 / 1 / 2 (longest, ms), {during}",
            " / ".join(f"{n} ({ms:.1f})" for n, ms in zip(passes, longest, strict=True)),
            f"gen-1 passes since the last full one at the end: {beat['gc_counts_at_end'][2]}"
            if beat.get("gc_counts_at_end")
            else "",
            None,
            "-",
            None,
        )


def _met(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| figure | ours | floor / peer | ratio | target | met? |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows(figures):
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['figure']} | {r['ours']} | {r['peer']} | {ratio} | {r['target']} | "
            f"{_met(r['met'])} |"
        )
    return "\n".join(lines)


def print_summary(figures: dict[str, Any]) -> None:
    print()
    print("ratios:")
    for r in rows(figures):
        ratio = "" if r["ratio"] is None else f" ratio {r['ratio']:.2f}x"
        print(
            f"  {r['figure']}: ours {r['ours']} / {r['peer']}{ratio} target {r['target']}"
            f" met {_met(r['met']).strip('*')}"
        )


def _load(figures: dict[str, Any]) -> str:
    start, end = figures.get("load_start"), figures.get("load_end")
    if start is None or end is None:
        return "unknown"
    return f"{start:.2f} / {end:.2f}"


def write(figures: dict[str, Any], output: Path, notes: str) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"machine": machine(), "rows": rows(figures), "figures": figures}
    json_path = output / "BENCHMARKS.json"
    json_path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    md_path = output / "BENCHMARKS.md"
    m = data["machine"]
    header = (
        "# Benchmarks\n\n"
        f"Generated by `python -m benchmarks{' --quick' if figures.get('quick') else ''}`"
        f" on {m['cpu_count']} CPU(s), Python {m['python']}, {m['platform']};"
        f" aiohttp {m['versions']['aiohttp']}, yarl {m['versions']['yarl']}."
        " Raw figures and machine info: `BENCHMARKS.json`."
        f" Load average (1 min) at the start / end of the run: {_load(figures)}.\n\n"
    )
    md_path.write_text(header + table(figures) + "\n\n" + notes)
    return md_path, json_path
