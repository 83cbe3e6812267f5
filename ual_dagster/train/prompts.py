"""The prompt a model is tuned and evaluated with: templates, rendering and its token layout.

Training owns the format; evaluation imports it from here, so a checkpoint is asked exactly
the text it was trained on (bos + prompt tokens without special tokens + response), and the
tiny base model's pre-training texts use it too (`render_text`). Plain Python: no torch.
"""

from __future__ import annotations

from typing import Any

ALPACA_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
ALPACA_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


def render_prompt(instruction: str, input: str | None, template: str) -> str:
    """The text the model sees before its response ("alpaca" or "plain")."""
    if template == "alpaca":
        if input:
            return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
        return ALPACA_NO_INPUT.format(instruction=instruction)
    if template == "plain":
        return f"{instruction}\n{input}\n" if input else f"{instruction}\n"
    raise ValueError(f"unknown prompt template {template!r}; allowed: alpaca, plain")


def render_text(instruction: str, input: str | None, output: str, template: str) -> str:
    """Prompt and response as one text (pre-training corpus of the tiny base model)."""
    return render_prompt(instruction, input, template) + output


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """bos + prompt tokens, as training builds them (independent of the tokenizer's post-processor)."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
