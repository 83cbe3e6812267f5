"""Uncertainty elicitation: one cached score u in [0, 1] per (sample, elicitor).

Public API:
    elicit_dataset(dataset, cfg, store, log=None, stale_before=None) -> ElicitationResult
    current_scores(store, dataset, cfg) -> dict[sample_id, u]
    stale_samples(store, dataset, cfg, now) -> list[sample_id]
    elicitor_fingerprint(cfg) -> str
    dataset_checks(store, dataset, cfg) -> [CheckOutcome]; coverage_check, range_check (pure)
"""

from importlib import import_module

# Imported on first use (PEP 562): the Dagster definitions need only the fingerprint at
# load time, not the HTTP client and statistics stacks.
_EXPORTS = {
    "CheckOutcome": "checks",
    "coverage_check": "checks",
    "dataset_checks": "checks",
    "range_check": "checks",
    "elicitor_fingerprint": "elicitor",
    "ElicitationResult": "run",
    "current_scores": "scores",
    "elicit_dataset": "run",
    "stale_samples": "scores",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"ual_dagster.elicitation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ual_dagster.elicitation' has no attribute {name!r}")
