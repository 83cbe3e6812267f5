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
from ual_dagster.evaluation.eval_data import EvalData, datasets_needed, load_eval_data
from ual_dagster.fingerprint import stable_hash
from ual_dagster.storage import ArtifactStore, DuckDBStore


@dataclass
class EvalSetsResult:
    fingerprint: str
    data: EvalData
    metadata: dict[str, Any] = field(default_factory=dict)


def profile_eval_data(profile: Profile, store: DuckDBStore) -> EvalData:
    datasets = datasets_needed(profile.evaluation)
    # the probe set of token_clustering reads the same held-out items
    return load_eval_data(store, datasets)


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
