"""What elicitation calls cost, from the profile's per-1k-token prices.

One place for the arithmetic, so `plan`, the run metadata and the batch mode agree.
The OpenAI Batch API charges half the synchronous price for the same tokens
(BATCH_PRICE_FACTOR); other providers' batch discounts differ, so it is a constant
to change in one place rather than a profile knob.
"""

from __future__ import annotations

from ual_dagster.config.elicitation import ElicitationConfig

BATCH_PRICE_FACTOR = 0.5

# plan estimates prompt tokens from text length; ~4 characters per token is the usual
# rule of thumb for English BPE vocabularies (cl100k / o200k).
CHARS_PER_TOKEN = 4.0


def cost_usd(prompt_tokens: float, completion_tokens: float, cfg: ElicitationConfig, batch: bool = False) -> float:
    """Price of these tokens at the profile's rates; `batch`: through the Batch API."""
    cost = (
        prompt_tokens / 1000 * cfg.price_per_1k_prompt_tokens
        + completion_tokens / 1000 * cfg.price_per_1k_completion_tokens
    )
    return cost * (BATCH_PRICE_FACTOR if batch else 1.0)


def calls_per_row(cfg: ElicitationConfig) -> int:
    """HTTP calls one row costs when every answer parses (consistency asks k times)."""
    return cfg.consistency_k if cfg.backend == "openai" and cfg.method == "consistency" else 1


def estimate_tokens(text_chars: int) -> int:
    return int(round(text_chars / CHARS_PER_TOKEN))
