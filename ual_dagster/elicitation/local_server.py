"""The bundled OpenAI-compatible loopback server behind `base_url: local-heuristic`.

Serves GET /v1/models and POST /v1/chat/completions for the model `heuristic-v1`
(ual_dagster.elicitation.heuristic). It answers with JSON ({"uncertainty": 7}); with
`logprobs: true` it returns a token-level logprobs block whose score token carries
`top_logprobs` over the score tokens; at temperature > 0 it samples the score from its
distribution (so the consistency method disperses). Usage counts whitespace words as
tokens. Prompts not in the uncertainty_v1 layout get a polite, unparseable reply.

`local_heuristic_server()` runs it on 127.0.0.1 (free port) in a background thread:

    with local_heuristic_server() as base_url:   # 'http://127.0.0.1:PORT/v1'
        ...

`bundled_server(cfg)` starts whichever bundled server a profile's `base_url` names:
`local-heuristic` (this one) or `local-model` (a real causal LM, model_server.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ual_dagster.config import resolve_path
from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation.heuristic import estimate_open_endedness
from ual_dagster.elicitation.prompt import extract_task
from ual_dagster.loopback import chat_completion_body, serve_in_thread
from ual_dagster.models import is_packaged, resolve_model_dir

MODEL_NAME = "heuristic-v1"
LOCAL_HEURISTIC_URL = "local-heuristic"
LOCAL_MODEL_URL = "local-model"
BUNDLED_URLS = (LOCAL_HEURISTIC_URL, LOCAL_MODEL_URL)


def _message_text(body: dict) -> str:
    messages = body.get("messages") or []
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


def _answer(
    prompt: str, temperature: float, want_logprobs: bool, top_n: int, rng: random.Random
) -> tuple[str, dict | None]:
    try:
        task = extract_task(prompt)
    except ValueError:
        return "I can only rate prompts written in the uncertainty_v1 layout.", None
    estimate = estimate_open_endedness(task)
    probs = estimate.probabilities
    if temperature > 0:
        tempered = [p ** (1.0 / temperature) for p in probs]
        score = rng.choices(range(len(probs)), weights=tempered)[0]
    else:
        score = max(range(len(probs)), key=probs.__getitem__)
    text = f'{{"uncertainty": {score}}}'
    if not want_logprobs:
        return text, None
    ranked = sorted(range(len(probs)), key=lambda s: -probs[s])[:top_n]
    top = [{"token": str(s), "logprob": math.log(max(probs[s], 1e-300)), "bytes": None} for s in ranked]
    tokens = ['{"', "uncertainty", '":', " ", str(score), "}"]
    content = [
        {
            "token": tok,
            "logprob": math.log(max(probs[score], 1e-300)) if tok == str(score) else 0.0,
            "bytes": None,
            "top_logprobs": top if tok == str(score) else [],
        }
        for tok in tokens
    ]
    return text, {"content": content}


def create_app(model_name: str = MODEL_NAME, seed: int = 0) -> FastAPI:
    app = FastAPI(title="ual-dagster local heuristic elicitor")
    rng = random.Random(seed)

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "ual-dagster"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        body = await request.json()
        prompt = _message_text(body)
        text, logprobs = _answer(
            prompt,
            float(body.get("temperature") or 0.0),
            bool(body.get("logprobs")),
            int(body.get("top_logprobs") or 5),
            rng,
        )
        return JSONResponse(
            chat_completion_body(
                text,
                body.get("model") or model_name,
                prompt_tokens=len(prompt.split()),
                completion_tokens=len(text.split()),
                logprobs=logprobs,
            )
        )

    return app


@contextmanager
def local_heuristic_server(seed: int = 0) -> Iterator[str]:
    """Run the heuristic server for a `with` block; yields its OpenAI base_url."""
    with serve_in_thread(create_app(seed=seed)) as root:
        yield f"{root}/v1"


def local_model_dir(model: str) -> Path:
    """The folder `base_url: local-model` serves: a packaged model (converted on first use) or a local folder."""

    if is_packaged(model):
        return resolve_model_dir(model)
    path = resolve_path(model)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"base_url 'local-model' serves a local transformers folder or a 'packaged:' model; "
            f"elicitation.model {model!r} is neither ({path} has no config.json)"
        )
    return path


@contextmanager
def bundled_server(cfg: OpenAIElicitation) -> Iterator[str]:
    """Start the bundled server `cfg.base_url` names for a `with` block; yields its base_url."""
    if cfg.base_url == LOCAL_HEURISTIC_URL:
        with local_heuristic_server() as url:
            yield url
    elif cfg.base_url == LOCAL_MODEL_URL:
        from ual_dagster.elicitation.model_server import local_model_server

        with local_model_server(local_model_dir(cfg.model), cfg.model, cfg.hf_device, cfg.hf_batch_size) as url:
            yield url
    else:
        raise ValueError(f"base_url {cfg.base_url!r} is not a bundled server; allowed: {list(BUNDLED_URLS)}")
