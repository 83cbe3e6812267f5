"""A real causal LM behind an OpenAI-compatible loopback server, with logprobs.

`base_url: local-model` (with `model: packaged:smollm2` or a local transformers folder)
starts this server for the run, so the `openai` backend talks HTTP to a real model,
every method included: `transformers serve` would do for verbalized scores but ignores
`logprobs`/`top_logprobs` (tests/elicitation/test_transformers_serve.py), and llama-cpp-python,
which returns them, is a C++ build. Here each generated token carries the model's raw
log-probability (log-softmax of its logits, before temperature, as vLLM reports them)
and its `top_logprobs` alternatives.

Requests are batched: a worker thread takes every request waiting (up to `max_batch`),
groups them by temperature and runs one left-padded `generate` per group, so the
openai backend's concurrency turns into batched forward passes instead of a queue of
single ones. Temperature 0 is greedy; > 0 samples (seeded once at start-up).
Served: GET /v1/models, POST /v1/chat/completions (messages through the tokenizer's chat
template; max_tokens / max_completion_tokens, temperature, logprobs, top_logprobs, and
vLLM's `continue_final_message`: a final assistant message is continued rather than
answered, which is how `answer_prefill` makes a small model write the score first).
Other fields (response_format, n, stop, tools) are ignored.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ual_dagster.loopback import chat_completion_body, serve_in_thread

DEFAULT_MAX_TOKENS = 64
DISCONNECT_POLL_S = 1.0
MAX_TOP_LOGPROBS = 20


@dataclass
class _Job:
    messages: list[dict]
    continue_final: bool
    max_tokens: int
    temperature: float
    top_logprobs: int | None  # None: no logprobs wanted
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    prompt_ids: list[int] = field(default_factory=list)


class CausalLMService:
    """Loads a transformers causal LM once and answers chat requests in batches on one thread."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_batch: int = 8, seed: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
        self.device = device
        self.max_batch = max_batch
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        )
        self.eos_ids = set(_as_list(self.model.generation_config.eos_token_id) or _as_list(self.tokenizer.eos_token_id))
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.batches: list[int] = []  # size of every batch run, for tests and metadata
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="causal-lm-service", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=60)

    async def answer(
        self, messages: list[dict], continue_final: bool, max_tokens: int, temperature: float, top_logprobs: int | None
    ) -> dict:
        loop = asyncio.get_running_loop()
        job = _Job(messages, continue_final, max_tokens, temperature, top_logprobs, loop, loop.create_future())
        self._jobs.put(job)
        return await job.future

    # -- the worker thread ----------------------------------------------------
    def _work(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                jobs.append(nxt)
            groups: dict[float, list[_Job]] = {}
            for job in (j for j in jobs if not j.future.cancelled()):  # a cancelled request's client has gone
                groups.setdefault(job.temperature, []).append(job)
            for group in groups.values():
                try:
                    results = self._generate(group)
                except Exception as exc:  # every waiting request hears about it, none hangs
                    for job in group:
                        job.loop.call_soon_threadsafe(_set_exception, job.future, exc)
                    continue
                for job, result in zip(group, results):
                    job.loop.call_soon_threadsafe(_set_result, job.future, result)

    def _generate(self, jobs: list[_Job]) -> list[dict]:
        torch = self.torch
        for job in jobs:
            if job.continue_final:  # vLLM's extension: the last (assistant) message is continued, not closed
                text = self.tokenizer.apply_chat_template(job.messages, tokenize=False, continue_final_message=True)
            else:
                text = self.tokenizer.apply_chat_template(job.messages, tokenize=False, add_generation_prompt=True)
            job.prompt_ids = self.tokenizer.encode(text, add_special_tokens=False)
        width = max(len(job.prompt_ids) for job in jobs)
        input_ids = torch.tensor(
            [[self.pad_id] * (width - len(j.prompt_ids)) + j.prompt_ids for j in jobs], device=self.device
        )
        mask = torch.tensor(
            [[0] * (width - len(j.prompt_ids)) + [1] * len(j.prompt_ids) for j in jobs], device=self.device
        )
        temperature = jobs[0].temperature
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature > 0
            else {"do_sample": False}
        )
        self.batches.append(len(jobs))
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max(j.max_tokens for j in jobs),
                pad_token_id=self.pad_id,
                output_logits=True,
                return_dict_in_generate=True,
                **sampling,
            )
        new_tokens = out.sequences[:, width:]
        logprobs = torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1)  # (batch, steps, vocab)
        return [self._result(job, new_tokens[row], logprobs[row]) for row, job in enumerate(jobs)]

    def _result(self, job: _Job, tokens, logprobs) -> dict:
        ids: list[int] = []
        finish = "length"
        for tid in tokens.tolist()[: job.max_tokens]:
            if tid in self.eos_ids:
                finish = "stop"
                break
            ids.append(tid)
        content = None
        if job.top_logprobs is not None:
            content = []
            for step, tid in enumerate(ids):
                row = logprobs[step]
                entry = {
                    "token": self.tokenizer.decode([tid]),
                    "logprob": float(row[tid]),
                    "bytes": None,
                    "top_logprobs": [],
                }
                if job.top_logprobs > 0:
                    values, alt_ids = row.topk(job.top_logprobs)
                    entry["top_logprobs"] = [
                        {"token": self.tokenizer.decode([a]), "logprob": float(v), "bytes": None}
                        for v, a in zip(values.tolist(), alt_ids.tolist())
                    ]
                content.append(entry)
        return {
            "text": self.tokenizer.decode(ids, skip_special_tokens=True),
            "logprobs": None if content is None else {"content": content},
            "finish_reason": finish,
            "prompt_tokens": len(job.prompt_ids),
            "completion_tokens": len(ids) + (finish == "stop"),
        }


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _set_result(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def create_model_app(service: CausalLMService, served_name: str) -> FastAPI:
    app = FastAPI(title=f"ual-dagster loopback model server ({served_name})")

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": served_name, "object": "model", "created": 0, "owned_by": "ual-dagster"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("model") != served_name:
            message = f"model {body.get('model')!r} is not served here; this server serves {served_name!r}"
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=404)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return JSONResponse({"error": {"message": "'messages' must be a non-empty list"}}, status_code=400)
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        top = None
        if body.get("logprobs"):
            top = min(MAX_TOP_LOGPROBS, max(0, int(body.get("top_logprobs") or 0)))
        continue_final = bool(body.get("continue_final_message")) and messages[-1].get("role") == "assistant"
        temperature = float(body.get("temperature") or 0.0)
        answer = asyncio.ensure_future(service.answer(messages, continue_final, max(1, max_tokens), temperature, top))
        while not (await asyncio.wait({answer}, timeout=DISCONNECT_POLL_S))[0]:
            if await request.is_disconnected():  # the client timed out: drop the queued work, so retries do not pile up
                answer.cancel()
                return JSONResponse({"error": {"message": "client disconnected"}}, status_code=499)
        result = answer.result()
        return JSONResponse(
            chat_completion_body(
                result["text"],
                served_name,
                prompt_tokens=result["prompt_tokens"],
                completion_tokens=result["completion_tokens"],
                logprobs=result["logprobs"],
                finish_reason=result["finish_reason"],
            )
        )

    return app


@contextmanager
def local_model_server(
    model_dir: str | Path, served_name: str, device: str = "cpu", max_batch: int = 8
) -> Iterator[str]:
    """Serve a local causal LM for a `with` block; yields its OpenAI base_url ('http://127.0.0.1:PORT/v1')."""
    service = CausalLMService(model_dir, device=device, max_batch=max_batch)
    try:
        with serve_in_thread(create_model_app(service, served_name)) as root:
            yield f"{root}/v1"
    finally:
        service.close()
