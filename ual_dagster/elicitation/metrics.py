"""Numbers an elicitation run reports: latency percentiles, score histogram, rank correlations."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import spearmanr

HISTOGRAM_BINS = 10


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def histogram(scores: Sequence[float], bins: int = HISTOGRAM_BINS) -> dict[str, int]:
    """Counts over equal bins of [0, 1]; the last bin is closed ([0.9, 1.0])."""
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, max(0, int(s * bins)))] += 1
    return {f"[{i / bins:.1f},{(i + 1) / bins:.1f}{']' if i == bins - 1 else ')'}": c for i, c in enumerate(counts)}


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman rank correlation; None when undefined (fewer than 3 pairs or a constant side)."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs paired values")
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho = spearmanr(xs, ys).statistic
    return None if math.isnan(rho) else float(rho)
