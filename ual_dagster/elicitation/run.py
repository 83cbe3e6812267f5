"""elicit_dataset: score every sample of a dataset once per elicitor, resumably.

1. The data set's elicitation lock is taken (an flock next to the DuckDB file, released
   by the kernel if this process dies): two elicitors of one data set, in two processes
   or two Dagster instances, never ask for the same row; the second waits, then finds the
   first one's answers cached.
2. Answers a killed run journaled but did not commit are replayed into DuckDB
   (commit.replay_journal), so they are never paid for again.
3. One anti-join finds the samples without a fresh ok row under the current elicitor
   fingerprint (cache hits cost nothing; see table.pending_samples).
4. The backend scores them; each answer is journaled as it arrives and committed to
   DuckDB in small batches.
5. The DataVersion is a hash of the sorted (sample_id, score rounded to 6 places) of the
   dataset's ok rows under this elicitor: unchanged scores, unchanged version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime

from ual_dagster.config.elicitation import (
    OPENAI_DEFAULT_URL,
    ElicitationConfig,
    FileElicitation,
    HFLocalElicitation,
    OpenAIElicitation,
    OracleElicitation,
)
from ual_dagster.config.launchers import InProcessLauncher
from ual_dagster.data.store import dataset_sample_contents
from ual_dagster.elicitation.backends.file_import import content_key, import_scores
from ual_dagster.elicitation.backends.hf_local import score_with_local_model
from ual_dagster.elicitation.backends.openai_api import OpenAIElicitor, resolve_api_key
from ual_dagster.elicitation.backends.oracle import oracle_outcome
from ual_dagster.elicitation.batch import elicit_in_batches
from ual_dagster.elicitation.batch_tables import has_open_batches
from ual_dagster.elicitation.budget import BudgetExhausted, RunBudget
from ual_dagster.elicitation.checks import coverage_check, range_check
from ual_dagster.elicitation.commit import RowCommitter, journal_path, replay_journal
from ual_dagster.elicitation.cost import estimate_cost_usd
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.job import ElicitationJobSpec, write_samples
from ual_dagster.elicitation.local_server import BUNDLED_URLS, bundled_server
from ual_dagster.elicitation.metrics import histogram, percentile, spearman
from ual_dagster.elicitation.outcome import RunStats
from ual_dagster.elicitation.scores import scores_fingerprint, stale_cutoff
from ual_dagster.elicitation.table import (
    SampleToScore,
    pending_samples,
    previous_elicitor_scores,
    scored_samples,
    status_counts,
    utc_now,
)
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.locks import held_lock


@dataclass(frozen=True)
class ElicitationResult:
    fingerprint: str  # the DataVersion
    elicitor: str
    metadata: dict


@contextmanager
def _endpoint(cfg: OpenAIElicitation) -> Iterator[str]:
    if cfg.base_url in BUNDLED_URLS:
        with bundled_server(cfg) as url:
            yield url
    else:
        with nullcontext(cfg.base_url or OPENAI_DEFAULT_URL) as url:
            yield url


async def _elicit_openai(
    pending: list[SampleToScore],
    cfg: OpenAIElicitation,
    base_url: str,
    api_key: str,
    stats: RunStats,
    committer: RowCommitter,
) -> None:
    elicitor = OpenAIElicitor(cfg, base_url, api_key, RunBudget(stats, cfg.max_calls, cfg.max_tokens_total), stats)
    samples = iter(pending)  # shared by the workers; asyncio runs one at a time, so no lock is needed
    # One writer thread: commits run in order and off the event loop, and shutting it down
    # lets a commit already under way finish before elicit_dataset's final flush.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uncertainty-commit")
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        for sample in samples:
            if stats.budget_exhausted:
                return
            try:
                outcome = await elicitor.score(sample)
            except BudgetExhausted:
                return
            if committer.add(sample, outcome):
                await loop.run_in_executor(writer, committer.write, committer.take())

    tasks = [asyncio.create_task(worker()) for _ in range(min(cfg.concurrency, len(pending)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.shutdown(wait=True)
        await elicitor.aclose()


# Runs one local-model elicitation job: (spec, the path it is saved at, its fingerprint) -> the
# summary it reported. The Dagster layer passes one that dispatches to elicitation.launcher.
ElicitationJobRunner = Callable[..., dict]


def _elicit(
    pending: list[SampleToScore],
    cfg: ElicitationConfig,
    stats: RunStats,
    committer: RowCommitter,
    log: Log,
    run_job: ElicitationJobRunner | None = None,
) -> dict:
    """Run the configured backend over `pending`; returns backend-specific metadata."""
    match cfg:
        case OpenAIElicitation(mode="batch"):
            return elicit_in_batches(pending, cfg, cfg.base_url or OPENAI_DEFAULT_URL, stats, committer, log)
        case OpenAIElicitation():
            with _endpoint(cfg) as base_url:
                api_key = resolve_api_key(cfg, base_url)
                log(f"eliciting {len(pending)} samples from {cfg.model} at {base_url} (concurrency {cfg.concurrency})")
                asyncio.run(_elicit_openai(pending, cfg, base_url, api_key, stats, committer))
            return {"base_url": cfg.base_url or OPENAI_DEFAULT_URL}
        case OracleElicitation():
            for sample in pending:
                if committer.add(sample, oracle_outcome(sample)):
                    committer.flush()
            return {}
        case FileElicitation():
            contents = dataset_sample_contents(committer.store, committer.dataset)
            known_keys = {content_key(i, x, o): sid for sid, i, x, o in contents}
            return import_scores(pending, known_keys, {c[0] for c in contents}, cfg, committer, log)
        case HFLocalElicitation() if not isinstance(cfg.launcher, InProcessLauncher):
            return _elicit_in_job(pending, cfg, committer, run_job, log)
        case HFLocalElicitation():
            return score_with_local_model(pending, cfg, stats, committer, log)
    raise TypeError(f"not an elicitation config: {type(cfg).__name__}")


def _elicit_in_job(
    pending: list[SampleToScore],
    cfg: HFLocalElicitation,
    committer: RowCommitter,
    run_job: ElicitationJobRunner | None,
    log: Log,
) -> dict:
    """The local model runs as an engine job that journals its answers (elicitation/job.py);
    this step, holding the data set's lock, commits them by replaying the journal."""
    if run_job is None:
        raise RuntimeError(
            f"elicitation.launcher {cfg.launcher.kind!r} starts an engine job: run the uncertainty asset "
            "(dagster asset materialize), or set elicitation.launcher: in_process"
        )
    fingerprint = stable_hash(committer.elicitor, sorted(s.sample_id for s in pending), length=16)
    job_dir = committer.journal.parent / f"{committer.dataset}.jobs" / fingerprint
    spec = ElicitationJobSpec(
        dataset=committer.dataset,
        elicitor=committer.elicitor,
        elicitation=cfg.model_dump(mode="json"),
        duckdb=str(committer.store.path),
        samples_path=str(write_samples(job_dir / "samples.jsonl", pending)),
        cutoff=committer.cutoff.isoformat() if committer.cutoff else None,
    )
    summary = run_job(spec, spec.save(job_dir / "job_spec.json"), fingerprint=fingerprint)
    replayed = replay_journal(committer.store, committer.dataset, log)
    for status, n in summary.get("by_status", {}).items():
        committer.committed[status] = committer.committed.get(status, 0) + n
    return {**summary.get("metadata", {}), "answered_in_job": replayed, "job": summary.get("job", {})}


