"""Asset-check helpers for instruction sets: each returns (passed, JSON-able metadata)."""

from __future__ import annotations

from typing import Any

from ual_dagster.data.build import InstructionSetResult
from ual_dagster.data.store import tables_exist
from ual_dagster.storage import DuckDBStore

EXAMPLES = 5


def unique_sample_ids(store: DuckDBStore, dataset: str) -> tuple[bool, dict[str, Any]]:
    """Every sample id occurs once in the dataset's rows."""
    with store.connect(read_only=True) as con:
        if not tables_exist(con):
            return False, {"error": "table 'samples' does not exist"}
        n_rows, n_distinct = con.execute(
            "SELECT count(*), count(DISTINCT sample_id) FROM samples WHERE dataset = ?", [dataset]
        ).fetchone() or (0, 0)
        repeated = con.execute(
            "SELECT sample_id, count(*) AS n FROM samples WHERE dataset = ? GROUP BY sample_id HAVING n > 1 "
            "ORDER BY n DESC, sample_id LIMIT ?",
            [dataset, EXAMPLES],
        ).fetchall()
    return n_rows == n_distinct, {
        "n_rows": n_rows,
        "n_distinct_ids": n_distinct,
        "repeated_ids": {sid: n for sid, n in repeated},
    }


def no_empty_outputs(store: DuckDBStore, dataset: str) -> tuple[bool, dict[str, Any]]:
    """No stored sample has an empty (or whitespace-only) output or instruction."""
    with store.connect(read_only=True) as con:
        if not tables_exist(con):
            return False, {"error": "table 'samples' does not exist"}
        empty = con.execute(
            "SELECT source FROM samples WHERE dataset = ? AND (trim(output) = '' OR trim(instruction) = '') "
            "ORDER BY source",
            [dataset],
        ).fetchall()
    return not empty, {"n_empty": len(empty), "examples": [s for (s,) in empty[:EXAMPLES]]}


def reject_rate(result: InstructionSetResult, max_reject_rate: float) -> tuple[bool, dict[str, Any]]:
    """n_rejects / (n_kept + n_duplicates + n_rejects) is at most `max_reject_rate`."""
    total = result.n_kept + result.n_duplicates + result.n_rejects
    rate = result.n_rejects / total if total else 0.0
    return rate <= max_reject_rate, {
        "reject_rate": round(rate, 6),
        "max_reject_rate": max_reject_rate,
        "n_rejects": result.n_rejects,
        "n_rows": total,
        "reject_reasons": result.reject_reasons,
    }
