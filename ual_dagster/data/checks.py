"""Asset-check helpers for instruction sets: each returns (passed, JSON-able metadata)."""

from __future__ import annotations

from typing import Any

from ual_dagster.data.build import InstructionSetResult
from ual_dagster.data.store import empty_sample_sources, repeated_sample_ids
from ual_dagster.storage import DuckDBStore

EXAMPLES = 5


def unique_sample_ids(store: DuckDBStore, dataset: str) -> tuple[bool, dict[str, Any]]:
    """Every sample id occurs once in the dataset's rows."""
    found = repeated_sample_ids(store, dataset, EXAMPLES)
    if found is None:
        return False, {"error": "table 'samples' does not exist"}
    n_rows, n_distinct, repeated = found
    return n_rows == n_distinct, {"n_rows": n_rows, "n_distinct_ids": n_distinct, "repeated_ids": repeated}


def no_empty_outputs(store: DuckDBStore, dataset: str) -> tuple[bool, dict[str, Any]]:
    """No stored sample has an empty (or whitespace-only) output or instruction."""
    empty = empty_sample_sources(store, dataset)
    if empty is None:
        return False, {"error": "table 'samples' does not exist"}
    return not empty, {"n_empty": len(empty), "examples": empty[:EXAMPLES]}


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
