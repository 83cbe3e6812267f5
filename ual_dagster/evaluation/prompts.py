"""The prompt a checkpoint is evaluated with: the same text it was trained on.

Training owns the template (`ual_dagster.train.trainer.render_prompt`); evaluation
must render exactly the same prompt, or the model is scored on a format it never saw.
"""

from __future__ import annotations

try:
    from ual_dagster.train.trainer import render_prompt as _training_render_prompt
except ImportError:  # the training module is written concurrently; see _render_fallback
    _training_render_prompt = None

ALPACA_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
ALPACA_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


def _render_fallback(instruction: str, input: str, template: str) -> str:
    """The training template as specified in issue 4, used until the trainer module exists."""
    if template == "alpaca":
        fmt = ALPACA_WITH_INPUT if input else ALPACA_NO_INPUT
        return fmt.format(instruction=instruction, input=input)
    if template == "plain":
        return f"{instruction}\n{input}\n" if input else f"{instruction}\n"
    raise ValueError(f"unknown prompt template {template!r} (allowed: alpaca, plain)")


def render_prompt(instruction: str, input: str = "", template: str = "alpaca") -> str:
    if _training_render_prompt is not None:
        return _training_render_prompt(instruction, input or "", template)
    return _render_fallback(instruction, input or "", template)
