"""Which rows each scenario uses, decided from the instruction sets before any score exists.

Every data set's train ids are ranked once per scenario seed by a seeded hash of
(seed, dataset, sample id) (the ranking `draw_scenario` always used). A scenario's
share of a data set is the head of that ranking:

- elicitation asks only for the head plus a small reserve (`elicitation.selection_reserve`)
  of every scenario that draws on the data set; scenarios with the same seed nest, so
  the union is the largest share, not the sum (`elicitation_targets`);
- `training_sets` walks the same ranking and keeps the first `share` rows that have an
  ok score (`take_scored`): the reserve replaces rows whose answer was unparseable.

Which rows are chosen depends on the ids and on which rows have an ok score, never on
the score values, so a new prompt changes epsilons, not rows. With every train row
scored, `take_scored` picks exactly what `draw_scenario` over the scored rows picks.
Held-out rows are elicited only when `elicit_splits` names `heldout` (evaluation probes).
A data set that no scenario uses is elicited in full (every row of `elicit_splits`): it was
added to be scored, and an empty table would be a silent zero.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from ual_dagster.config.data import ScenarioConfig
from ual_dagster.data.scenarios import ScenarioDraw, scenario_shares
from ual_dagster.data.store import sample_ids_by_split
from ual_dagster.fingerprint import stable_hash

SELECTION_VERSION = "selection-1"


def ranked_ids(seed: int, dataset: str, ids: Collection[str]) -> list[str]:
    """`ids` in selection order (input order never matters)."""
    return sorted(set(ids), key=lambda sid: (stable_hash("scenario", seed, dataset, sid), sid))


def window_size(share: int, reserve: float) -> int:
    """Rows elicited for a share of `share` rows: the share plus ceil(reserve * share)."""
    return share + math.ceil(share * reserve)


def scenario_windows(
    cfg: ScenarioConfig, train_ids: Mapping[str, Sequence[str]], reserve: float
) -> dict[str, list[str]]:
    """dataset -> the head of its ranking that the scenario may use (share plus reserve)."""
    shares = scenario_shares(cfg.size, cfg.weights)
    return {
        d: ranked_ids(cfg.seed, d, train_ids.get(d, []))[: window_size(shares[d], reserve)]
        for d in sorted(shares)
        if shares[d] > 0
    }


def elicitation_targets(
    scenarios: Mapping[str, ScenarioConfig],
    train_ids: Mapping[str, Sequence[str]],
    reserve: float,
    heldout_ids: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """dataset -> sorted ids to elicit: the union of the scenarios' windows plus held-out probes."""
    out: dict[str, set[str]] = {d: set() for d in train_ids}
    for cfg in scenarios.values():
        for dataset, ids in scenario_windows(cfg, train_ids, reserve).items():
            out.setdefault(dataset, set()).update(ids)
    for dataset, ids in (heldout_ids or {}).items():
        out.setdefault(dataset, set()).update(ids)
    return {d: sorted(ids) for d, ids in out.items()}


def take_scored(cfg: ScenarioConfig, train_ids: Mapping[str, Sequence[str]], scored: Collection[str]) -> ScenarioDraw:
    """The scenario's rows: per data set, the first `share` ids in selection order that have an ok score."""
    scored = scored if isinstance(scored, set | frozenset | dict) else set(scored)
    requested = scenario_shares(cfg.size, cfg.weights)
    pairs: list[tuple[str, str]] = []
    drawn: dict[str, int] = {}
    for dataset in sorted(requested):
        picked = []
        if requested[dataset] > 0:
            for sid in ranked_ids(cfg.seed, dataset, train_ids.get(dataset, [])):
                if sid in scored:
                    picked.append(sid)
                    if len(picked) == requested[dataset]:
                        break
        pairs += [(dataset, sid) for sid in picked]
        drawn[dataset] = len(picked)
    shortfall = {d: requested[d] - drawn[d] for d in sorted(requested) if drawn[d] < requested[d]}
    return ScenarioDraw(sorted(pairs), requested, drawn, shortfall)


def used_by_a_scenario(profile, dataset: str) -> bool:
    return any(dataset in s.weights for s in profile.scenarios.values())


def targets_for_dataset(profile, dataset: str, store) -> list[str] | None:
    """The ids `uncertainty_<dataset>` elicits under the profile, or None for every row of
    `elicit_splits`: scope 'all', and a data set no scenario uses (no silent zero: a user who
    adds a data set wants it scored). Reads only the `samples` table."""

    cfg = profile.elicitation
    if cfg.elicit_scope == "all" or not used_by_a_scenario(profile, dataset):
        return None
    ids = sample_ids_by_split(store, dataset)
    train = {dataset: ids.get("train", [])} if "train" in cfg.elicit_splits else {dataset: []}
    users = {n: s for n, s in profile.scenarios.items() if dataset in s.weights}
    heldout = {dataset: ids.get("heldout", [])} if "heldout" in cfg.elicit_splits else None
    return elicitation_targets(users, train, cfg.selection_reserve, heldout).get(dataset, [])


def selection_config(profile, dataset: str) -> dict:
    """What `targets_for_dataset` reads from the profile: part of the uncertainty asset's code version."""
    cfg = profile.elicitation
    if not used_by_a_scenario(profile, dataset):  # elicited in full (targets_for_dataset); only then said
        return {"version": SELECTION_VERSION, "scope": "all (no scenario uses it)", "splits": sorted(cfg.elicit_splits)}
    return {
        "version": SELECTION_VERSION,
        "scope": cfg.elicit_scope,
        "reserve": cfg.selection_reserve,
        "splits": sorted(cfg.elicit_splits),
        "scenarios": {
            n: s.model_dump(mode="json") for n, s in sorted(profile.scenarios.items()) if dataset in s.weights
        },
    }
