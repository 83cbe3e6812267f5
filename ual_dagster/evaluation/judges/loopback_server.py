"""A minimal OpenAI-compatible chat-completions server on 127.0.0.1 (a free port).

It lets a judge written in Python run behind the real openai client, so AlpacaEval's
whole path (client config, base_url, retries, parsing, caching) is exercised offline.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse

from ual_dagster.loopback import chat_completion_body, serve_in_thread

Respond = Callable[[list[dict[str, Any]]], str]


class ReplyWithStatus(Exception):
    """Raised by a `respond` function to answer with an HTTP error (fault injection)."""

    def __init__(self, status: int, message: str = "injected fault"):
        super().__init__(message)
        self.status = status
        self.message = message


def build_app(respond: Respond, model: str, api_key: str, counter: dict[str, int]) -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()

    @app.post("/v1/chat/completions")
    def chat_completions(body: dict[str, Any], authorization: str | None = Header(None)) -> Any:
        if authorization != f"Bearer {api_key}":
            raise HTTPException(status_code=401, detail="bad api key")
        with lock:
            counter["requests"] += 1
        try:
            text = respond(body.get("messages", []))
        except ReplyWithStatus as exc:
            return JSONResponse(
                status_code=exc.status, content={"error": {"message": exc.message, "type": "server_error"}}
            )
        n_prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        n_out = len(text.split())
        return chat_completion_body(text, body.get("model", model), prompt_tokens=n_prompt, completion_tokens=n_out)

    return app


class LoopbackServer:
    """`with LoopbackServer(respond) as srv:` serves at `srv.base_url` until the block ends."""

    def __init__(self, respond: Respond, model: str = "loopback-judge"):
        self.model = model
        self.api_key = secrets.token_urlsafe(16)  # per run; never written anywhere but the temp client config
        self.counter = {"requests": 0}
        self._app = build_app(respond, model, self.api_key, self.counter)
        self._stack = ExitStack()
        self.root_url: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def requests(self) -> int:
        return self.counter["requests"]

    def __enter__(self) -> "LoopbackServer":
        self.root_url = self._stack.enter_context(serve_in_thread(self._app))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
