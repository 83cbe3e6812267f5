"""What elicitation costs, online and through the Batch API (half the online price)."""

from __future__ import annotations

BATCH_PRICE_FACTOR = 0.5


def estimate_cost_usd(prompt_tokens: int, completion_tokens: int, cfg, *, batch: bool = False) -> float:
    """USD for these tokens at cfg's per-1k prices; the Batch API charges BATCH_PRICE_FACTOR of them."""
    online = (
        prompt_tokens / 1000 * cfg.price_per_1k_prompt_tokens
        + completion_tokens / 1000 * cfg.price_per_1k_completion_tokens
    )
    return online * BATCH_PRICE_FACTOR if batch else online
