"""Local-model elicitation (backend hf_local) as an engine job: samples in, journaled answers out.

With `elicitation.launcher` other than in_process, the uncertainty step writes the pending
samples to a file and starts `python -m ual_dagster.elicitation.job_entry` where the launcher
says (a subprocess, a GPU pod, a Slurm job). The job scores them with the local model and
appends every answer to the data set's journal, the same file a killed in-process run leaves
(elicitation/commit.py). It never opens DuckDB: the step, holding the data set's lock,
replays the journal into DuckDB when the job has reported. A job killed half-way loses
nothing it answered: the next run replays those answers first and asks only the rest.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from ual_dagster.cluster.job_entry import JobSpec
from ual_dagster.config.elicitation import HFLocalElicitation
from ual_dagster.elicitation.backends.hf_local import score_with_local_model
from ual_dagster.elicitation.commit import RowCommitter
from ual_dagster.elicitation.outcome import RunStats
from ual_dagster.elicitation.table import SampleToScore
from ual_dagster.progress import Log
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.files import atomic_write_text


class ElicitationJobSpec(JobSpec):
    dataset: str
    elicitor: str
    elicitation: dict  # an HFLocalElicitation as JSON
    duckdb: str  # the DuckDB file: its journal folder is next to it (the job never opens the file)
    samples_path: str  # JSONL of SampleToScore
    cutoff: str | None = None  # the stale cutoff the answers are journaled with (ISO time)


def write_samples(path: str | Path, samples: list[SampleToScore]) -> Path:
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(asdict(s), ensure_ascii=False) + "\n" for s in samples))
    return path


def read_samples(path: str | Path) -> list[SampleToScore]:
    return [SampleToScore(**json.loads(line)) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]


class JournalOnlyCommitter(RowCommitter):
    """A job's committer: every answer goes to the journal; the Dagster step commits it."""

    def write(self, rows) -> None:
        for row in rows:
            self.committed[row.status] += 1
        c = self.committed
        self.progress.update(sum(c.values()), f"answered {sum(c.values())}, journaled for the step to commit")

    def close(self, committed_all: bool) -> None:
        super().close(committed_all=False)  # the journal is the job's result: never emptied here


def run_elicitation_job(spec: ElicitationJobSpec, log: Log = None) -> dict[str, Any]:
    """Score the spec's samples with the local model, journaling every answer; a summary."""
    log = log or (lambda _msg: None)
    cfg = HFLocalElicitation.model_validate(spec.elicitation)
    samples = read_samples(spec.samples_path)
    cutoff = datetime.fromisoformat(spec.cutoff) if spec.cutoff else None
    stats = RunStats()
    committer = JournalOnlyCommitter(
        DuckDBStore(spec.duckdb), spec.dataset, spec.elicitor, cfg, cutoff, len(samples), log
    )
    try:
        metadata = score_with_local_model(samples, cfg, stats, committer, log)
    finally:
        committer.close(committed_all=False)
    return {
        "answered": sum(committer.committed.values()),
        "by_status": dict(committer.committed),
        "prompt_tokens": stats.prompt_tokens,
        "forward_passes": len(stats.call_latencies_s),
        "metadata": metadata,
    }
