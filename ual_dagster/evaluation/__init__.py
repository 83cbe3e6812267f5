"""Evaluation: lm-eval tasks, AlpacaEval with pluggable judges, eval_scores, report, token clustering.

Names are imported on first use (PEP 562), so that loading the Dagster definitions,
which reads only configuration helpers from here, does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "EvalResult": "checkpoint_eval",
    "evaluate_checkpoint": "checkpoint_eval",
    "evaluation_fingerprint": "checkpoint_eval",
    "EvalData": "eval_data",
    "HeldoutItem": "eval_data",
    "datasets_needed": "eval_data",
    "load_eval_data": "eval_data",
    "ScoreRow": "scores",
    "has_scores": "scores",
    "read_scores": "scores",
    "write_scores": "scores",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"ual_dagster.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ual_dagster.evaluation' has no attribute {name!r}")
