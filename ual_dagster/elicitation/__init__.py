"""Uncertainty elicitation: one cached score u in [0, 1] per (sample, elicitor).

Public API:
    elicit_dataset(dataset, cfg, store, log=None, stale_before=None) -> ElicitationResult
    current_scores(store, dataset, cfg) -> dict[sample_id, u]
    stale_samples(store, dataset, cfg, now) -> list[sample_id]
    elicitor_fingerprint(cfg) -> str
    dataset_checks(store, dataset, cfg) -> [CheckOutcome]; coverage_check, range_check (pure)
"""

from ual_dagster.elicitation.checks import CheckOutcome, coverage_check, dataset_checks, range_check
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.run import ElicitationResult, current_scores, elicit_dataset, stale_samples

__all__ = [
    "CheckOutcome",
    "ElicitationResult",
    "coverage_check",
    "current_scores",
    "dataset_checks",
    "elicit_dataset",
    "elicitor_fingerprint",
    "range_check",
    "stale_samples",
]
