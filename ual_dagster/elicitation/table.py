"""The `uncertainty` table: one row per (sample content hash, elicitor). This module owns it
(ual_dagster/storage/tables.py); its joins with the samples read `samples_view`.

Columns: sample_id, dataset, elicitor, uncertainty (DOUBLE in [0,1] or NULL), status
('ok' | 'unparseable' | 'failed'), raw_answer (the model's text; never request headers),
error (why a row is not ok), prompt_tokens, completion_tokens, latency_s, attempts
(HTTP calls spent on the row), created_at (UTC).

Replacement rules (in `write_rows`' ON CONFLICT clause): a new row replaces a non-ok row;
an ok row is replaced only by a new ok row when it is older than the stale cutoff of the
run (TTL / explicit re-elicitation). So a failed re-elicitation never destroys a score.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone

import duckdb
import pandas as pd
import pyarrow as pa

from ual_dagster.data.store import require_samples, samples_exist, samples_view
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import table_exists

UNCERTAINTY_DDL = """
CREATE TABLE IF NOT EXISTS uncertainty (
    sample_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    elicitor VARCHAR NOT NULL,
    uncertainty DOUBLE CHECK (uncertainty IS NULL OR (uncertainty >= 0 AND uncertainty <= 1)),
    status VARCHAR NOT NULL CHECK (status IN ('ok', 'unparseable', 'failed')),
    raw_answer VARCHAR,
    error VARCHAR,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    latency_s DOUBLE,
    attempts INTEGER,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (sample_id, elicitor)
)
"""

STATUSES = ("ok", "unparseable", "failed")


def utc_now() -> datetime:
    """Naive UTC, the form stored in created_at."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class SampleToScore:
    sample_id: str
    instruction: str
    input: str
    output: str
    intrinsic_uncertainty: float | None


@dataclass(frozen=True)
class UncertaintyRow:
    sample_id: str
    dataset: str
    elicitor: str
    uncertainty: float | None
    status: str
    raw_answer: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int
    created_at: datetime


_ROW_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("dataset", pa.string()),
        ("elicitor", pa.string()),
        ("uncertainty", pa.float64()),
        ("status", pa.string()),
        ("raw_answer", pa.string()),
        ("error", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("latency_s", pa.float64()),
        ("attempts", pa.int32()),
        ("created_at", pa.timestamp("us")),
    ]
)
_COLUMNS = [f.name for f in fields(UncertaintyRow)]


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(UNCERTAINTY_DDL)


def _splits_clause(splits: Sequence[str]) -> str:
    return "s.split IN (" + ", ".join("?" for _ in splits) + ")"


def pending_samples(
    store: DuckDBStore,
    dataset: str,
    elicitor: str,
    splits: Sequence[str],
    cutoff: datetime | None,
    only: Collection[str] | None = None,
) -> tuple[list[SampleToScore], int]:
    """(samples without a fresh ok row under `elicitor`, number of samples considered).

    `only`: consider just these sample ids (the rows the scenarios use; see
    ual_dagster.data.selection); None = every sample of `splits`.
    One anti-join, so a fully cached 50k-sample dataset costs one query.
    """
    with store.connect() as con:
        only_sql = ""
        if only is not None:  # registered first: duckdb refuses it while a result is open
            con.register("only_ids", pa.table({"sample_id": pa.array(sorted(only), pa.string())}))
            only_sql = "AND s.sample_id IN (SELECT sample_id FROM only_ids)"
        ensure_table(con)
        require_samples(con)
        samples = samples_view(con)
        total = con.execute(
            f"SELECT count(DISTINCT s.sample_id) FROM {samples} s WHERE s.dataset = ? AND {_splits_clause(splits)} "
            f"{only_sql}",
            [dataset, *splits],
        ).fetchone()[0]
        rows = con.execute(
            f"""
            SELECT DISTINCT ON (s.sample_id) s.sample_id, s.instruction, coalesce(s.input, ''), s.output,
                   s.intrinsic_uncertainty
            FROM {samples} s
            WHERE s.dataset = ? AND {_splits_clause(splits)} {only_sql}
              AND NOT EXISTS (
                  SELECT 1 FROM uncertainty u
                  WHERE u.sample_id = s.sample_id AND u.elicitor = ? AND u.status = 'ok'
                    AND (CAST(? AS TIMESTAMP) IS NULL OR u.created_at >= CAST(? AS TIMESTAMP)))
            ORDER BY s.sample_id
            """,
            [dataset, *splits, elicitor, cutoff, cutoff],
        ).fetchall()
    return [SampleToScore(*r) for r in rows], int(total)


def write_rows(store: DuckDBStore, rows: Sequence[UncertaintyRow], cutoff: datetime | None) -> None:
    """Insert or replace rows under the module's replacement rules, in one transaction."""
    if not rows:
        return
    batch = pa.Table.from_pylist([{c: getattr(r, c) for c in _COLUMNS} for r in rows], schema=_ROW_SCHEMA)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("sample_id", "elicitor"))
    with store.connect() as con:
        ensure_table(con)
        con.register("uncertainty_batch", batch)
        con.execute(
            f"""
            INSERT INTO uncertainty SELECT {", ".join(_COLUMNS)} FROM uncertainty_batch
            ON CONFLICT (sample_id, elicitor) DO UPDATE SET {updates}
            WHERE uncertainty.status <> 'ok'
               OR (excluded.status = 'ok' AND CAST(? AS TIMESTAMP) IS NOT NULL
                   AND uncertainty.created_at < CAST(? AS TIMESTAMP))
            """,
            [cutoff, cutoff],
        )
        con.unregister("uncertainty_batch")


# The readers below take an open connection so that a run's report costs one connection.


