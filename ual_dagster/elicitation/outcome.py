"""What eliciting one sample produced, whatever the backend."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    """One sample's result. status: 'ok' (uncertainty set), 'unparseable' or 'failed' (error set)."""

    status: str
    uncertainty: float | None = None
    raw_answer: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0


@dataclass
class RunStats:
    """Counters for one elicitation run (Dagster metadata)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    call_latencies_s: list[float] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)
    logprobs_fallbacks: int = 0
    budget_exhausted: str | None = None

    def count_retry(self, kind: str) -> None:
        self.retries[kind] = self.retries.get(kind, 0) + 1
