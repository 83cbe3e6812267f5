"""Scenario selection: a seeded draw of `size` train samples mixed across data sets.

Shares: size * weight / sum(weights), rounded by largest remainder (ties to the
dataset name that sorts first), so they sum to `size` exactly. Each data set keeps the
candidates with the smallest seeded hash of (seed, dataset, sample id): input order
never matters, a change to one data set's candidates leaves the others' picks as they
were, and an edited sample changes at most one pick of its own data set. A data set with fewer candidates
than its share gives all it has; the shortfall is reported, not filled from others
(that would silently change the mix).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ual_dagster.config.data import ScenarioConfig
from ual_dagster.fingerprint import stable_hash


@dataclass(frozen=True)
class ScenarioDraw:
    pairs: list[tuple[str, str]]  # (dataset, sample_id), sorted
    requested: dict[str, int]  # share of `size` per dataset
    drawn: dict[str, int]
    shortfall: dict[str, int]  # requested - drawn, only where > 0


def scenario_shares(size: int, weights: Mapping[str, float]) -> dict[str, int]:
    total = sum(weights.values())
    exact = {name: size * w / total for name, w in weights.items()}
    shares = {name: math.floor(x) for name, x in exact.items()}
    left = size - sum(shares.values())
    by_remainder = sorted(exact, key=lambda n: (-(exact[n] - shares[n]), n))
    for name in by_remainder[:left]:
        shares[name] += 1
    return shares


def draw_scenario(cfg: ScenarioConfig, candidates: Mapping[str, list[str]]) -> ScenarioDraw:
    requested = scenario_shares(cfg.size, cfg.weights)
    pairs: list[tuple[str, str]] = []
    drawn: dict[str, int] = {}
    for dataset in sorted(requested):
        pool = set(candidates.get(dataset, []))
        k = min(requested[dataset], len(pool))
        # Rank by a seeded hash of each id and keep the k smallest: unlike shuffling a sorted
        # list, replacing one candidate (an edited row) changes at most one pick.
        ranked = sorted(pool, key=lambda sid, d=dataset: (stable_hash("scenario", cfg.seed, d, sid), sid))
        pairs += [(dataset, sid) for sid in ranked[:k]]
        drawn[dataset] = k
    shortfall = {d: requested[d] - drawn[d] for d in sorted(requested) if drawn[d] < requested[d]}
    return ScenarioDraw(sorted(pairs), requested, drawn, shortfall)


def select_scenario(
    cfg: ScenarioConfig, candidates: Mapping[str, list[str]], log: Callable[[str], None] | None = None
) -> list[tuple[str, str]]:
    """The scenario's (dataset, sample_id) pairs; a shortfall is logged (see draw_scenario)."""
    draw = draw_scenario(cfg, candidates)
    if draw.shortfall and log:
        log(f"scenario short of candidates: requested {draw.requested}, drew {draw.drawn} (short {draw.shortfall})")
    return draw.pairs