def scored_samples(
    con: duckdb.DuckDBPyConnection, dataset: str, elicitor: str, splits: Sequence[str] | None = None
) -> list[tuple]:
    """(sample_id, uncertainty, intrinsic_uncertainty, created_at) of ok rows for the dataset's current samples."""
    split_sql, split_args = (f"AND {_splits_clause(splits)}", list(splits)) if splits else ("", [])
    ensure_table(con)
    samples = samples_view(con)
    return con.execute(
        f"""
        SELECT DISTINCT ON (s.sample_id) s.sample_id, u.uncertainty, s.intrinsic_uncertainty, u.created_at
        FROM {samples} s JOIN uncertainty u ON u.sample_id = s.sample_id
        WHERE s.dataset = ? {split_sql} AND u.elicitor = ? AND u.status = 'ok'
        ORDER BY s.sample_id
        """,
        [dataset, *split_args, elicitor],
    ).fetchall()


def status_counts(con: duckdb.DuckDBPyConnection, dataset: str, elicitor: str, splits: Sequence[str]) -> dict[str, int]:
    ensure_table(con)
    samples = samples_view(con)
    rows = con.execute(
        f"""
        SELECT u.status, count(DISTINCT s.sample_id)
        FROM {samples} s JOIN uncertainty u ON u.sample_id = s.sample_id
        WHERE s.dataset = ? AND {_splits_clause(splits)} AND u.elicitor = ?
        GROUP BY u.status
        """,
        [dataset, *splits, elicitor],
    ).fetchall()
    counts = {status: 0 for status in STATUSES}
    counts.update({status: int(n) for status, n in rows})
    return counts


def previous_elicitor_scores(
    con: duckdb.DuckDBPyConnection, dataset: str, elicitor: str, splits: Sequence[str]
) -> tuple[str | None, dict[str, float]]:
    """The most recent other elicitor with ok scores on this dataset's samples, and those scores."""
    ensure_table(con)
    samples = samples_view(con)
    row = con.execute(
        f"""
        SELECT u.elicitor FROM {samples} s JOIN uncertainty u ON u.sample_id = s.sample_id
        WHERE s.dataset = ? AND {_splits_clause(splits)} AND u.elicitor <> ? AND u.status = 'ok'
        GROUP BY u.elicitor ORDER BY max(u.created_at) DESC LIMIT 1
        """,
        [dataset, *splits, elicitor],
    ).fetchone()
    if row is None:
        return None, {}
    scores = con.execute(
        f"""
        SELECT DISTINCT s.sample_id, u.uncertainty FROM {samples} s JOIN uncertainty u ON u.sample_id = s.sample_id
        WHERE s.dataset = ? AND {_splits_clause(splits)} AND u.elicitor = ? AND u.status = 'ok'
        """,
        [dataset, *splits, row[0]],
    ).fetchall()
    return row[0], {sid: float(u) for sid, u in scores}


def scored_ids(store: DuckDBStore, dataset: str, elicitor: str) -> set[str]:
    """Ids of the data set's samples (any split) with an ok row under `elicitor` (read-only:
    empty when either table does not exist yet)."""
    with store.connect(read_only=True) as con:
        if not (table_exists(con, "uncertainty") and samples_exist(con)):
            return set()
        samples = samples_view(con)
        rows = con.execute(
            f"SELECT DISTINCT u.sample_id FROM uncertainty u JOIN {samples} s ON s.sample_id = u.sample_id "
            "WHERE s.dataset = ? AND u.elicitor = ? AND u.status = 'ok'",
            [dataset, elicitor],
        ).fetchall()
    return {r[0] for r in rows}


def ok_scores(store: DuckDBStore, elicitor: str, datasets: list[str]) -> pd.DataFrame:
    """(dataset, uncertainty) of every ok row of `elicitor` on `datasets` (the data set a row
    was first scored for); empty when the table does not exist yet."""
    with store.connect() as con:
        if not table_exists(con, "uncertainty"):
            return pd.DataFrame(columns=["dataset", "uncertainty"])
        return con.execute(
            "SELECT dataset, uncertainty FROM uncertainty WHERE status = 'ok' AND elicitor = ? AND dataset IN "
            "(SELECT unnest(?))",
            [elicitor, datasets],
        ).df()


def scores_and_samples_exist(store: DuckDBStore) -> bool:
    with store.connect() as con:
        return table_exists(con, "uncertainty") and samples_exist(con)


def ok_scores_with_intrinsic(store: DuckDBStore, datasets: list[str]) -> pd.DataFrame:
    """(elicitor, u, intrinsic, family) of every ok, non-null score on `datasets` whose sample
    has a known intrinsic uncertainty, by elicitor, dataset and sample id."""
    marks = ", ".join("?" for _ in datasets)
    with store.connect() as con:
        missing = [
            t
            for t, found in (("samples", samples_exist(con)), ("uncertainty", table_exists(con, "uncertainty")))
            if not found
        ]
        if missing:
            raise RuntimeError(
                f"{store.path}: table(s) {missing} missing: materialise instruction_sets and uncertainty first"
            )
        samples = samples_view(con)
        return con.execute(
            f"""
            SELECT u.elicitor, u.uncertainty AS u, s.intrinsic_uncertainty AS intrinsic, s.family
            FROM uncertainty u JOIN {samples} s ON s.dataset = u.dataset AND s.sample_id = u.sample_id
            WHERE u.status = 'ok' AND u.uncertainty IS NOT NULL AND s.intrinsic_uncertainty IS NOT NULL
              AND u.dataset IN ({marks})
            ORDER BY u.elicitor, u.dataset, u.sample_id
            """,
            datasets,
        ).df()
