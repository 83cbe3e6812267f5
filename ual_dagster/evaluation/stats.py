"""Paired statistics for comparing two methods evaluated on the same items and seeds.

A contrast's data is a (seeds x items) matrix D of per-item differences, method minus
baseline, both trained with the same seed and scored on the same item. The estimate is
the mean over seeds of the per-seed mean difference, i.e. the mean of D.

Its uncertainty comes from two sources: which training seeds were drawn and which items
the benchmark happens to contain. The interval is a hierarchical (two-way) bootstrap:
each resample draws seeds with replacement and, independently, items with replacement,
and recomputes the mean of D over the drawn rows and columns. We chose it over a
t-interval over seeds because with the few seeds a study can afford (5 here) a t-interval
ignores item sampling entirely (it treats each seed's mean as exact) and, with one seed,
does not exist; the bootstrap degrades to a paired item bootstrap there and says so
(n_seeds = 1 in the table). The two-sided p-value is the bootstrap's own: twice the
smaller share of resampled estimates on either side of zero, (count + 1) / (B + 1) so it
is never 0. It is consistent with the interval: p < 1 - level exactly when the
percentile interval at that level excludes zero (up to resampling granularity).

Holm's step-down adjustment then controls the family-wise error rate over the
contrasts of one scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedEstimate:
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_seeds: int
    n_items: int


def paired_bootstrap(
    diffs: np.ndarray, *, level: float = 0.95, iters: int = 4000, seed: int = 0, chunk: int = 500
) -> PairedEstimate:
    """Estimate, percentile CI and two-sided p-value of the mean of a (seeds x items)
    matrix of paired differences, by resampling seeds and items independently."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1:
        raise ValueError(f"need a non-empty (seeds x items) matrix of differences, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("differences must be finite (drop items missing for either method first)")
    n_seeds, n_items = d.shape
    rng = np.random.default_rng(seed)
    boots = np.empty(iters)
    for start in range(0, iters, chunk):
        b = min(chunk, iters - start)
        # counts of how often each seed / item is drawn: mean over the resampled grid is
        # (seed_counts @ D @ item_counts) / (n_seeds * n_items), with no (B x S x I) array
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=b)
        item_counts = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=b)
        boots[start : start + b] = np.einsum("bs,si,bi->b", seed_counts, d, item_counts) / (n_seeds * n_items)
    alpha = 1.0 - level
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    below = int(np.sum(boots <= 0.0))
    above = int(np.sum(boots >= 0.0))
    p = min(1.0, 2.0 * (min(below, above) + 1) / (iters + 1))
    return PairedEstimate(float(d.mean()), float(low), float(high), float(p), n_seeds, n_items)


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given): the k-th smallest p is
    multiplied by (m - k + 1), made monotone by a running maximum, and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out
