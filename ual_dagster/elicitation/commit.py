"""Buffer finished rows and commit them in small batches as they finish.

A batch is due when cfg.batch_commit rows are buffered and cfg.commit_min_interval_s has
passed since the last commit, or when cfg.commit_interval_s has passed. A killed run so
loses at most about a second of answers (which the next run re-asks) and never a
committed row, and commits stay cheap at hundreds of answers per second (each DuckDB
connection + upsert costs ~30 ms of CPU here).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ual_dagster.config.elicitation import ElicitationConfig
from ual_dagster.elicitation.outcome import Outcome
from ual_dagster.elicitation.table import (
    SampleToScore,
    UncertaintyRow,
    utc_now,
    write_rows,
)
from ual_dagster.progress import Progress
from ual_dagster.storage import DuckDBStore

PROGRESS_LOG_INTERVAL_S = 5.0


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
        self._last_commit = time.monotonic()
        self.progress = Progress(f"{dataset}: committed", total, log, unit="rows", every_s=PROGRESS_LOG_INTERVAL_S)

    def add(self, sample: SampleToScore, outcome: Outcome) -> bool:
        """Buffer one row; True when a commit is due (the caller then commits)."""
        self.buffer.append(
            UncertaintyRow(
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
        )
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
        c = self.committed
        self.progress.update(sum(c.values()), f"ok {c['ok']}, unparseable {c['unparseable']}, failed {c['failed']}")

    def flush(self) -> None:
        self.write(self.take())
