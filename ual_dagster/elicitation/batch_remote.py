"""The Batch API side of batch elicitation: request lines, upload and create, look-up of a
batch a killed run left unrecorded, polling with progress lines, result files."""

from __future__ import annotations

import json
import time

import openai

from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation.backends.openai_api import request_body
from ual_dagster.elicitation.batch_results import parse_result_file
from ual_dagster.elicitation.batch_tables import Submission
from ual_dagster.elicitation.prompt import render_prompt
from ual_dagster.elicitation.table import SampleToScore
from ual_dagster.progress import Log

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
SUBMISSION_KEY = "ual_submission"  # batch metadata key holding our submission id
# batches.list is newest first; stop looking for a submission's batch this long before it was prepared
_LIST_MARGIN_S = 3600
PROGRESS_LOG_INTERVAL_S = 10.0


def custom_id(sample_id: str, elicitor: str, part: int, k: int) -> str:
    return f"{sample_id}:{elicitor}" + (f"#{part}" if k > 1 else "")


def make_client(cfg: OpenAIElicitation, base_url: str, api_key: str) -> openai.OpenAI:
    # The SDK retries idempotent calls; batches.create is sent with max_retries=0 (see BatchRemote.create).
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=cfg.timeout_s, max_retries=cfg.max_retries)


class BatchRemote:
    """One (dataset, elicitor)'s calls to the Batch API."""

    def __init__(self, client: openai.OpenAI, cfg: OpenAIElicitation, dataset: str, elicitor: str, k: int, log: Log):
        self.client, self.cfg, self.dataset, self.elicitor, self.k, self.log = client, cfg, dataset, elicitor, k, log
        self._last_progress = 0.0
        self._logged_status: dict[str, str] = {}

    def lines(self, requests: list[tuple[SampleToScore, int]]) -> bytes:
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

    def upload(self, submission_id: str, requests: list[tuple[SampleToScore, int]]) -> str:
        """The input file's id. A re-upload after a kill costs nothing but storage; only a batch is a submission."""
        uploaded = self.client.files.create(
            file=(f"ual-{submission_id}.jsonl", self.lines(requests), "application/jsonl"), purpose="batch"
        )
        return uploaded.id

    def create(self, submission_id: str, input_file_id: str):
        # No SDK retry here: a retried create whose first answer was lost would be a second batch.
        # A failure leaves the submission 'preparing'; the next look-up adopts or creates it.
        return self.client.with_options(max_retries=0).batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata={SUBMISSION_KEY: submission_id, "ual_dataset": self.dataset[:512]},
        )

    def find(self, sub: Submission):
        """The server's batch carrying this submission's id, if it was created."""
        oldest = sub.created_at.timestamp() - _LIST_MARGIN_S
        for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get(SUBMISSION_KEY) == sub.submission_id:
                return batch
            if batch.created_at < oldest:
                return None
        return None

    def retrieve(self, batch_id: str):
        return self.client.batches.retrieve(batch_id)

    def progress(self, polled: list) -> None:
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

    def result_records(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        return parse_result_file(file_id, self.client.files.content(file_id).text)

    def still_running(self, subs: list[Submission]) -> list[tuple[str, int, int]]:
        """(batch or submission id, requests done, total) of each open submission."""
        running = []
        for sub in subs:
            batch = self.client.batches.retrieve(sub.batch_id) if sub.batch_id else None
            counts = batch.request_counts if batch else None
            done = counts.completed + counts.failed if counts else 0
            running.append((sub.batch_id or sub.submission_id, done, counts.total if counts else sub.requests))
        return running