def elicitation_lock(store: DuckDBStore, dataset: str, log: Log):
    """The data set's elicitation lock (see the module docstring)."""
    path = journal_path(store, dataset).with_suffix(".lock")
    return held_lock(path, f"another elicitation of data set {dataset!r}", log)


def _open_batches(store: DuckDBStore, dataset: str, cfg: ElicitationConfig, elicitor: str) -> bool:
    """Batch mode: submissions still to collect, even when no row is pending (elicitation/batch.py)."""
    if not (isinstance(cfg, OpenAIElicitation) and cfg.mode == "batch"):
        return False
    return has_open_batches(store, dataset, elicitor)


def elicit_dataset(
    dataset: str,
    cfg: ElicitationConfig,
    store: DuckDBStore,
    log: Log = None,
    stale_before: datetime | None = None,
    only: Collection[str] | None = None,
    run_job: ElicitationJobRunner | None = None,
) -> ElicitationResult:
    """`only`: elicit just these sample ids (ual_dagster.data.selection.targets_for_dataset);
    coverage is then measured over them. None = every sample of `elicit_splits`."""
    log = log or (lambda _msg: None)
    started = time.monotonic()
    elicitor = elicitor_fingerprint(cfg)
    with elicitation_lock(store, dataset, log):
        replayed = replay_journal(store, dataset, log)
        cutoff = stale_cutoff(cfg, utc_now(), stale_before)
        pending, total = pending_samples(store, dataset, elicitor, cfg.elicit_splits, cutoff, only)
        log(f"{dataset}: {total} samples; {total - len(pending)} cached under {elicitor}; {len(pending)} to elicit")
        stats = RunStats()
        committer = RowCommitter(store, dataset, elicitor, cfg, cutoff, len(pending), log)
        backend_metadata: dict = {}
        try:
            if pending or _open_batches(store, dataset, cfg, elicitor):
                try:
                    backend_metadata = _elicit(pending, cfg, stats, committer, log, run_job)
                finally:
                    committer.flush()  # a fault mid-run keeps every answer already received
        except BaseException:
            committer.close(committed_all=False)
            raise
        committer.close(committed_all=True)
    if stats.budget_exhausted:
        log(f"{dataset}: budget exhausted ({stats.budget_exhausted}); kept every paid-for answer; re-run to continue")

    with store.connect() as con:  # one connection for the whole report
        rows = scored_samples(con, dataset, elicitor, cfg.elicit_splits)
        counts = status_counts(con, dataset, elicitor, cfg.elicit_splits)
        previous, old_scores = previous_elicitor_scores(con, dataset, elicitor, cfg.elicit_splits)
    if only is not None:
        wanted = set(only)
        rows = [r for r in rows if r[0] in wanted]
    metadata = _metadata(
        rows, counts, previous, old_scores, dataset, cfg, elicitor, total, len(pending), stats, committer
    )
    metadata.update(backend_metadata)
    metadata["replayed_from_journal"] = replayed
    metadata["seconds"] = round(time.monotonic() - started, 3)
    scores = {sid: float(u) for sid, u, _, _ in rows}
    return ElicitationResult(fingerprint=scores_fingerprint(scores), elicitor=elicitor, metadata=metadata)


