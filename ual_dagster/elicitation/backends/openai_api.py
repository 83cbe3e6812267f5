"""The `openai` backend: the official AsyncOpenAI client against any OpenAI-compatible server.

Requests go through the client's `post("/chat/completions")` (auth, base_url, timeouts,
typed API errors as usual) and the JSON answer is read as a dict.

- Concurrency: at most cfg.concurrency requests in flight (a semaphore around each request;
  backoff sleeps happen outside it, so a waiting retry does not hold a slot), over the
  SDK's aiohttp transport (openai[aiohttp]).
- Retries: 429 (Retry-After honoured), 408/409/5xx, connection errors and timeouts, up to
  cfg.max_retries per call, exponential backoff with jitter. The client's own retries are 0.
- 401/403/404 abort the run (FatalAPIError): every row would fail the same way.
- Unparseable answers are asked again up to cfg.max_parse_retries times, then stored as
  'unparseable' with the raw text.
- Methods:
  verbalized  - the written score (parsing.parse_verbalized).
  logprobs    - expected score over the score tokens' top_logprobs at the first token that
                spells a score. Servers that return no logprobs (transformers serve) fall
                back to the written score; the run's metadata counts these fallbacks.
  answer_prefill - the request ends with an assistant message '{"uncertainty": ' that the
                server continues (`continue_final_message`, as vLLM and the bundled local-model
                server take it), so a model that would otherwise answer the task itself
                writes the score first.
  consistency - k repeated calls at cfg.temperature (> 0; `n` is not used because some
                servers ignore it); u = dispersion of the k written scores. All k must parse.
The API key is passed to the client only; it is never logged or stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import openai
from openai import AsyncOpenAI

from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation.budget import BudgetExhausted, RunBudget
from ual_dagster.elicitation.outcome import Outcome, RunStats
from ual_dagster.elicitation.parsing import (
    dispersion,
    expected_score,
    parse_verbalized,
    score_of_token,
)
from ual_dagster.elicitation.prompt import ANSWER_PREFIX, render_prompt
from ual_dagster.elicitation.retry import backoff_delay, retry_after_s
from ual_dagster.elicitation.table import SampleToScore

# Local servers (vLLM, llama.cpp, transformers serve, the bundled one) accept any key.
LOOPBACK_DUMMY_KEY = "sk-local-no-key"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
_FATAL_STATUS = {401, 403, 404}


class FatalAPIError(RuntimeError):
    """An error every further call would repeat (bad key, unknown model or URL)."""


class CallFailed(Exception):
    """One call failed after all retries (or with a non-retryable status)."""


def is_loopback(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def resolve_api_key(cfg: OpenAIElicitation, base_url: str) -> str:
    key = os.environ.get(cfg.api_key_env)
    if key:
        return key
    if is_loopback(base_url):
        return LOOPBACK_DUMMY_KEY
    raise RuntimeError(
        f"elicitation needs an API key for {base_url}: set the environment variable {cfg.api_key_env} "
        "(elicitation.api_key_env names it; keys are never read from the profile)"
    )


# -- reading answers: shared with the Batch API path (elicitation/batch.py) -------------
NO_SCORE = "no score in answer"


def is_retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def request_body(prompt: str, cfg: OpenAIElicitation) -> dict:
    """The chat-completions request for one call (online) or one batch line's `body`."""
    body: dict = {
        "model": cfg.model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
    }
    if cfg.method == "logprobs":
        body.update(logprobs=True, top_logprobs=cfg.top_logprobs)
    if cfg.answer_prefill:  # the model continues '{"uncertainty": ', so its first token is the score
        body["messages"].append({"role": "assistant", "content": ANSWER_PREFIX})
        body.update(continue_final_message=True, add_generation_prompt=False)
    return body


def read_answer(response: dict, cfg: OpenAIElicitation, stats: RunStats) -> tuple[str | None, float | None]:
    """(answer text, score in [0, 1] or None if unparseable) of one chat-completion response body."""
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = (choice.get("message") or {}).get("content")
    score = _logprob_score(choice, cfg.scale_max, stats) if cfg.method == "logprobs" else None
    if score is None:
        # with answer_prefill the text continues the prefix: '7}' is read as '{"uncertainty": 7}'
        written = ANSWER_PREFIX + text if cfg.answer_prefill and text is not None else text
        score = parse_verbalized(written, cfg.scale_max)
    return text, score


def _logprob_score(choice: dict, scale_max: int, stats: RunStats) -> float | None:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        stats.logprobs_fallbacks += 1
        return None
    for entry in content:
        token = str(entry.get("token", ""))
        if score_of_token(token, scale_max) is None:
            continue
        candidates = [(str(alt["token"]), float(alt["logprob"])) for alt in entry.get("top_logprobs") or []]
        if not any(alt == token for alt, _ in candidates):
            candidates.append((token, float(entry["logprob"])))
        return expected_score(candidates, scale_max)
    return None


def combine_scores(scores: list[float], cfg: OpenAIElicitation) -> float:
    """A sample's u from its k parsed scores (k = 1 unless method is consistency)."""
    return scores[0] if len(scores) == 1 else dispersion(scores, cfg.consistency_statistic, cfg.scale_max)


def raw_answer(texts: list[str | None]) -> str | None:
    """The raw_answer column: the text, or the k texts as a JSON list."""
    return texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)


@dataclass
class _Tally:
    """Per-sample bookkeeping across its calls."""

    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_text: str | None = None
    last_error: str | None = None


