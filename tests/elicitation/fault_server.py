"""A fault-injecting OpenAI-compatible server for tests (FastAPI on loopback, in a thread).

Each request draws one outcome from a seeded mix: 429 with Retry-After, 500, a hang past
the client's timeout, a garbage (unparseable) answer, or a valid one. Calls are counted
per sample, read from the '[#i]' marker the test samples carry in their instruction; the
valid score for sample i is SCORE_OF(i) on the 0..10 scale.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ual_dagster.loopback import chat_completion_body

MARKER = re.compile(r"\[#(\d+)\]")


def SCORE_OF(i: int) -> int:  # noqa: N802 - a constant-like mapping
    return (i * 7) % 11


@dataclass
class FaultMix:
    rate_limit: float = 0.0
    server_error: float = 0.0
    hang: float = 0.0
    garbage: float = 0.0
    retry_after_header: tuple[str, str] = ("retry-after-ms", "20")
    hang_s: float = 2.0
    latency_s: float = 0.0
    seed: int = 0


class FaultServer:
    def __init__(self, mix: FaultMix | None = None):
        self.mix = mix or FaultMix()
        self.rng = random.Random(self.mix.seed)
        self.calls: Counter[int] = Counter()
        self.call_times: dict[int, list[float]] = defaultdict(list)
        self.outcomes: Counter[str] = Counter()
        self.authorization: set[str] = set()
        self.lock = threading.Lock()
        self.app = self._build()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def set_mix(self, mix: FaultMix) -> None:
        self.mix, self.rng = mix, random.Random(mix.seed)

    def _draw(self) -> str:
        r, m = self.rng.random(), self.mix
        for name, p in (("429", m.rate_limit), ("500", m.server_error), ("hang", m.hang), ("garbage", m.garbage)):
            if r < p:
                return name
            r -= p
        return "valid"

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            match = MARKER.search(prompt)
            sample = int(match.group(1)) if match else -1
            with self.lock:
                self.calls[sample] += 1
                self.call_times[sample].append(time.monotonic())
                self.authorization.add(request.headers.get("authorization", ""))
                outcome = self._draw()
                self.outcomes[outcome] += 1
            if self.mix.latency_s:
                await asyncio.sleep(self.mix.latency_s)
            if outcome == "429":
                name, value = self.mix.retry_after_header
                return JSONResponse(
                    {"error": {"message": "slow down", "type": "rate_limit"}}, 429, headers={name: value}
                )
            if outcome == "500":
                return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
            if outcome == "hang":
                await asyncio.sleep(self.mix.hang_s)
            text = (
                "Sorry, I would rather not say." if outcome == "garbage" else f'{{"uncertainty": {SCORE_OF(sample)}}}'
            )
            return JSONResponse(
                chat_completion_body(text, body.get("model", "m"), prompt_tokens=100, completion_tokens=5)
            )

        @app.get("/v1/models")
        async def models() -> dict:
            return {"object": "list", "data": [{"id": "fault-model", "object": "model"}]}

        return app
