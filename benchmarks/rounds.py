"""What the interleaved-rounds sections (throughput, conversations) report of their rounds."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def rate_summary(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Per contender the median ``per_second`` of its rounds and their spread (min, max);
    ours / floor as the ratio of the medians, and as the median of each round's own ratio
    (the two run back to back, so alike in machine noise: a check on the first)."""
    medians = {name: statistics.median(r["per_second"] for r in rs) for name, rs in runs.items()}
    return {
        "per_second": medians,
        "spread": {
            name: (min(r["per_second"] for r in rs), max(r["per_second"] for r in rs))
            for name, rs in runs.items()
        },
        "ratio_ours_floor": medians["ours"] / medians["floor"],
        "ratio_paired_median": statistics.median(
            o["per_second"] / f["per_second"]
            for o, f in zip(runs["ours"], runs["floor"], strict=True)
        ),
    }
