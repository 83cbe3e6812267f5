"""What elicitation costs, online and through the Batch API (half the online price).

One place for the arithmetic, so `plan`, the run metadata and the batch mode agree.
"""

from __future__ import annotations

from ual_dagster.config.elicitation import ElicitationConfig, OpenAIElicitation

BATCH_PRICE_FACTOR = 0.5

# plan estimates prompt tokens from text length; ~4 characters per token is the usual
# rule of thumb for English BPE vocabularies (cl100k / o200k).
CHARS_PER_TOKEN = 4.0


def estimate_cost_usd(
    prompt_tokens: int, completion_tokens: int, cfg: OpenAIElicitation, *, batch: bool = False
) -> float:
    """USD for these tokens at cfg's per-1k prices; the Batch API charges BATCH_PRICE_FACTOR of them."""
    online = (
        prompt_tokens / 1000 * cfg.price_per_1k_prompt_tokens
        + completion_tokens / 1000 * cfg.price_per_1k_completion_tokens
    )
    return online * BATCH_PRICE_FACTOR if batch else online


def calls_per_row(cfg: ElicitationConfig) -> int:
    """HTTP calls one row costs when every answer parses (consistency asks k times)."""
    return cfg.consistency_k if isinstance(cfg, OpenAIElicitation) and cfg.method == "consistency" else 1


def estimate_tokens(text_chars: int) -> int:
    return int(round(text_chars / CHARS_PER_TOKEN))
