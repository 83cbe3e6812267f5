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
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import openai
import pyarrow as pa

from ual_dagster.config.elicitation import OPENAI_DEFAULT_URL, OpenAIElicitation
from ual_dagster.elicitation.backends.openai_api import (
    NO_SCORE,
    OpenAIElicitor,
    combine_scores,
    is_retryable_status,
    raw_answer,
    read_answer,
    request_body,
    resolve_api_key,
)
from ual_dagster.elicitation.budget import RunBudget
from ual_dagster.elicitation.cost import estimate_cost_usd
from ual_dagster.elicitation.outcome import Outcome, RunStats
from ual_dagster.elicitation.prompt import render_prompt
from ual_dagster.elicitation.table import SampleToScore, utc_now
from ual_dagster.progress import Log
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import transaction

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
SUBMISSION_KEY = "ual_submission"  # batch metadata key holding our submission id
# batches.list is newest first; stop looking for a submission's batch this long before it was prepared
_LIST_MARGIN_S = 3600
PROGRESS_LOG_INTERVAL_S = 10.0

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


class BatchStillRunning(RuntimeError):
    """Open batches did not finish within batch_wait_s; a re-run (or the sensor) collects them."""

    def __init__(self, running: list[tuple[str, int, int]]):
        self.running = running
        super().__init__(
            "; ".join(f"batch {b} still running ({done}/{total} done)" for b, done, total in running)
            + ", re-run or let the sensor pick it up"
        )


def custom_id(sample_id: str, elicitor: str, part: int, k: int) -> str:
    return f"{sample_id}:{elicitor}" + (f"#{part}" if k > 1 else "")


def _answers_per_sample(cfg: OpenAIElicitation) -> int:
    return cfg.consistency_k if cfg.method == "consistency" else 1


def ensure_tables(con) -> None:
    con.execute(BATCHES_DDL)
    con.execute(REQUESTS_DDL)


def make_client(cfg: OpenAIElicitation, base_url: str, api_key: str) -> openai.OpenAI:
    # The SDK retries idempotent calls; batches.create is sent with max_retries=0 (see _create).
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=cfg.timeout_s, max_retries=cfg.max_retries)


