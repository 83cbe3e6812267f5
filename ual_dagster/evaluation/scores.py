"""The `eval_scores` table: one row per (scenario, method, seed, benchmark, metric), and
`eval_items`: one row per (scenario, method, seed, benchmark, item, metric).

A checkpoint's scores are written together, replacing that (scenario, method, seed)'s
previous rows in one transaction, and are tagged with the evaluation fingerprint so
that an unchanged evaluation is recognised (`has_scores`) and skipped. The per-item
rows are what paired comparisons are computed from: the same items for every method
and seed, so any paired analysis can be redone in SQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ual_dagster.config import Profile
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import transaction

EVAL_SCORES_DDL = """
CREATE TABLE IF NOT EXISTS eval_scores (
    scenario VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    seed INTEGER NOT NULL DEFAULT 0,    -- training seed of the checkpoint
    checkpoint VARCHAR NOT NULL,        -- the LoRA checkpoint's fingerprint
    eval_fingerprint VARCHAR NOT NULL,  -- hash(code version, checkpoint, eval config, eval data)
    benchmark VARCHAR NOT NULL,         -- lm-eval task, 'alpaca_eval', 'token_clustering'
    metric VARCHAR NOT NULL,            -- e.g. 'exact_match,strict-match', 'win_rate', 'silhouette@L-1'
    value DOUBLE,
    stderr DOUBLE,                      -- NULL where not computed (lm-eval 'N/A')
    n INTEGER,                          -- items the value is computed over
    details VARCHAR,                    -- JSON: extra counts, reasons a value is missing
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""
# state written before seeds existed: its rows are seed 0
_MIGRATE = "ALTER TABLE eval_scores ADD COLUMN IF NOT EXISTS seed INTEGER DEFAULT 0"

EVAL_ITEMS_DDL = """
CREATE TABLE IF NOT EXISTS eval_items (
    scenario VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    seed INTEGER NOT NULL,
    checkpoint VARCHAR NOT NULL,
    eval_fingerprint VARCHAR NOT NULL,
    benchmark VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,           -- the held-out item's content hash: the same for every method and seed
    metric VARCHAR NOT NULL,
    value DOUBLE
)
"""


@dataclass(frozen=True)
class ScoreRow:
    benchmark: str
    metric: str
    value: float | None
    stderr: float | None
    n: int | None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "metric": self.metric,
            "value": self.value,
            "stderr": self.stderr,
            "n": self.n,
            "details": self.details,
        }


@dataclass(frozen=True)
class ItemScore:
    """One held-out item's value of one metric.

    `item_id` is stable across checkpoints (the testbed's sample_id, or a content hash of
    the item where the data has no id), so items pair up across methods and seeds. For
    every aggregate row (token clustering and the length-controlled win rate excepted)
    the aggregate is the mean of its items' values; `value` is None for an item the
    metric could not score (e.g. an unjudged AlpacaEval item), which the mean leaves out.
    """

    benchmark: str
    item_id: str
    metric: str
    value: float | None


def item_mean_row(
    benchmark: str, metric: str, items: Sequence[ItemScore], details: dict[str, Any] | None = None
) -> ScoreRow:
    """The aggregate row of `items`: their mean, with stderr = sample sd (ddof 1) / sqrt(n)."""
    values = [i.value for i in items if i.metric == metric and i.benchmark == benchmark and i.value is not None]
    value, stderr = mean_and_stderr(values)
    return ScoreRow(benchmark, metric, value, stderr, len(values), {"stderr": STDERR_FROM_ITEMS, **(details or {})})


STDERR_FROM_ITEMS = "sd/sqrt(n) over items"


