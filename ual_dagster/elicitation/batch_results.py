"""Reading a Batch API result file, and deciding a row from its collected requests.

Pure functions: every answer is read by the online path's own functions
(backends/openai_api.read_answer, combine_scores, raw_answer), so a row gets the same status,
score and raw answer as online; retries follow the online limits (max_retries for 429/5xx,
max_parse_retries for an unparseable answer).
"""

from __future__ import annotations

import json
from collections import defaultdict

from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation.backends.openai_api import (
    NO_SCORE,
    combine_scores,
    is_retryable_status,
    raw_answer,
    read_answer,
)
from ual_dagster.elicitation.outcome import Outcome, RunStats
from ual_dagster.elicitation.table import utc_now
from ual_dagster.jsonl import json_objects


def parse_result_file(file_id: str, text: str) -> list[dict]:
    """The records of a result (or error) file; a line that is not a JSON object with a custom_id
    is an error naming the file and line."""
    where = f"batch result file {file_id}"
    out = []
    for n, record in json_objects(text.splitlines(), where):
        if "custom_id" not in record:
            raise ValueError(f"{where}:{n}: no custom_id")
        out.append(record)
    return out


def read_record(record: dict, cfg: OpenAIElicitation, stats: RunStats) -> dict:
    """One request's result columns (ual_dagster.elicitation.batch_tables.RESULT_COLUMNS)."""
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
    text, score = read_answer(body, cfg, stats)
    return {
        "result": "answered",
        "http_status": 200,
        "text": text,
        "score": score,
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
    }


def decide(requests: list[tuple], cfg: OpenAIElicitation, k: int) -> tuple[Outcome | None, list[int]]:
    """A row's final Outcome from its collected requests (BatchTables.unsettled's tuples), or
    None and the parts still to ask."""
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
    all_texts = [texts.get(j) for j in range(k)]

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
    todo = [j for j in range(k) if j not in scores and unparseable[j] <= cfg.max_parse_retries]
    if todo:
        return None, todo
    if len(scores) < k:
        return outcome("unparseable", None, NO_SCORE), []
    return outcome("ok", combine_scores([scores[j] for j in range(k)], cfg), None), []