def _metadata(
    rows: list[tuple],
    counts: dict[str, int],
    previous: str | None,
    old_scores: dict[str, float],
    dataset: str,
    cfg: ElicitationConfig,
    elicitor: str,
    total: int,
    n_pending: int,
    stats: RunStats,
    committer: RowCommitter,
) -> dict:
    scores = [float(r[1]) for r in rows]
    with_intrinsic = [(float(r[1]), float(r[2])) for r in rows if r[2] is not None]
    pairs = [(old_scores[r[0]], float(r[1])) for r in rows if r[0] in old_scores]
    # only the openai backend has a method, prices and token counts
    cost = (
        estimate_cost_usd(stats.prompt_tokens, stats.completion_tokens, cfg)
        if isinstance(cfg, OpenAIElicitation)
        else 0.0
    )
    method = cfg.method if isinstance(cfg, OpenAIElicitation) else None
    coverage = coverage_check(len(rows), total, cfg.min_coverage)
    metadata = {
        "dataset": dataset,
        "elicitor": elicitor,
        "backend": cfg.backend,
        "method": method,
        "samples": total,
        "cache_hits": total - n_pending,
        "to_elicit": n_pending,
        "calls": stats.calls,
        "run_ok": committer.committed["ok"],
        "run_unparseable": committer.committed["unparseable"],
        "run_failed": committer.committed["failed"],
        "rows_by_status": counts,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "estimated_cost_usd": round(cost, 6),
        "latency_p50_s": _round(percentile(stats.call_latencies_s, 50)),
        "latency_p95_s": _round(percentile(stats.call_latencies_s, 95)),
        "retries": dict(stats.retries),
        "budget_exhausted": stats.budget_exhausted,
        "coverage": round(coverage.metadata["coverage"], 6),
        "coverage_ok": coverage.passed,
        "scores_in_range": range_check(scores).passed,
        "score_mean": _round(sum(scores) / len(scores)) if scores else None,
        "score_histogram": histogram(scores),
        "spearman_vs_intrinsic": _round(spearman([u for u, _ in with_intrinsic], [i for _, i in with_intrinsic])),
        "intrinsic_pairs": len(with_intrinsic),
        "drift_vs_elicitor": previous,
        "drift_spearman": _round(spearman([o for o, _ in pairs], [n for _, n in pairs])) if pairs else None,
        "drift_pairs": len(pairs),
    }
    if method == "logprobs":
        metadata["logprobs_fallbacks"] = stats.logprobs_fallbacks
    return metadata


def _round(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)