def mean_and_stderr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample sd with ddof 1 / sqrt(n)); None where undefined (no values; one value for the stderr)."""
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def clean_number(x: Any) -> float | None:
    """A finite float, or None for 'N/A', NaN and missing values (never a silent 0)."""
    if x is None or isinstance(x, str):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _ensure(con) -> None:
    con.execute(EVAL_SCORES_DDL)
    con.execute(_MIGRATE)
    con.execute(EVAL_ITEMS_DDL)


def ensure_tables(store: DuckDBStore) -> None:
    with store.connect() as con:
        _ensure(con)


def write_scores(
    store: DuckDBStore,
    scenario: str,
    method: str,
    checkpoint_fp: str,
    eval_fp: str,
    rows: Sequence[ScoreRow],
    benchmarks: Sequence[str] | None = None,
    *,
    seed: int = 0,
    items: Sequence[Any] = (),
) -> int:
    """Replace (scenario, method, seed)'s rows (only those of `benchmarks`, when given) with
    `rows`, and its per-item rows of the same benchmarks with `items` (objects with
    benchmark, item_id, metric and value), in one transaction."""
    where = "scenario = ? AND method = ? AND seed = ?"
    params: list[Any] = [scenario, method, seed]
    if benchmarks is not None:
        where += " AND benchmark IN (SELECT unnest(?))"
        params.append(list(benchmarks))
    with store.connect() as con:
        _ensure(con)
        with transaction(con):
            con.execute(f"DELETE FROM eval_scores WHERE {where}", params)
            con.execute(f"DELETE FROM eval_items WHERE {where}", params)
            if rows:  # executemany refuses an empty list; no rows = the benchmarks' rows are removed
                con.executemany(
                    "INSERT INTO eval_scores (scenario, method, seed, checkpoint, eval_fingerprint, benchmark, metric, value, "
                    "stderr, n, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        [
                            scenario,
                            method,
                            seed,
                            checkpoint_fp,
                            eval_fp,
                            r.benchmark,
                            r.metric,
                            clean_number(r.value),
                            clean_number(r.stderr),
                            r.n,
                            json.dumps(r.details, sort_keys=True, default=str) if r.details else None,
                        ]
                        for r in rows
                    ],
                )
            if items:
                frame = pd.DataFrame(
                    {
                        "scenario": scenario,
                        "method": method,
                        "seed": seed,
                        "checkpoint": checkpoint_fp,
                        "eval_fingerprint": eval_fp,
                        "benchmark": [i.benchmark for i in items],
                        "item_id": [str(i.item_id) for i in items],
                        "metric": [i.metric for i in items],
                        "value": [clean_number(i.value) for i in items],
                    }
                )
                con.register("item_frame", frame)
                con.execute("INSERT INTO eval_items BY NAME SELECT * FROM item_frame")
                con.unregister("item_frame")
    return len(rows)


def read_items(store: DuckDBStore) -> pd.DataFrame:
    """All rows of eval_items (an empty frame with the columns when there are none)."""
    with store.connect() as con:
        _ensure(con)
        return con.execute(
            "SELECT * FROM eval_items ORDER BY scenario, method, seed, benchmark, metric, item_id"
        ).fetchdf()


def read_scores(store: DuckDBStore) -> pd.DataFrame:
    """All rows of eval_scores (an empty frame with the columns when there are none)."""
    with store.connect() as con:
        _ensure(con)
        return con.execute("SELECT * FROM eval_scores ORDER BY scenario, method, seed, benchmark, metric").fetchdf()


def score_summary(store: DuckDBStore, eval_fp: str) -> dict[str, Any]:
    """'benchmark/metric' -> {value, stderr, n} of one evaluation fingerprint's rows."""
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT benchmark, metric, value, stderr, n FROM eval_scores WHERE eval_fingerprint = ? ORDER BY 1, 2",
            [eval_fp],
        ).fetchall()
    return {f"{b}/{m}": {"value": v, "stderr": s, "n": n} for b, m, v, s, n in rows}


def has_scores(
    store: DuckDBStore,
    eval_fp: str,
    scenario: str | None = None,
    method: str | None = None,
    seed: int | None = None,
    table: str = "eval_scores",
) -> bool:
    """Whether rows of this evaluation fingerprint exist in `table` (eval_scores or
    eval_items), for this scenario/method/seed when given."""
    if table not in ("eval_scores", "eval_items"):
        raise ValueError(f"unknown table {table!r}")
    sql = f"SELECT count(*) FROM {table} WHERE eval_fingerprint = ?"
    params: list[Any] = [eval_fp]
    if scenario is not None:
        sql += " AND scenario = ?"
        params.append(scenario)
    if method is not None:
        sql += " AND method = ?"
        params.append(method)
    if seed is not None:
        sql += " AND seed = ?"
        params.append(seed)
    with store.connect() as con:
        _ensure(con)
        return con.execute(sql, params).fetchone()[0] > 0


def current_rows(profile: Profile, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of eval_scores / eval_items that belong to the profile's variants and seeds."""
    return frame[
        frame["scenario"].isin(list(profile.scenarios))
        & frame["method"].isin(list(profile.methods))
        & frame["seed"].isin(list(profile.experiment.seeds))
    ]
