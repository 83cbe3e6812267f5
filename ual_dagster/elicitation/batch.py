"""elicitation.mode: batch - the openai backend through the OpenAI Batch API (half the price).

One run of `elicit_in_batches` (called by elicit_dataset for the pending rows):

1. Submit. The rows' requests become Batch API JSONL lines, `custom_id` = row key
   (`<sample_id>:<elicitor>`, plus `#<j>` for the j-th of consistency's k answers). The
   submission and its requests are written to DuckDB (`elicitation_batches`,
   `elicitation_batch_requests`) *before* anything is sent, under our own submission id;
   then the file is uploaded (files.create, purpose "batch") and the batch created
   (batches.create, completion window 24h) carrying that id in its metadata, and the
   batch id is recorded. A run killed anywhere in between leaves the submission
   'preparing'; the next run looks the id up among the server's batches (batches.list)
   and adopts the batch if it exists, else creates it. A row in an open submission is
   never submitted again, so no row is paid twice.
2. Wait without blocking the orchestrator. The run polls (batches.retrieve) every
   batch_poll_interval_s, logging progress, for at most batch_wait_s; then it raises
   BatchStillRunning ("batch B still running (n/N done), re-run or let the sensor pick
   it up"). The `uncertainty_batches` sensor (assets/sensors.py) polls open batches and
   requests the uncertainty asset when one reaches a terminal status.
3. Collect. The output and error files are downloaded and every answer is read by the
   online path's own functions (backends/openai_api.read_answer, combine_scores,
   raw_answer), so a row gets the same status, score and raw answer as online.
   Per request: an answer is stored with its score; a retryable HTTP error (429, 5xx)
   or an unparseable answer is asked again, in a new batch or online (batch_retry), up
   to max_retries / max_parse_retries like a call online; other HTTP errors fail the
   row. Requests a batch never ran (expired, failed batch) are submitted again; those
   of a cancelled batch are not (a cancel is a person's decision): they stay pending
   for the next run. Results and the batch's 'collected' mark are one transaction,
   and writing a row marks its requests settled, so a kill while collecting only
   re-reads the files (free).
Cost: tokens answered in batches are priced at cost.BATCH_PRICE_FACTOR of the online price.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import openai

from ual_dagster.config.elicitation import OPENAI_DEFAULT_URL, OpenAIElicitation
from ual_dagster.elicitation.backends.openai_api import OpenAIElicitor, resolve_api_key
from ual_dagster.elicitation.batch_remote import TERMINAL, BatchRemote, custom_id, make_client
from ual_dagster.elicitation.batch_results import decide, read_record
from ual_dagster.elicitation.batch_tables import (
    BatchTables,
    OpenBatch,
    Submission,
    ensure_tables,
)
from ual_dagster.elicitation.budget import RunBudget
from ual_dagster.elicitation.cost import estimate_cost_usd
from ual_dagster.elicitation.outcome import Outcome, RunStats
from ual_dagster.elicitation.table import SampleToScore
from ual_dagster.progress import Log
from ual_dagster.storage import DuckDBStore

__all__ = [
    "TERMINAL",
    "BatchElicitation",
    "BatchStillRunning",
    "elicit_in_batches",
    "ensure_tables",
    "poll_open_batches",
]


class BatchStillRunning(RuntimeError):
    """Open batches did not finish within batch_wait_s; a re-run (or the sensor) collects them."""

    def __init__(self, running: list[tuple[str, int, int]]):
        self.running = running
        super().__init__(
            "; ".join(f"batch {b} still running ({done}/{total} done)" for b, done, total in running)
            + ", re-run or let the sensor pick it up"
        )


def _answers_per_sample(cfg: OpenAIElicitation) -> int:
    return cfg.consistency_k if cfg.method == "consistency" else 1


@dataclass
class _Tallies:
    submitted: int = 0
    batches_created: int = 0
    batches_adopted: int = 0
    batches_collected: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    not_run: int = 0
    statuses: dict[str, str] = field(default_factory=dict)


class BatchElicitation:
    """One run: plans the requests still to ask, submits and collects them through the Batch API
    (BatchRemote), records every step in DuckDB (BatchTables) and commits decided rows."""

    def __init__(
        self,
        store: DuckDBStore,
        dataset: str,
        elicitor: str,
        cfg: OpenAIElicitation,
        base_url: str,
        client: openai.OpenAI,
        api_key: str,
        stats: RunStats,
        committer,
        log: Log,
    ):
        self.dataset, self.elicitor, self.cfg = dataset, elicitor, cfg
        self.base_url, self.api_key = base_url, api_key
        self.stats, self.committer, self.log = stats, committer, log
        self.k = _answers_per_sample(cfg)
        self.tables = BatchTables(store, dataset, elicitor)
        self.remote = BatchRemote(client, cfg, dataset, elicitor, self.k, log)
        self.tally = _Tallies()
        self.finished: set[str] = set()  # rows written in this run
        self.cancelled_rows: set[str] = set()  # rows a cancelled batch did not run: not resubmitted this run

    # -- submit ------------------------------------------------------------------------
    def _submit(self, requests: list[tuple[SampleToScore, int]]) -> None:
        submission_id = uuid.uuid4().hex
        # The intent is durable before any byte is sent: a kill from here on resumes this submission.
        self.tables.record_submission(
            submission_id,
            self.base_url,
            [(custom_id(s.sample_id, self.elicitor, p, self.k), s.sample_id, p) for s, p in requests],
        )
        self.stats.calls += len(requests)
        self.tally.submitted += len(requests)
        self._send(submission_id, None, requests)

    def _send(self, submission_id: str, input_file_id: str | None, requests: list[tuple[SampleToScore, int]]) -> None:
        if input_file_id is None:
            input_file_id = self.remote.upload(submission_id, requests)
            self.tables.update(submission_id, input_file_id=input_file_id)
        batch = self.remote.create(submission_id, input_file_id)
        self.tables.update(submission_id, batch_id=batch.id, status=batch.status)
        self.tally.batches_created += 1
        self.log(f"{self.dataset}: submitted batch {batch.id} ({len(requests)} requests)")

    def _reconcile(self, by_id: dict[str, SampleToScore]) -> None:
        """Finish submissions a killed run left 'preparing': adopt their batch, or create it."""
        for sub in self.tables.open_submissions():
            if sub.batch_id is not None:
                continue
            found = self.remote.find(sub)
            if found is not None:
                self.tables.update(
                    sub.submission_id, batch_id=found.id, status=found.status, input_file_id=found.input_file_id
                )
                self.tally.batches_adopted += 1
                self.log(f"{self.dataset}: resumed batch {found.id} of an interrupted run")
                continue
            rows = self.tables.requests_of(sub.submission_id)
            if any(sid not in by_id for sid, _ in rows):
                # a sample changed or got a score meanwhile: drop the never-sent submission
                self.tables.abandon(sub.submission_id)
                continue
            self._send(sub.submission_id, sub.input_file_id, [(by_id[sid], part) for sid, part in rows])

    # -- wait --------------------------------------------------------------------------
    def _poll(self, sub: Submission):
        batch = self.remote.retrieve(sub.batch_id)
        counts = batch.request_counts
        self.tables.update(
            sub.submission_id,
            status=batch.status,
            completed=counts.completed if counts else None,
            failed=counts.failed if counts else None,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )
        self.tally.statuses[batch.id] = batch.status
        return batch

    # -- collect -----------------------------------------------------------------------
    def _read(self, record: dict) -> dict:
        result = read_record(record, self.cfg, self.stats)
        if result["result"] == "answered":
            self.tally.prompt_tokens += result["prompt_tokens"]
            self.tally.completion_tokens += result["completion_tokens"]
            self.stats.prompt_tokens += result["prompt_tokens"]
            self.stats.completion_tokens += result["completion_tokens"]
        return result

    def _collect(self, sub: Submission, batch) -> None:
        ids = self.tables.custom_ids(sub.submission_id)
        results: dict[str, dict] = {}
        for record in self.remote.result_records(batch.output_file_id) + self.remote.result_records(
            batch.error_file_id
        ):
            if record["custom_id"] not in ids:
                raise ValueError(f"batch {batch.id}: result for unknown custom_id {record['custom_id']!r}")
            results[record["custom_id"]] = self._read(record)
        if batch.status == "failed" and batch.errors and batch.errors.data:
            reason = "; ".join(f"{e.code}: {e.message}" for e in batch.errors.data[:3])
        else:
            reason = f"batch {batch.status}: no result"
        for cid in ids - results.keys():
            results[cid] = {"result": "not_run", "error": reason}
        self.tables.store_results(sub.submission_id, results)
        not_run = [cid for cid, r in results.items() if r["result"] == "not_run"]
        self.tally.not_run += len(not_run)
        self.tally.batches_collected += 1
        if batch.status == "cancelled":
            self.cancelled_rows |= {cid.split(":", 1)[0] for cid in not_run}
        self.log(
            f"{self.dataset}: collected batch {batch.id} ({batch.status}): {len(results) - len(not_run)} "
            f"answered or errored, {len(not_run)} not run"
        )

    # -- settle: requests -> uncertainty rows ------------------------------------------
    def _mark_settled(self, sample_ids: list[str]) -> None:
        self.tables.mark_settled(sample_ids)

    def _settle(self, by_id: dict[str, SampleToScore]) -> dict[str, tuple[list[int], list[tuple]]]:
        """Write every row whose requests decide it; return the others' parts still to ask (and history)."""
        final: list[str] = []
        needs: dict[str, tuple[list[int], list[tuple]]] = {}
        for sample_id, requests in self.tables.unsettled().items():
            if sample_id not in by_id:  # scored meanwhile, or no longer a sample: nothing to write
                final.append(sample_id)
                continue
            outcome, todo = decide(requests, self.cfg, self.k)
            if outcome is None:
                needs[sample_id] = (todo, requests)
                continue
            self.committer.add(by_id[sample_id], outcome)
            final.append(sample_id)
            self.finished.add(sample_id)
        self.committer.flush()  # rows first: a kill before the mark below only re-writes identical rows
        self._mark_settled(final)
        return needs

    def _online(self, rows: dict[str, tuple[list[int], list[tuple]]], by_id: dict[str, SampleToScore]) -> None:
        """batch_retry: online - ask these rows through the online path (all k answers of a consistency row,
        afresh); their batch attempts and tokens count in the row too."""
        samples = [by_id[sid] for sid in rows]
        self.log(f"{self.dataset}: {len(samples)} rows the batch did not answer usably go online")

        async def score_all() -> list[Outcome]:
            elicitor = OpenAIElicitor(
                self.cfg,
                self.base_url,
                self.api_key,
                RunBudget(self.stats, self.cfg.max_calls, self.cfg.max_tokens_total),
                self.stats,
            )
            try:
                return await asyncio.gather(*(elicitor.score(s) for s in samples))  # its semaphore bounds concurrency
            finally:
                await elicitor.aclose()

        for sample, outcome in zip(samples, asyncio.run(score_all())):
            earlier = [r for r in rows[sample.sample_id][1] if r[1] != "not_run"]
            outcome.attempts += len(earlier)
            outcome.prompt_tokens += sum(r[6] for r in earlier)
            outcome.completion_tokens += sum(r[7] for r in earlier)
            self.committer.add(sample, outcome)
            self.finished.add(sample.sample_id)
        self.committer.flush()
        self._mark_settled([s.sample_id for s in samples])

    # -- plan: what to submit next ------------------------------------------------------
    def _to_submit(
        self, by_id: dict[str, SampleToScore], needs: dict[str, tuple[list[int], list[tuple]]]
    ) -> list[tuple[SampleToScore, int]]:
        """The parts a decided row still needs, then every part of the rows never asked (not in an open
        submission, not written in this run, not left out by a cancel), capped by max_calls."""
        covered = self.tables.covered()
        todo = [
            (by_id[sid], part) for sid, (parts, _) in needs.items() if sid not in self.cancelled_rows for part in parts
        ] + [
            (sample, part)
            for sid, sample in by_id.items()
            if sid not in covered and sid not in needs and sid not in self.finished and sid not in self.cancelled_rows
            for part in range(self.k)
        ]
        if self.cfg.max_calls is not None and len(todo) > self.cfg.max_calls - self.stats.calls:
            todo = todo[: max(0, self.cfg.max_calls - self.stats.calls)]
            self.stats.budget_exhausted = f"max_calls={self.cfg.max_calls} reached"
        return todo

    # -- the run -----------------------------------------------------------------------
    def run(self, pending: list[SampleToScore]) -> dict:
        by_id = {s.sample_id: s for s in pending}
        deadline = time.monotonic() + self.cfg.batch_wait_s
        rounds = 0
        while True:
            self._reconcile(by_id)
            open_subs = [sub for sub in self.tables.open_submissions() if sub.batch_id is not None]
            polled = [self._poll(sub) for sub in open_subs]
            self.remote.progress(polled)
            for sub, batch in zip(open_subs, polled):
                if batch.status in TERMINAL:
                    self._collect(sub, batch)
            needs = self._settle(by_id)
            if self.cfg.batch_retry == "online":
                retry_online = {sid: v for sid, v in needs.items() if sid not in self.cancelled_rows}
                if retry_online:
                    self._online(retry_online, by_id)
                needs = {sid: v for sid, v in needs.items() if sid not in retry_online}
            todo = self._to_submit(by_id, needs)
            if todo and rounds < self.cfg.batch_max_rounds:
                rounds += 1
                for start in range(0, len(todo), self.cfg.batch_max_requests):
                    self._submit(todo[start : start + self.cfg.batch_max_requests])
                continue
            if todo:
                self.log(f"{self.dataset}: {len(todo)} requests left for the next run (batch_max_rounds reached)")
            still_open = self.tables.open_submissions()
            if not still_open:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BatchStillRunning(self.remote.still_running(still_open))
            time.sleep(min(self.cfg.batch_poll_interval_s, remaining))
        if self.cancelled_rows:
            self.log(
                f"{self.dataset}: {len(self.cancelled_rows)} rows of a cancelled batch were not run; "
                "re-run to submit them again"
            )
        return self.metadata()

    def metadata(self) -> dict:
        t = self.tally
        online_prompt = self.stats.prompt_tokens - t.prompt_tokens
        online_completion = self.stats.completion_tokens - t.completion_tokens
        cost = estimate_cost_usd(online_prompt, online_completion, self.cfg) + estimate_cost_usd(
            t.prompt_tokens, t.completion_tokens, self.cfg, batch=True
        )
        return {
            "mode": "batch",
            "base_url": self.base_url,
            "batch_requests_submitted": t.submitted,
            "batches_created": t.batches_created,
            "batches_resumed": t.batches_adopted,
            "batches_collected": t.batches_collected,
            "batch_requests_not_run": t.not_run,
            "batch_rows_cancelled": len(self.cancelled_rows),
            "batch_statuses": dict(t.statuses),
            "batch_prompt_tokens": t.prompt_tokens,
            "batch_completion_tokens": t.completion_tokens,
            "estimated_cost_usd": round(cost, 6),
        }


