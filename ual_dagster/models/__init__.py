"""Models a profile can name without the hub: `packaged:<name>` references.

A packaged model ships inside a Python package (an optional extra) and is converted once
into an ordinary transformers folder in the model cache (see smollm2.py). Profiles name it
wherever they name a model for elicitation:

    elicitation: {backend: hf_local, hf_model: "packaged:smollm2"}
    elicitation: {backend: openai, base_url: local-model, model: "packaged:smollm2"}

`model_signature` identifies the weights cheaply (package version, file hash) without
converting anything, so elicitor fingerprints can be computed when Dagster loads the
definitions; `resolve_model_dir` converts on first use and returns the folder.
"""

from __future__ import annotations

from pathlib import Path

from ual_dagster.models import smollm2

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = ("smollm2",)


def is_packaged(ref: str) -> bool:
    return ref.startswith(PACKAGED_PREFIX)


def _packaged_name(ref: str) -> str:
    name = ref[len(PACKAGED_PREFIX) :]
    if name not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged model {ref!r}; allowed: {[PACKAGED_PREFIX + n for n in PACKAGED_MODELS]}")
    return name


def model_signature(ref: str) -> dict[str, str]:
    """What identifies a packaged model's weights (raises ModelNotInstalled naming the extra if missing)."""
    _packaged_name(ref)
    return {"packaged": ref, **smollm2.smollm2_signature()}


def resolve_model_dir(ref: str) -> Path:
    """The local transformers folder of a packaged model (converted into the model cache on first use)."""
    _packaged_name(ref)
    return smollm2.smollm2_hf_dir()