@dataclass
class _Sub:
    submission_id: str
    batch_id: str | None
    input_file_id: str | None
    requests: int
    created_at: datetime
    status: str


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
        self.store, self.dataset, self.elicitor, self.cfg = store, dataset, elicitor, cfg
        self.base_url, self.client, self.api_key = base_url, client, api_key
        self.stats, self.committer, self.log = stats, committer, log
        self.k = _answers_per_sample(cfg)
        self.tally = _Tallies()
        self.finished: set[str] = set()  # rows written in this run
        self.cancelled_rows: set[str] = set()  # rows a cancelled batch did not run: not resubmitted this run
        self._last_progress = 0.0
        self._logged_status: dict[str, str] = {}

    # -- DuckDB ------------------------------------------------------------------------
    def _open_subs(self) -> list[_Sub]:
        with self.store.connect() as con:
            ensure_tables(con)
            rows = con.execute(
                "SELECT submission_id, batch_id, input_file_id, requests, created_at, status FROM elicitation_batches "
                "WHERE dataset = ? AND elicitor = ? AND collected_at IS NULL ORDER BY created_at",
                [self.dataset, self.elicitor],
            ).fetchall()
        return [_Sub(*r) for r in rows]

    def _update(self, submission_id: str, **values) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.store.connect() as con:
            con.execute(
                f"UPDATE elicitation_batches SET {sets} WHERE submission_id = ?", [*values.values(), submission_id]
            )

    def _covered(self) -> set[str]:
        with self.store.connect() as con:
            ensure_tables(con)
            rows = con.execute(
                "SELECT DISTINCT r.sample_id FROM elicitation_batch_requests r JOIN elicitation_batches b "
                "USING (submission_id) WHERE b.dataset = ? AND b.elicitor = ? AND b.collected_at IS NULL",
                [self.dataset, self.elicitor],
            ).fetchall()
        return {r[0] for r in rows}

    # -- submit ------------------------------------------------------------------------
    def _lines(self, requests: list[tuple[SampleToScore, int]]) -> bytes:
        out = []
        for sample, part in requests:
            prompt = render_prompt(self.cfg.prompt, sample.instruction, sample.input, sample.output, self.cfg.scale_max)
            out.append(
                json.dumps(
                    {
                        "custom_id": custom_id(sample.sample_id, self.elicitor, part, self.k),
                        "method": "POST",
                        "url": ENDPOINT,
                        "body": request_body(prompt, self.cfg),
                    },
                    ensure_ascii=False,
                )
            )
        return ("\n".join(out) + "\n").encode()

    def _submit(self, requests: list[tuple[SampleToScore, int]]) -> None:
        submission_id = uuid.uuid4().hex
        table = pa.table(
            {
                "submission_id": [submission_id] * len(requests),
                "custom_id": [custom_id(s.sample_id, self.elicitor, p, self.k) for s, p in requests],
                "dataset": [self.dataset] * len(requests),
                "elicitor": [self.elicitor] * len(requests),
                "sample_id": [s.sample_id for s, _ in requests],
                "part": pa.array([p for _, p in requests], pa.int32()),
            }
        )
        # The intent is durable before any byte is sent: a kill from here on resumes this submission.
        with self.store.connect() as con:
            ensure_tables(con)
            con.register("new_requests", table)
            with transaction(con):
                con.execute(
                    "INSERT INTO elicitation_batches (submission_id, dataset, elicitor, base_url, requests, status, created_at) "
                    "VALUES (?, ?, ?, ?, ?, 'preparing', ?)",
                    [submission_id, self.dataset, self.elicitor, self.base_url, len(requests), utc_now()],
                )
                con.execute(
                    "INSERT INTO elicitation_batch_requests (submission_id, custom_id, dataset, elicitor, sample_id, part) "
                    "SELECT * FROM new_requests"
                )
        self.stats.calls += len(requests)
        self.tally.submitted += len(requests)
        self._send(submission_id, None, requests)

    def _send(self, submission_id: str, input_file_id: str | None, requests: list[tuple[SampleToScore, int]]) -> None:
        if input_file_id is None:
            # A re-upload after a kill costs nothing but storage; only a batch is a submission.
            uploaded = self.client.files.create(
                file=(f"ual-{submission_id}.jsonl", self._lines(requests), "application/jsonl"), purpose="batch"
            )
            input_file_id = uploaded.id
            self._update(submission_id, input_file_id=input_file_id)
        # No SDK retry here: a retried create whose first answer was lost would be a second batch.
        # A failure leaves the submission 'preparing'; the next look-up adopts or creates it.
        batch = self.client.with_options(max_retries=0).batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata={SUBMISSION_KEY: submission_id, "ual_dataset": self.dataset[:512]},
        )
        self._update(submission_id, batch_id=batch.id, status=batch.status)
        self.tally.batches_created += 1
        self.log(f"{self.dataset}: submitted batch {batch.id} ({len(requests)} requests)")

    def _find_remote(self, sub: _Sub):
        oldest = sub.created_at.timestamp() - _LIST_MARGIN_S
        for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get(SUBMISSION_KEY) == sub.submission_id:
                return batch
            if batch.created_at < oldest:
                return None
        return None

    def _reconcile(self, by_id: dict[str, SampleToScore]) -> None:
        """Finish submissions a killed run left 'preparing': adopt their batch, or create it."""
        for sub in self._open_subs():
            if sub.batch_id is not None:
                continue
            found = self._find_remote(sub)
            if found is not None:
                self._update(
                    sub.submission_id, batch_id=found.id, status=found.status, input_file_id=found.input_file_id
                )
                self.tally.batches_adopted += 1
                self.log(f"{self.dataset}: resumed batch {found.id} of an interrupted run")
                continue
            with self.store.connect() as con:
                rows = con.execute(
                    "SELECT sample_id, part FROM elicitation_batch_requests WHERE submission_id = ? ORDER BY custom_id",
                    [sub.submission_id],
                ).fetchall()
            if any(sid not in by_id for sid, _ in rows):
                # a sample changed or got a score meanwhile: drop the never-sent submission
                self._update(sub.submission_id, status="abandoned", collected_at=utc_now())
                with self.store.connect() as con:
                    con.execute(
                        "UPDATE elicitation_batch_requests SET result = 'not_run', settled = true "
                        "WHERE submission_id = ?",
                        [sub.submission_id],
                    )
                continue
            self._send(sub.submission_id, sub.input_file_id, [(by_id[sid], part) for sid, part in rows])

    # -- wait --------------------------------------------------------------------------
    def _poll(self, sub: _Sub):
        batch = self.client.batches.retrieve(sub.batch_id)
        counts = batch.request_counts
        self._update(
            sub.submission_id,
            status=batch.status,
            completed=counts.completed if counts else None,
            failed=counts.failed if counts else None,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )
        self.tally.statuses[batch.id] = batch.status
        return batch

    def _progress(self, polled: list) -> None:
        """Log each batch's status and counts when its status changes, else at most every PROGRESS_LOG_INTERVAL_S."""
        now = time.monotonic()
        due = now - self._last_progress >= PROGRESS_LOG_INTERVAL_S
        for b in polled:
            if not due and self._logged_status.get(b.id) == b.status:
                continue
            self._logged_status[b.id] = b.status
            c = b.request_counts
            done = f"{c.completed + c.failed}/{c.total} done, {c.failed} failed" if c else "no counts yet"
            self.log(f"{self.dataset}: batch {b.id} {b.status} ({done})")
        if due and polled:
            self._last_progress = now

    # -- collect -----------------------------------------------------------------------
    def _file_lines(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        text = self.client.files.content(file_id).text
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"batch result file {file_id} line {n}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "custom_id" not in record:
                raise ValueError(f"batch result file {file_id} line {n}: no custom_id")
            out.append(record)
        return out

    def _read_line(self, record: dict) -> dict:
        response, error = record.get("response"), record.get("error")
        if response is None:
            error = error or {}
            return {"result": "not_run", "error": f"{error.get('code')}: {error.get('message')}"}
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except json.JSONDecodeError:
                body = {}
        body = body if isinstance(body, dict) else {}
        if status != 200:
            message = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else None
            return {"result": "http_error", "http_status": status, "error": f"HTTP {status}: {message or body}"}
        usage = body.get("usage") or {}
        text, score = read_answer(body, self.cfg, self.stats)
        prompt_tokens, completion_tokens = (
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )
        self.tally.prompt_tokens += prompt_tokens
        self.tally.completion_tokens += completion_tokens
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        return {
            "result": "answered",
            "http_status": 200,
            "text": text,
            "score": score,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }

    def _collect(self, sub: _Sub, batch) -> None:
        with self.store.connect() as con:
            ids = {
                r[0]
                for r in con.execute(
                    "SELECT custom_id FROM elicitation_batch_requests WHERE submission_id = ?", [sub.submission_id]
                ).fetchall()
            }
        results: dict[str, dict] = {}
        for record in self._file_lines(batch.output_file_id) + self._file_lines(batch.error_file_id):
            if record["custom_id"] not in ids:
                raise ValueError(f"batch {batch.id}: result for unknown custom_id {record['custom_id']!r}")
            results[record["custom_id"]] = self._read_line(record)
        if batch.status == "failed" and batch.errors and batch.errors.data:
            reason = "; ".join(f"{e.code}: {e.message}" for e in batch.errors.data[:3])
        else:
            reason = f"batch {batch.status}: no result"
        for cid in ids - results.keys():
            results[cid] = {"result": "not_run", "error": reason}
        columns = ("result", "http_status", "text", "score", "error", "prompt_tokens", "completion_tokens")
        table = pa.table(
            {
                "custom_id": list(results),
                **{c: [results[cid].get(c) for cid in results] for c in columns},
            },
            schema=pa.schema(
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
            ),
        )
        with self.store.connect() as con:
            con.register("collected", table)
            with transaction(con):
                con.execute(
                    "UPDATE elicitation_batch_requests r SET "
                    + ", ".join(f"{c} = collected.{c}" for c in columns)
                    + " FROM collected WHERE r.submission_id = ? AND r.custom_id = collected.custom_id",
                    [sub.submission_id],
                )
                con.execute(
                    "UPDATE elicitation_batches SET collected_at = ? WHERE submission_id = ?",
                    [utc_now(), sub.submission_id],
                )
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
    def _history(self) -> dict[str, list[tuple]]:
        """sample_id -> its unsettled collected requests (part, result, http_status, text, score, error,
        tokens, submitted at), oldest first, for rows not in an open submission."""
        with self.store.connect() as con:
            ensure_tables(con)
            rows = con.execute(
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
            ).fetchall()
        history: dict[str, list[tuple]] = defaultdict(list)
        for row in rows:
            history[row[0]].append(row[1:])
        return history

    def _decide(self, requests: list[tuple]) -> tuple[Outcome | None, list[int]]:
        """A final Outcome, or None and the parts still to ask."""
        cfg = self.cfg
        scores: dict[int, float] = {}
        texts: dict[int, str | None] = {}
        unparseable: dict[int, int] = defaultdict(int)
        retryable: dict[int, int] = defaultdict(int)
        failed_error: str | None = None
        attempts = prompt_tokens = completion_tokens = 0
        for part, result, http_status, text, score, error, p_tok, c_tok, _ in requests:
            prompt_tokens += p_tok
            completion_tokens += c_tok
            if result == "not_run":
                continue
            attempts += 1
            if result == "answered":
                texts[part] = text
                if score is not None:
                    scores[part] = score
                else:
                    unparseable[part] += 1
            elif is_retryable_status(http_status or 0):
                retryable[part] += 1
                if retryable[part] > cfg.max_retries and failed_error is None:
                    failed_error = f"{error} (gave up after {retryable[part]} attempts)"
            elif failed_error is None:
                failed_error = error
        latency = (utc_now() - requests[0][-1]).total_seconds()
        all_texts = [texts.get(j) for j in range(self.k)]

        def outcome(status: str, u: float | None, err: str | None) -> Outcome:
            return Outcome(
                status=status,
                uncertainty=u,
                raw_answer=raw_answer(all_texts),
                error=err,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_s=latency,
                attempts=attempts,
            )

        if failed_error is not None:
            return outcome("failed", None, failed_error), []
        todo = [j for j in range(self.k) if j not in scores and unparseable[j] <= cfg.max_parse_retries]
        if todo:
            return None, todo
        if len(scores) < self.k:
            return outcome("unparseable", None, NO_SCORE), []
        return outcome("ok", combine_scores([scores[j] for j in range(self.k)], cfg), None), []

    def _mark_settled(self, sample_ids: list[str]) -> None:
        if not sample_ids:
            return
        with self.store.connect() as con:
            con.execute(
                "UPDATE elicitation_batch_requests SET settled = true WHERE dataset = ? AND elicitor = ? "
                "AND NOT settled AND result IS NOT NULL AND sample_id IN (SELECT unnest(?::VARCHAR[]))",
                [self.dataset, self.elicitor, sample_ids],
            )

    def _settle(self, by_id: dict[str, SampleToScore]) -> dict[str, tuple[list[int], list[tuple]]]:
        """Write every row whose requests decide it; return the others' parts still to ask (and history)."""
        final: list[str] = []
        needs: dict[str, tuple[list[int], list[tuple]]] = {}
        for sample_id, requests in self._history().items():
            if sample_id not in by_id:  # scored meanwhile, or no longer a sample: nothing to write
                final.append(sample_id)
                continue
            outcome, todo = self._decide(requests)
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

    # -- the run -----------------------------------------------------------------------
    def run(self, pending: list[SampleToScore]) -> dict:
        by_id = {s.sample_id: s for s in pending}
        deadline = time.monotonic() + self.cfg.batch_wait_s
        rounds = 0
        while True:
            self._reconcile(by_id)
            open_subs = self._open_subs()
            polled = [self._poll(sub) for sub in open_subs if sub.batch_id is not None]
            self._progress(polled)
            for sub, batch in zip([s for s in open_subs if s.batch_id is not None], polled):
                if batch.status in TERMINAL:
                    self._collect(sub, batch)
            needs = self._settle(by_id)
            covered = self._covered()
            if self.cfg.batch_retry == "online":
                retry_online = {sid: v for sid, v in needs.items() if sid not in self.cancelled_rows}
                if retry_online:
                    self._online(retry_online, by_id)
                needs = {sid: v for sid, v in needs.items() if sid not in retry_online}
            todo = [
                (by_id[sid], part)
                for sid, (parts, _) in needs.items()
                if sid not in self.cancelled_rows
                for part in parts
            ] + [
                (sample, part)
                for sid, sample in by_id.items()
                if sid not in covered
                and sid not in needs
                and sid not in self.finished
                and sid not in self.cancelled_rows
                for part in range(self.k)
            ]
            if self.cfg.max_calls is not None and len(todo) > self.cfg.max_calls - self.stats.calls:
                todo = todo[: max(0, self.cfg.max_calls - self.stats.calls)]
                self.stats.budget_exhausted = f"max_calls={self.cfg.max_calls} reached"
            if todo and rounds < self.cfg.batch_max_rounds:
                rounds += 1
                for start in range(0, len(todo), self.cfg.batch_max_requests):
                    self._submit(todo[start : start + self.cfg.batch_max_requests])
                continue
            if todo:
                self.log(f"{self.dataset}: {len(todo)} requests left for the next run (batch_max_rounds reached)")
            still_open = self._open_subs()
            if not still_open:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                running = []
                for sub in still_open:
                    batch = self.client.batches.retrieve(sub.batch_id) if sub.batch_id else None
                    counts = batch.request_counts if batch else None
                    done = counts.completed + counts.failed if counts else 0
                    running.append((sub.batch_id or sub.submission_id, done, counts.total if counts else sub.requests))
                raise BatchStillRunning(running)
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


# -- for the sensor and elicit_dataset -------------------------------------------------------
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
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'elicitation_batches'"
        ).fetchone()[0]
        if not found:
            return []
        rows = con.execute(
            "SELECT dataset, submission_id, batch_id FROM elicitation_batches "
            "WHERE elicitor = ? AND collected_at IS NULL ORDER BY created_at",
            [elicitor],
        ).fetchall()
    return [OpenBatch(*r) for r in rows]


def has_open_batches(store: DuckDBStore, dataset: str, elicitor: str) -> bool:
    return any(b.dataset == dataset for b in open_batches(store, elicitor))


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
