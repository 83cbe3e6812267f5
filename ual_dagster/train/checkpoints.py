"""From a scenario's training set to a finished LoRA checkpoint directory.

`plan_checkpoint` reads the training set, maps each sample's uncertainty to its
epsilon for the method, and names the checkpoint by the fingerprint of everything
that changes the weights. A finished directory with that name is reused; an
unfinished one is resumed by the trainer. `complete_checkpoint` stores the curves
in DuckDB and writes the marker last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ual_dagster.config.training import MethodConfig, TrainingConfig
from ual_dagster.fingerprint import hash_rows
from ual_dagster.storage import ArtifactStore, DuckDBStore
from ual_dagster.storage.duckdb_store import replace_rows, transaction
from ual_dagster.train.epsilon import method_epsilons
from ual_dagster.train.records import (
    ADAPTER_DIR,
    EXAMPLES_FILE,
    RESULT_FILE,
    SPEC_FILE,
    TrainExample,
    TrainResult,
    TrainSpec,
    write_examples,
)
from ual_dagster.train.training_sets import read_training_set
from ual_dagster.train.versioning import checkpoint_fingerprint

KIND = "lora"

BASE_MODELS_DDL = """
CREATE TABLE IF NOT EXISTS base_models (
    fingerprint VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL,      -- a directory for from_pretrained, or a hub id
    source VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""

CURVES_DDL = """
CREATE TABLE IF NOT EXISTS training_curves (
    scenario VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    seed INTEGER,
    checkpoint VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    loss DOUBLE,                -- the method's training objective (smoothed for LS / UAL)
    nll DOUBLE,                 -- plain token NLL of the same tokens: comparable across methods
    lr DOUBLE,
    tokens BIGINT,
    tokens_per_s DOUBLE,
    eps_mean DOUBLE
)
"""

# Which checkpoint each seed of a (scenario, method) variant currently uses: the lora
# asset rewrites its variant's rows, evaluations read them.
VARIANT_CHECKPOINTS_DDL = """
CREATE TABLE IF NOT EXISTS variant_checkpoints (
    scenario VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    checkpoint VARCHAR NOT NULL,
    PRIMARY KEY (scenario, method, seed)
)
"""


def record_base_model(store: DuckDBStore, fingerprint: str, path: str, source: str) -> None:
    with store.connect() as con:
        con.execute(BASE_MODELS_DDL)
        con.execute(
            "INSERT OR REPLACE INTO base_models VALUES (?, ?, ?, current_timestamp)", [fingerprint, path, source]
        )


def base_model_path(store: DuckDBStore, fingerprint: str) -> str:
    with store.connect() as con:
        con.execute(BASE_MODELS_DDL)
        row = con.execute("SELECT path FROM base_models WHERE fingerprint = ?", [fingerprint]).fetchone()
    if row is None:
        raise RuntimeError(f"base model {fingerprint} is not recorded in DuckDB; materialise base_model first")
    return row[0]


def record_variant_checkpoints(store: DuckDBStore, scenario: str, method: str, checkpoints: dict[int, str]) -> None:
    """Replace the variant's seed -> checkpoint rows with the current seeds' (one transaction)."""
    with store.connect() as con:
        con.execute(VARIANT_CHECKPOINTS_DDL)
        with transaction(con):
            con.execute("DELETE FROM variant_checkpoints WHERE scenario = ? AND method = ?", [scenario, method])
            con.executemany(
                # columns named: a state from before this schema still has an eps_mean column (left NULL)
                "INSERT INTO variant_checkpoints (scenario, method, seed, checkpoint) VALUES (?, ?, ?, ?)",
                [[scenario, method, seed, fp] for seed, fp in sorted(checkpoints.items())],
            )


def variant_checkpoints(store: DuckDBStore, scenario: str, method: str) -> dict[int, str]:
    """seed -> checkpoint fingerprint of the variant's last materialisation."""
    with store.connect() as con:
        con.execute(VARIANT_CHECKPOINTS_DDL)
        rows = con.execute(
            "SELECT seed, checkpoint FROM variant_checkpoints WHERE scenario = ? AND method = ? ORDER BY seed",
            [scenario, method],
        ).fetchall()
    if not rows:
        raise RuntimeError(
            f"no checkpoints recorded for {scenario}/{method}; materialise lora_{scenario}_{method} first"
        )
    return {int(seed): fp for seed, fp in rows}


def read_training_curves(store: DuckDBStore) -> pd.DataFrame:
    """(scenario, method, seed, step, loss, nll) of every stored curve point; nll is NULL in a
    state from before it was recorded."""
    with store.connect() as con:
        con.execute(CURVES_DDL)
        has_nll = con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'training_curves' AND column_name = 'nll'"
        ).fetchone()[0]
        nll = "nll" if has_nll else "NULL AS nll"
        return con.execute(f"SELECT scenario, method, seed, step, loss, {nll} FROM training_curves").fetchdf()


