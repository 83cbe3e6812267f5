"""training_sets: one seeded selection of scored train-split samples per scenario.

The rows are those ual_dagster.data.selection chose before elicitation (the same ranking
decides what is elicited), joined with their scores: per data set, the first `share` rows
in selection order with an `ok` uncertainty under the current elicitor. SFT, LS and UAL of
a scenario train on exactly the same rows and differ only in their epsilons. The
selection is written to DuckDB table `training_sets`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.config.data import ScenarioConfig
from ual_dagster.data.counts import ScenarioShortError, short_message
from ual_dagster.data.selection import take_scored
from ual_dagster.data.store import samples_view, train_sample_ids
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.scores import current_scores
from ual_dagster.fingerprint import stable_hash
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import replace_rows, table_exists

DDL = """
CREATE TABLE IF NOT EXISTS training_sets (
    scenario VARCHAR NOT NULL,
    position INTEGER NOT NULL,      -- order of the seeded selection
    dataset VARCHAR NOT NULL,
    sample_id VARCHAR NOT NULL,
    uncertainty DOUBLE NOT NULL,
    elicitor VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,   -- of the whole scenario's selection
    PRIMARY KEY (scenario, sample_id)
)
"""


@dataclass
class TrainingSetResult:
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)


def build_training_set(
    scenario: str,
    cfg: ScenarioConfig,
    profile: Profile,
    store: DuckDBStore,
    upstream: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> TrainingSetResult:
    elicitor = elicitor_fingerprint(profile.elicitation)
    scores: dict[str, float] = {}
    unscored: dict[str, int] = {}
    train_ids_by_dataset = train_sample_ids(store, sorted(cfg.weights))
    for dataset in sorted(cfg.weights):
        ds_scores = current_scores(store, dataset, profile.elicitation)
        train_ids = train_ids_by_dataset[dataset]
        unscored[dataset] = sum(1 for s in train_ids if s not in ds_scores)
        scores.update(ds_scores)
    draw = take_scored(cfg, train_ids_by_dataset, scores)
    if draw.shortfall and not cfg.allow_short:  # the mix the profile says, or an error; nothing is written
        dataset = next(iter(draw.shortfall))
        n_train = len(train_ids_by_dataset[dataset])
        n_scored = n_train - unscored[dataset]
        what = (
            f"train rows ({n_scored} with an ok uncertainty score)"
            if n_train < draw.requested[dataset]
            else f"train rows but only {n_scored} with an ok uncertainty score (re-run uncertainty_{dataset})"
        )
        raise ScenarioShortError(short_message(scenario, dataset, draw.requested[dataset], n_train, what))
    rows = [(d, s, float(scores[s])) for d, s in draw.pairs]
    # Content only (not the elicitor's name): a new prompt that gives the same scores leaves
    # the training set's version, and so every checkpoint, as it was.
    fingerprint = stable_hash(
        versions.TRAINING_SETS, cfg.model_dump(mode="json"), sorted((d, s, round(u, 6)) for d, s, u in rows)
    )
    frame = pd.DataFrame(
        {
            "scenario": scenario,
            "position": range(len(rows)),
            "dataset": [r[0] for r in rows],
            "sample_id": [r[1] for r in rows],
            "uncertainty": [r[2] for r in rows],
            "elicitor": elicitor,
            "fingerprint": fingerprint,
        }
    )
    with store.connect() as con:
        con.execute(DDL)
        replace_rows(con, "training_sets", "scenario = ?", [scenario], frame)
    per_dataset = frame.groupby("dataset").size().to_dict() if len(frame) else {}
    u = frame["uncertainty"]
    metadata = {
        "rows": len(rows),
        "requested": cfg.size,
        "requested_per_dataset": draw.requested,
        "per_dataset": {k: int(v) for k, v in per_dataset.items()},
        "shortfall": draw.shortfall,
        "unscored_train_samples": unscored,
        "uncertainty_mean": float(u.mean()) if len(u) else None,
        "uncertainty_std": float(u.std()) if len(u) > 1 else None,
        "elicitor": elicitor,
        "upstream": dict(upstream),
    }
    if draw.shortfall and log:  # only with allow_short
        log(f"training set {scenario!r}: short {draw.shortfall} (requested {draw.requested}; allow_short is set)")
    return TrainingSetResult(fingerprint=fingerprint, metadata=metadata)


def read_training_set(store: DuckDBStore, scenario: str) -> pd.DataFrame:
    """The scenario's rows joined with their text, in selection order."""
    with store.connect(read_only=True) as con:
        samples = samples_view(con)
        return con.execute(
            f"""
            SELECT t.position, t.dataset, t.sample_id, t.uncertainty, s.intrinsic_uncertainty, s.instruction, s.input, s.output
            FROM training_sets t JOIN {samples} s ON s.dataset = t.dataset AND s.sample_id = t.sample_id
            WHERE t.scenario = ? ORDER BY t.position
            """,
            [scenario],
        ).df()


def training_set_rows(store: DuckDBStore) -> set[tuple[str, str]]:
    """(dataset, sample_id) of every row of every materialised training set (read-only: empty
    before the first)."""
    with store.connect(read_only=True) as con:
        if not table_exists(con, "training_sets"):
            return set()
        return set(con.execute("SELECT DISTINCT dataset, sample_id FROM training_sets").fetchall())
