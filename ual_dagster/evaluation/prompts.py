"""The prompt a checkpoint is evaluated with: exactly the text it was trained on.

Training owns the template (`ual_dagster.train.examples.render_prompt`) and its token
layout (bos + prompt tokens without special tokens + response); evaluation reuses both.
"""

from __future__ import annotations

from typing import Any

from ual_dagster.train.examples import render_prompt as _training_render_prompt


def render_prompt(instruction: str, input: str = "", template: str = "alpaca") -> str:
    return _training_render_prompt(instruction, input or "", template)


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """bos + prompt tokens, as training builds them (independent of the tokenizer's post-processor)."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