class OpenAIElicitor:
    def __init__(self, cfg: OpenAIElicitation, base_url: str, api_key: str, budget: RunBudget, stats: RunStats):
        self.cfg = cfg
        self.budget = budget
        self.stats = stats
        self.semaphore = asyncio.Semaphore(cfg.concurrency)
        # aiohttp transport (the SDK's own DefaultAioHttpClient): about half the client CPU
        # per request of the default httpx transport, which made high concurrency CPU-bound
        # on loopback (benchmarks/bench_elicitation.py).
        self.base_url = base_url
        self.client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=cfg.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(
                timeout=cfg.timeout_s,
                # plain http (local servers) needs no TLS context; building one costs ~60 ms
                verify=not base_url.startswith("http://"),
            ),
        )

    async def aclose(self) -> None:
        await self.client.close()

    # -- one HTTP call with retries -----------------------------------------
    async def _call(self, prompt: str, tally: _Tally, with_logprobs: bool) -> dict:
        body = request_body(prompt, self.cfg)
        retry = 0
        while True:
            self.budget.reserve_call()
            tally.attempts += 1
            try:
                async with self.semaphore:
                    started = time.monotonic()  # request latency, not time queued for a slot
                    # The client's low-level post: same auth, base_url, timeouts and error types as
                    # chat.completions.create, without its per-call TypedDict transform and model
                    # construction, which cost about half the client CPU per call on loopback.
                    text = await self.client.post("/chat/completions", body=body, cast_to=str)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in _FATAL_STATUS:
                    raise FatalAPIError(f"HTTP {status} from {self.base_url}: {exc.message}") from None
                if not is_retryable_status(status):
                    raise CallFailed(f"HTTP {status}: {exc.message}") from None
                kind = "429" if status == 429 else "5xx" if status >= 500 else str(status)
                waited = retry_after_s(exc.response.headers, self.cfg.retry_after_max_s)
                tally.last_error = f"HTTP {status}: {exc.message}"
            except openai.APITimeoutError:
                kind, waited, tally.last_error = "timeout", None, f"timeout after {self.cfg.timeout_s}s"
            except openai.APIConnectionError as exc:
                kind, waited, tally.last_error = "connection", None, f"connection error: {exc}"
            else:
                self.stats.call_latencies_s.append(time.monotonic() - started)
                try:
                    response = json.loads(text)
                except json.JSONDecodeError:
                    response = {}
                if not isinstance(response, dict):
                    response = {}  # a body that is not a JSON object is an unparseable answer, retried as such
                usage = response.get("usage") or {}
                prompt_tokens = int(usage.get("prompt_tokens") or 0)
                completion_tokens = int(usage.get("completion_tokens") or 0)
                tally.prompt_tokens += prompt_tokens
                tally.completion_tokens += completion_tokens
                self.budget.add_usage(prompt_tokens, completion_tokens)
                return response
            retry += 1
            if retry > self.cfg.max_retries:
                raise CallFailed(f"{tally.last_error} (gave up after {retry} attempts)")
            self.stats.count_retry(kind)
            delay = (
                waited if waited is not None else backoff_delay(retry, self.cfg.backoff_base_s, self.cfg.backoff_max_s)
            )
            await asyncio.sleep(delay)

    # -- one parsed score, with parse retries -------------------------------
    async def _one_score(self, prompt: str, tally: _Tally, with_logprobs: bool) -> float | None:
        for _ in range(self.cfg.max_parse_retries + 1):
            response = await self._call(prompt, tally, with_logprobs)
            tally.last_text, score = read_answer(response, self.cfg, self.stats)
            if score is not None:
                return score
        return None

    # -- a sample -----------------------------------------------------------
    async def score(self, sample: SampleToScore) -> Outcome:
        prompt = render_prompt(self.cfg.prompt, sample.instruction, sample.input, sample.output, self.cfg.scale_max)
        started = time.monotonic()
        k = self.cfg.consistency_k if self.cfg.method == "consistency" else 1
        tallies = [_Tally() for _ in range(k)]
        with_logprobs = self.cfg.method == "logprobs"
        # return_exceptions: one sample's failure must not leave its siblings unaccounted for.
        results = await asyncio.gather(
            *(self._one_score(prompt, t, with_logprobs) for t in tallies), return_exceptions=True
        )
        raw = raw_answer([t.last_text for t in tallies])
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if not isinstance(err, (CallFailed, BudgetExhausted)):
                raise err
        if any(isinstance(e, BudgetExhausted) for e in errors):
            if sum(t.attempts for t in tallies) == 0:
                raise next(e for e in errors if isinstance(e, BudgetExhausted))
            # Paid-for partial work is kept, as a row the next run retries.
            status = "unparseable" if _last_text(tallies) is not None else "failed"
            return self._finish(
                tallies, started, status, None, raw, f"run budget exhausted: {self.stats.budget_exhausted}"
            )
        if errors:
            return self._finish(tallies, started, "failed", None, raw, str(errors[0]))
        if any(r is None for r in results):
            return self._finish(tallies, started, "unparseable", None, raw, NO_SCORE)
        return self._finish(tallies, started, "ok", combine_scores(results, self.cfg), raw, None)

    @staticmethod
    def _finish(tallies, started, status, u, raw, error) -> Outcome:
        return Outcome(
            status=status,
            uncertainty=u,
            raw_answer=raw,
            error=error,
            prompt_tokens=sum(t.prompt_tokens for t in tallies),
            completion_tokens=sum(t.completion_tokens for t in tallies),
            latency_s=time.monotonic() - started,
            attempts=sum(t.attempts for t in tallies),
        )


def _last_text(tallies: list[_Tally]) -> str | None:
    texts = [t.last_text for t in tallies if t.last_text is not None]
    return texts[-1] if texts else None
