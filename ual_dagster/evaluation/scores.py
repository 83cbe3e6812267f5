"""The `eval_scores` table: one row per (scenario, method, benchmark, metric).

A checkpoint's scores are written together, replacing that (scenario, method)'s
previous rows in one transaction, and are tagged with the evaluation fingerprint so
that an unchanged evaluation is recognised (`has_scores`) and skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ual_dagster.storage import DuckDBStore

EVAL_SCORES_DDL = """
CREATE TABLE IF NOT EXISTS eval_scores (
    scenario VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
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
            "benchmark": self.benchmark, "metric": self.metric, "value": self.value,
            "stderr": self.stderr, "n": self.n, "details": self.details,
        }


def clean_number(x: Any) -> float | None:
    """A finite float, or None for 'N/A', NaN and missing values (never a silent 0)."""
    if x is None or isinstance(x, str):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def ensure_tables(store: DuckDBStore) -> None:
    with store.connect() as con:
        con.execute(EVAL_SCORES_DDL)


def write_scores(
    store: DuckDBStore, scenario: str, method: str, checkpoint_fp: str, eval_fp: str, rows: Sequence[ScoreRow],
    benchmarks: Sequence[str] | None = None,
) -> int:
    """Replace (scenario, method)'s rows (only those of `benchmarks`, when given) with `rows`."""
    with store.connect() as con:
        con.execute(EVAL_SCORES_DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            if benchmarks is None:
                con.execute("DELETE FROM eval_scores WHERE scenario = ? AND method = ?", [scenario, method])
            else:
                con.execute(
                    "DELETE FROM eval_scores WHERE scenario = ? AND method = ? AND benchmark IN (SELECT unnest(?))",
                    [scenario, method, list(benchmarks)],
                )
            con.executemany(
                "INSERT INTO eval_scores (scenario, method, checkpoint, eval_fingerprint, benchmark, metric, value, "
                "stderr, n, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [scenario, method, checkpoint_fp, eval_fp, r.benchmark, r.metric, clean_number(r.value),
                     clean_number(r.stderr), r.n, json.dumps(r.details, sort_keys=True, default=str) if r.details else None]
                    for r in rows
                ],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return len(rows)


def read_scores(store: DuckDBStore) -> pd.DataFrame:
    """All rows of eval_scores (an empty frame with the columns when there are none)."""
    with store.connect() as con:
        con.execute(EVAL_SCORES_DDL)
        return con.execute(
            "SELECT * FROM eval_scores ORDER BY scenario, method, benchmark, metric"
        ).fetchdf()


def has_scores(store: DuckDBStore, eval_fp: str, scenario: str | None = None, method: str | None = None) -> bool:
    """Whether rows of this evaluation fingerprint exist (for this scenario/method when given)."""
    sql = "SELECT count(*) FROM eval_scores WHERE eval_fingerprint = ?"
    params: list[Any] = [eval_fp]
    if scenario is not None:
        sql += " AND scenario = ?"
        params.append(scenario)
    if method is not None:
        sql += " AND method = ?"
        params.append(method)
    with store.connect() as con:
        con.execute(EVAL_SCORES_DDL)
        return con.execute(sql, params).fetchone()[0] > 0
