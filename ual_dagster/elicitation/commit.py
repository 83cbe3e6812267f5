"""Persist every answer as it arrives, and commit answers to DuckDB in small batches.

Each answer is first appended to the data set's journal (one `write` of one JSON line to
a file opened O_APPEND: once it returns, the line is in the kernel and survives a
SIGKILL of this process) and only then counted and buffered. The buffer goes to DuckDB
in batches: one is due when cfg.batch_commit rows are buffered and
cfg.commit_min_interval_s has passed since the last commit, or when cfg.commit_interval_s
has passed, so commits stay cheap at hundreds of answers per second (each DuckDB
connection + upsert costs ~30 ms of CPU here).

A killed run thus loses nothing it was answered: the next run replays the journal into
DuckDB (`replay_journal`, under the data set's lock) before it looks for pending rows,
and asks again only for requests that were still in flight at the kill. The journal is
emptied once its rows are in DuckDB (after the final commit, or after a replay).
It survives a process kill, not a power cut (no fsync per answer: that would cost a disk
flush per answer); a power cut loses at most the answers since the last batch commit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from ual_dagster.config.elicitation import ElicitationConfig
from ual_dagster.elicitation.outcome import Outcome
from ual_dagster.elicitation.table import (
    SampleToScore,
    UncertaintyRow,
    utc_now,
    write_rows,
)
from ual_dagster.storage import DuckDBStore

PROGRESS_LOG_INTERVAL_S = 5.0


def journal_path(store: DuckDBStore, dataset: str) -> Path:
    """The data set's answer journal, next to the DuckDB file."""
    return store.path.parent / f"{store.path.name}.elicitation" / f"{dataset}.journal.jsonl"


def _journal_line(row: UncertaintyRow, cutoff: datetime | None) -> bytes:
    record = asdict(row)
    record["created_at"] = row.created_at.isoformat()
    record["cutoff"] = cutoff.isoformat() if cutoff is not None else None
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def replay_journal(store: DuckDBStore, dataset: str, log: Callable[[str], None]) -> int:
    """Commit the rows a killed run journaled but did not commit, then empty the journal;
    returns how many rows were replayed. Call with the data set's lock held."""
    path = journal_path(store, dataset)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    by_cutoff: dict[str | None, list[UncertaintyRow]] = {}
    torn = 0
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
            cutoff = record.pop("cutoff")
            record["created_at"] = datetime.fromisoformat(record["created_at"])
            by_cutoff.setdefault(cutoff, []).append(UncertaintyRow(**record))
        except (ValueError, TypeError, KeyError):
            torn += 1  # a line cut short by a crash mid-write: that answer is asked again
    for cutoff, rows in by_cutoff.items():
        write_rows(store, rows, datetime.fromisoformat(cutoff) if cutoff else None)
    n = sum(len(rows) for rows in by_cutoff.values())
    log(
        f"{dataset}: replayed {n} journaled answers of an interrupted run into DuckDB"
        + (f" ({torn} torn lines skipped)" if torn else "")
    )
    os.truncate(path, 0)
    return n


class RowCommitter:
    def __init__(
        self,
        store: DuckDBStore,
        dataset: str,
        elicitor: str,
        cfg: ElicitationConfig,
        cutoff,
        total: int,
        log: Callable[[str], None],
    ):
        self.store, self.dataset, self.elicitor, self.cutoff = store, dataset, elicitor, cutoff
        self.batch_commit, self.interval_s = cfg.batch_commit, cfg.commit_interval_s
        self.min_interval_s = cfg.commit_min_interval_s
        self.total, self.log = total, log
        self.buffer: list[UncertaintyRow] = []
        self.committed: dict[str, int] = {"ok": 0, "unparseable": 0, "failed": 0}
        self._last_commit = self._last_log = time.monotonic()
        self.journal = journal_path(store, dataset)
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        self._journal_fd: int | None = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def add(self, sample: SampleToScore, outcome: Outcome) -> bool:
        """Journal one row, then buffer it; True when a commit is due (the caller then commits)."""
        row = UncertaintyRow(
            sample_id=sample.sample_id,
            dataset=self.dataset,
            elicitor=self.elicitor,
            uncertainty=outcome.uncertainty,
            status=outcome.status,
            raw_answer=outcome.raw_answer,
            error=outcome.error,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_s=round(outcome.latency_s, 6),
            attempts=outcome.attempts,
            created_at=utc_now(),
        )
        if self._journal_fd is not None:
            os.write(self._journal_fd, _journal_line(row, self.cutoff))
        self.buffer.append(row)
        since = time.monotonic() - self._last_commit
        return (len(self.buffer) >= self.batch_commit and since >= self.min_interval_s) or since >= self.interval_s

    def take(self) -> list[UncertaintyRow]:
        """Detach the buffered rows (on the caller's thread) for `write`."""
        rows, self.buffer = self.buffer, []
        self._last_commit = time.monotonic()
        return rows

    def write(self, rows: list[UncertaintyRow]) -> None:
        write_rows(self.store, rows, self.cutoff)
        for row in rows:
            self.committed[row.status] += 1
        now = time.monotonic()
        done = sum(self.committed.values())
        if now - self._last_log >= PROGRESS_LOG_INTERVAL_S or done == self.total:
            self._last_log = now
            self.log(
                f"{self.dataset}: committed {done}/{self.total} rows "
                f"(ok {self.committed['ok']}, unparseable {self.committed['unparseable']}, "
                f"failed {self.committed['failed']})"
            )

    def flush(self) -> None:
        self.write(self.take())

    def close(self, committed_all: bool) -> None:
        """Close the journal; empty it when `committed_all` (the final flush succeeded, so every
        journaled row is in DuckDB). Otherwise the next run replays it."""
        if self._journal_fd is not None:
            if committed_all:
                os.ftruncate(self._journal_fd, 0)
            os.close(self._journal_fd)
            self._journal_fd = None