def adapter_path(artifacts: ArtifactStore, checkpoint_fp: str) -> Path:
    if not artifacts.is_finished(KIND, checkpoint_fp):
        raise RuntimeError(
            f"LoRA checkpoint {checkpoint_fp} is not finished under {artifacts.path(KIND, checkpoint_fp)}"
        )
    return artifacts.path(KIND, checkpoint_fp) / ADAPTER_DIR


@dataclass
class CheckpointPlan:
    scenario: str
    method: str
    seed: int
    fingerprint: str
    base_path: str
    out_dir: Path
    examples: list[TrainExample]
    train_cfg: TrainingConfig
    finished: bool
    manifest: dict[str, Any] = field(default_factory=dict)
    eps_summary: dict[str, Any] = field(default_factory=dict)

    @property
    def result_path(self) -> Path:
        return self.out_dir / RESULT_FILE

    @property
    def spec(self) -> TrainSpec:
        examples_path = self.out_dir / EXAMPLES_FILE
        if not examples_path.exists():
            write_examples(examples_path, self.examples)
        return TrainSpec(
            base_path=self.base_path,
            examples_path=str(examples_path),
            training=self.train_cfg.model_dump(mode="json"),
            out_dir=str(self.out_dir),
        )

    def write_spec(self) -> Path:
        return self.spec.save(self.out_dir / SPEC_FILE)

    def reuse_metadata(self) -> dict[str, Any]:
        """What a reused checkpoint's materialisation says: its manifest's figures and, from the
        run that trained it (its train_result.json), its eps histogram and loss curve, so every
        materialisation of the variant shows the pictures, not only the one that trained."""
        keep = ("steps", "final_loss", "tokens_per_s", "train_seconds", "examples", "adapter_path")
        meta: dict[str, Any] = {k: self.manifest[k] for k in keep if k in self.manifest}
        if self.result_path.is_file():
            done = json.loads(self.result_path.read_text())
            if done.get("eps_stats"):
                meta["eps_histogram"] = done["eps_stats"]
            curve = loss_curve(done.get("curve", []))
            if curve:
                meta["loss_curve"] = curve
        return meta


