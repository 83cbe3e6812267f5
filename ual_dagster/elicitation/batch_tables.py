"""The Batch API's DuckDB tables, `elicitation_batches` and `elicitation_batch_requests`: what
was submitted, under which batch, and what each request answered (their owner module,
ual_dagster/storage/tables.py). A submission and its requests are written before anything is
sent; collected results and the batch's 'collected' mark are one transaction; a request is
'settled' once its answer is folded into an uncertainty row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from ual_dagster.elicitation.table import utc_now
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import table_exists, transaction

BATCHES_DDL = """
CREATE TABLE IF NOT EXISTS elicitation_batches (
    submission_id VARCHAR PRIMARY KEY,  -- ours; in the batch's metadata, known before the batch exists
    dataset VARCHAR NOT NULL,
    elicitor VARCHAR NOT NULL,
    base_url VARCHAR NOT NULL,
    requests INTEGER NOT NULL,
    input_file_id VARCHAR,
    batch_id VARCHAR,                   -- NULL while 'preparing'
    status VARCHAR NOT NULL,            -- 'preparing', then the server's last reported status
    completed INTEGER,
    failed INTEGER,
    output_file_id VARCHAR,
    error_file_id VARCHAR,
    created_at TIMESTAMP NOT NULL,
    collected_at TIMESTAMP              -- NULL while open
)
"""
REQUESTS_DDL = """
CREATE TABLE IF NOT EXISTS elicitation_batch_requests (
    submission_id VARCHAR NOT NULL,
    custom_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    elicitor VARCHAR NOT NULL,
    sample_id VARCHAR NOT NULL,
    part INTEGER NOT NULL,              -- j of consistency's k answers (0 otherwise)
    result VARCHAR,                     -- NULL until collected; 'answered' | 'http_error' | 'not_run'
    http_status INTEGER,
    text VARCHAR,
    score DOUBLE,                       -- NULL: unparseable (or not answered)
    error VARCHAR,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    settled BOOLEAN NOT NULL DEFAULT false,  -- folded into an uncertainty row
    PRIMARY KEY (submission_id, custom_id)
)
"""
RESULT_COLUMNS = ("result", "http_status", "text", "score", "error", "prompt_tokens", "completion_tokens")
_RESULTS_SCHEMA = pa.schema(
    [
        ("custom_id", pa.string()),
        ("result", pa.string()),
        ("http_status", pa.int32()),
        ("text", pa.string()),
        ("score", pa.float64()),
        ("error", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)


def ensure_tables(con) -> None:
    con.execute(BATCHES_DDL)
    con.execute(REQUESTS_DDL)


@dataclass
class Submission:
    submission_id: str
    batch_id: str | None
    input_file_id: str | None
    requests: int
    created_at: datetime
    status: str


class BatchTables:
    """The submissions and requests of one (dataset, elicitor)."""

    def __init__(self, store: DuckDBStore, dataset: str, elicitor: str):
        self.store, self.dataset, self.elicitor = store, dataset, elicitor

    def _fetch(self, sql: str, params: list) -> list[tuple]:
        with self.store.connect() as con:
            ensure_tables(con)
            return con.execute(sql, params).fetchall()

    def open_submissions(self) -> list[Submission]:
        rows = self._fetch(
            "SELECT submission_id, batch_id, input_file_id, requests, created_at, status FROM elicitation_batches "
            "WHERE dataset = ? AND elicitor = ? AND collected_at IS NULL ORDER BY created_at",
            [self.dataset, self.elicitor],
        )
        return [Submission(*r) for r in rows]

    def update(self, submission_id: str, **values) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.store.connect() as con:
            con.execute(
                f"UPDATE elicitation_batches SET {sets} WHERE submission_id = ?", [*values.values(), submission_id]
            )

    def covered(self) -> set[str]:
        """Sample ids with a request in an open submission: never submitted again meanwhile."""
        rows = self._fetch(
            "SELECT DISTINCT r.sample_id FROM elicitation_batch_requests r JOIN elicitation_batches b "
            "USING (submission_id) WHERE b.dataset = ? AND b.elicitor = ? AND b.collected_at IS NULL",
            [self.dataset, self.elicitor],
        )
        return {r[0] for r in rows}

    def record_submission(self, submission_id: str, base_url: str, requests: list[tuple[str, str, int]]) -> None:
        """The submission ('preparing') and its requests (custom_id, sample_id, part), in one transaction."""
        table = pa.table(
            {
                "submission_id": [submission_id] * len(requests),
                "custom_id": [cid for cid, _, _ in requests],
                "dataset": [self.dataset] * len(requests),
                "elicitor": [self.elicitor] * len(requests),
                "sample_id": [sid for _, sid, _ in requests],
                "part": pa.array([p for _, _, p in requests], pa.int32()),
            }
        )
        with self.store.connect() as con:
            ensure_tables(con)
            con.register("new_requests", table)
            with transaction(con):
                con.execute(
                    "INSERT INTO elicitation_batches (submission_id, dataset, elicitor, base_url, requests, status, created_at) "
                    "VALUES (?, ?, ?, ?, ?, 'preparing', ?)",
                    [submission_id, self.dataset, self.elicitor, base_url, len(requests), utc_now()],
                )
                con.execute(
                    "INSERT INTO elicitation_batch_requests (submission_id, custom_id, dataset, elicitor, sample_id, part) "
                    "SELECT * FROM new_requests"
                )

    def requests_of(self, submission_id: str) -> list[tuple[str, int]]:
        """(sample_id, part) of a submission's requests, in custom_id order."""
        with self.store.connect() as con:
            return con.execute(
                "SELECT sample_id, part FROM elicitation_batch_requests WHERE submission_id = ? ORDER BY custom_id",
                [submission_id],
            ).fetchall()

    def custom_ids(self, submission_id: str) -> set[str]:
        with self.store.connect() as con:
            return {
                r[0]
                for r in con.execute(
                    "SELECT custom_id FROM elicitation_batch_requests WHERE submission_id = ?", [submission_id]
                ).fetchall()
            }

    def abandon(self, submission_id: str) -> None:
        """Close a never-sent submission: its requests are settled as not run."""
        self.update(submission_id, status="abandoned", collected_at=utc_now())
        with self.store.connect() as con:
            con.execute(
                "UPDATE elicitation_batch_requests SET result = 'not_run', settled = true WHERE submission_id = ?",
                [submission_id],
            )

    def store_results(self, submission_id: str, results: dict[str, dict]) -> None:
        """custom_id -> its RESULT_COLUMNS, and the submission's 'collected' mark, in one transaction."""
        table = pa.table(
            {"custom_id": list(results), **{c: [results[cid].get(c) for cid in results] for c in RESULT_COLUMNS}},
            schema=_RESULTS_SCHEMA,
        )
        with self.store.connect() as con:
            con.register("collected", table)
            with transaction(con):
                con.execute(
                    "UPDATE elicitation_batch_requests r SET "
                    + ", ".join(f"{c} = collected.{c}" for c in RESULT_COLUMNS)
                    + " FROM collected WHERE r.submission_id = ? AND r.custom_id = collected.custom_id",
                    [submission_id],
                )
                con.execute(
                    "UPDATE elicitation_batches SET collected_at = ? WHERE submission_id = ?",
                    [utc_now(), submission_id],
                )

    def unsettled(self) -> dict[str, list[tuple]]:
        """sample_id -> its unsettled collected requests (part, result, http_status, text, score, error,
        tokens, submitted at), oldest first, for rows not in an open submission."""
        rows = self._fetch(
            """
            SELECT r.sample_id, r.part, r.result, r.http_status, r.text, r.score, r.error,
                   coalesce(r.prompt_tokens, 0), coalesce(r.completion_tokens, 0), b.created_at
            FROM elicitation_batch_requests r JOIN elicitation_batches b USING (submission_id)
            WHERE r.dataset = ? AND r.elicitor = ? AND NOT r.settled AND r.result IS NOT NULL
              AND r.sample_id NOT IN (
                  SELECT r2.sample_id FROM elicitation_batch_requests r2 JOIN elicitation_batches b2
                  USING (submission_id) WHERE b2.dataset = ? AND b2.elicitor = ? AND b2.collected_at IS NULL)
            ORDER BY r.sample_id, b.created_at, r.part
            """,
            [self.dataset, self.elicitor, self.dataset, self.elicitor],
        )
        history: dict[str, list[tuple]] = defaultdict(list)
        for row in rows:
            history[row[0]].append(row[1:])
        return history

    def mark_settled(self, sample_ids: list[str]) -> None:
        if not sample_ids:
            return
        with self.store.connect() as con:
            con.execute(
                "UPDATE elicitation_batch_requests SET settled = true WHERE dataset = ? AND elicitor = ? "
                "AND NOT settled AND result IS NOT NULL AND sample_id IN (SELECT unnest(?::VARCHAR[]))",
                [self.dataset, self.elicitor, sample_ids],
            )


@dataclass(frozen=True)
class OpenBatch:
    dataset: str
    submission_id: str
    batch_id: str | None  # None: a killed run left it 'preparing'


def open_batches(store: DuckDBStore, elicitor: str) -> list[OpenBatch]:
    """Submissions of `elicitor` not yet collected (read-only)."""
    if not store.path.exists():
        return []
    with store.connect(read_only=True) as con:
        if not table_exists(con, "elicitation_batches"):
            return []
        rows = con.execute(
            "SELECT dataset, submission_id, batch_id FROM elicitation_batches "
            "WHERE elicitor = ? AND collected_at IS NULL ORDER BY created_at",
            [elicitor],
        ).fetchall()
    return [OpenBatch(*r) for r in rows]


def has_open_batches(store: DuckDBStore, dataset: str, elicitor: str) -> bool:
    return any(b.dataset == dataset for b in open_batches(store, elicitor))
