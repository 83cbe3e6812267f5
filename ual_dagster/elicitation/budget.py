"""A run-level budget: stop cleanly after max_calls API calls or max_tokens_total tokens.

Calls are reserved before they are sent, so max_calls is exact even with many requests in
flight. Tokens are known only when an answer arrives, so max_tokens_total may be overshot
by the requests already in flight (at most `concurrency` answers).
"""

from __future__ import annotations

from ual_dagster.elicitation.outcome import RunStats


class BudgetExhausted(Exception):
    """The run's budget is spent; no further calls are made in this run."""


class RunBudget:
    def __init__(self, stats: RunStats, max_calls: int | None, max_tokens_total: int | None):
        self.stats = stats
        self.max_calls = max_calls
        self.max_tokens_total = max_tokens_total

    @property
    def exhausted(self) -> bool:
        return self.stats.budget_exhausted is not None

    def reserve_call(self) -> None:
        if self.stats.budget_exhausted is None:
            if self.max_calls is not None and self.stats.calls >= self.max_calls:
                self.stats.budget_exhausted = f"max_calls={self.max_calls} reached"
            tokens = self.stats.prompt_tokens + self.stats.completion_tokens
            if self.max_tokens_total is not None and tokens >= self.max_tokens_total:
                self.stats.budget_exhausted = f"max_tokens_total={self.max_tokens_total} reached ({tokens} tokens)"
        if self.stats.budget_exhausted is not None:
            raise BudgetExhausted(self.stats.budget_exhausted)
        self.stats.calls += 1

    def add_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