def plan_checkpoint(
    store: DuckDBStore,
    artifacts: ArtifactStore,
    *,
    scenario: str,
    method: str,
    methods: Mapping[str, MethodConfig],
    train_cfg: TrainingConfig,
    base_fp: str,
    seed: int,
) -> CheckpointPlan:
    """The checkpoint of (scenario, method, seed): its examples with their eps and its fingerprint.

    `methods` is the profile's whole method table: a matched LS control reads the UAL
    method it matches. The seed sets LoRA init, data order and dropout (train_cfg.seed).
    """
    method_cfg = methods[method]
    train_cfg = train_cfg.model_copy(update={"seed": int(seed)})
    rows = read_training_set(store, scenario)
    if rows.empty:
        raise RuntimeError(f"training set {scenario!r} is empty; materialise training_set_{scenario} first")
    intrinsic = [None if pd.isna(x) else float(x) for x in rows["intrinsic_uncertainty"]]
    eps = method_epsilons(method, methods, rows["uncertainty"].tolist(), intrinsic, rows["sample_id"].tolist())
    examples = [
        TrainExample(instruction=r.instruction, input=r.input or "", output=r.output, epsilon=e)
        for r, e in zip(rows.itertuples(), eps)
    ]
    # The examples hash covers content (sample ids are content hashes), order and epsilon:
    # re-elicited scores change it for UAL only; SFT's epsilons are all zero.
    examples_hash = hash_rows((int(p), sid, round(e, 8)) for p, sid, e in zip(rows["position"], rows["sample_id"], eps))
    fp = checkpoint_fingerprint(base_fp, examples_hash, train_cfg, method_cfg)
    eps_series = pd.Series(eps, dtype=float)
    return CheckpointPlan(
        scenario=scenario,
        method=method,
        seed=int(seed),
        fingerprint=fp,
        base_path=base_model_path(store, base_fp),
        out_dir=artifacts.open(KIND, fp),
        examples=examples,
        train_cfg=train_cfg,
        finished=artifacts.is_finished(KIND, fp),
        manifest=artifacts.manifest(KIND, fp) if artifacts.is_finished(KIND, fp) else {},
        eps_summary={
            "eps_mean": float(eps_series.mean()),
            "eps_min": float(eps_series.min()),
            "eps_max": float(eps_series.max()),
        },
    )


def complete_checkpoint(
    store: DuckDBStore,
    artifacts: ArtifactStore,
    plan: CheckpointPlan,
    result: TrainResult,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Write the curve to DuckDB, then the marker; return the asset metadata."""
    curve = pd.DataFrame(result.curve)
    with store.connect() as con:
        con.execute(CURVES_DDL)
        con.execute("ALTER TABLE training_curves ADD COLUMN IF NOT EXISTS seed INTEGER")  # state from before seeds
        con.execute("ALTER TABLE training_curves ADD COLUMN IF NOT EXISTS nll DOUBLE")  # state from before nll
        frame = pd.DataFrame()
        if not curve.empty:
            frame = pd.DataFrame(
                {
                    "scenario": plan.scenario,
                    "method": plan.method,
                    "seed": plan.seed,
                    "checkpoint": plan.fingerprint,
                    "step": curve["step"].astype(int),
                    "loss": curve.get("loss"),
                    "nll": curve.get("nll"),  # None in a result trained before nll was recorded
                    "lr": curve.get("lr"),
                    "tokens": curve.get("tokens"),
                    "tokens_per_s": curve.get("tokens_per_s"),
                    "eps_mean": curve.get("eps_mean"),
                }
            )
        replace_rows(
            con,
            "training_curves",
            "scenario = ? AND method = ? AND (seed = ? OR seed IS NULL)",
            [plan.scenario, plan.method, plan.seed],
            frame,
        )
    manifest = {
        "scenario": plan.scenario,
        "method": plan.method,
        "seed": plan.seed,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s,
        "resumed_from_step": result.resumed_from_step,
        "examples": len(plan.examples),
        "adapter_path": str(plan.out_dir / ADAPTER_DIR),
        "train_seconds": seconds,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **plan.eps_summary,
    }
    artifacts.finish(KIND, plan.fingerprint, manifest)
    return {**manifest, "eps_histogram": result.eps_stats, "loss_curve": loss_curve(result.curve)}


def loss_curve(curve: list[dict]) -> dict[str, float]:
    """{step: loss} of a training curve, for the asset's loss-curve picture."""
    return {str(int(r["step"])): round(float(r["loss"]), 5) for r in curve if r.get("loss") is not None}
