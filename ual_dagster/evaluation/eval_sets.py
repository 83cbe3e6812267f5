"""eval_sets: the held-out items every evaluation reads, named by their content hash.

Evaluations depend on this (not on the instruction sets directly), so editing a
training row leaves every evaluation fresh unless a held-out item changed too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.data.selection import scenario_windows
from ual_dagster.evaluation.eval_data import EvalData, datasets_needed, load_eval_data
from ual_dagster.fingerprint import stable_hash
from ual_dagster.storage import ArtifactStore, DuckDBStore
from ual_dagster.train.training_sets import training_set_rows


@dataclass
class EvalSetsResult:
    fingerprint: str
    data: EvalData
    metadata: dict[str, Any] = field(default_factory=dict)


def profile_eval_data(profile: Profile, store: DuckDBStore) -> EvalData:
    datasets = datasets_needed(profile.evaluation)
    # the probe set of token_clustering reads the same held-out items
    return load_eval_data(store, datasets)


def untrained_rows(profile: Profile, store: DuckDBStore) -> EvalData:
    """Held-out items for data sets without a held-out split (the paper's hub data sets): the
    train split minus every row a scenario can train on, that is minus each scenario's
    selection window (its share plus the reserve, ual_dagster/data/selection.py) and minus
    every row of a materialised training set. No checkpoint has seen these rows."""
    train = load_eval_data(store, list(profile.datasets), split="train")
    used: set[tuple[str, str]] = set()
    for scen in profile.scenarios.values():
        ids = {d: [it.sample_id for it in train.items.get(d, [])] for d in scen.weights}
        for d, window in scenario_windows(scen, ids, profile.elicitation.selection_reserve).items():
            used.update((d, sid) for sid in window)
    used |= training_set_rows(store)
    return EvalData({d: [it for it in items if (d, it.sample_id) not in used] for d, items in train.items.items()})


def build_eval_sets(
    profile: Profile, store: DuckDBStore, artifacts: ArtifactStore, log: Callable[[str], None] | None = None
) -> EvalSetsResult:
    data = profile_eval_data(profile, store)
    for name in data.items:
        data.dataset(name)  # raises, naming the dataset, when it has no held-out rows
    fp = stable_hash(versions.EVAL_SETS, data.fingerprint)
    counts = {name: len(items) for name, items in data.items.items()}
    if log:
        log(f"eval sets {fp}: held-out items per dataset {counts}")
    return EvalSetsResult(fp, data, {"heldout_items": counts, "content_hash": data.fingerprint})
