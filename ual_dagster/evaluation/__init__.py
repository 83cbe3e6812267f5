"""Evaluation: lm-eval tasks, AlpacaEval with pluggable judges, eval_scores, report, token clustering."""

from ual_dagster.evaluation.checkpoint_eval import EvalResult, evaluate_checkpoint, evaluation_fingerprint
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem, datasets_needed, load_eval_data
from ual_dagster.evaluation.scores import ScoreRow, has_scores, read_scores, write_scores

__all__ = [
    "EvalData", "EvalResult", "HeldoutItem", "ScoreRow", "datasets_needed", "evaluate_checkpoint",
    "evaluation_fingerprint", "has_scores", "load_eval_data", "read_scores", "write_scores",
]