def elicit_in_batches(
    pending: list[SampleToScore], cfg: OpenAIElicitation, base_url: str, stats: RunStats, committer, log: Log
) -> dict:
    """Score `pending` through the Batch API (module docstring); returns run metadata."""
    api_key = resolve_api_key(cfg, base_url)
    client = make_client(cfg, base_url, api_key)
    try:
        run = BatchElicitation(
            committer.store,
            committer.dataset,
            committer.elicitor,
            cfg,
            base_url,
            client,
            api_key,
            stats,
            committer,
            log,
        )
        return run.run(pending)
    finally:
        client.close()


# -- for the sensor ------------------------------------------------------------------------
def poll_open_batches(cfg: OpenAIElicitation, found: list[OpenBatch]) -> list[tuple[OpenBatch, str, int, int]]:
    """(batch, server status or 'preparing', requests done, total) for the sensor; reads only."""
    base_url = cfg.base_url or OPENAI_DEFAULT_URL
    client = make_client(cfg, base_url, resolve_api_key(cfg, base_url))
    out = []
    try:
        for b in found:
            if b.batch_id is None:
                out.append((b, "preparing", 0, 0))
                continue
            batch = client.batches.retrieve(b.batch_id)
            c = batch.request_counts
            out.append((b, batch.status, c.completed + c.failed if c else 0, c.total if c else 0))
    finally:
        client.close()
    return out
