"""Pure quality checks on a dataset's scores; the Dagster layer wraps them as asset checks."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ual_dagster.config.elicitation import ElicitationConfig
from ual_dagster.data.store import split_sample_ids
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.table import scored_samples, status_counts
from ual_dagster.storage import DuckDBStore


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def coverage_check(n_scored: int, n_samples: int, min_coverage: float) -> CheckOutcome:
    """Share of the dataset's samples with an ok score, against min_coverage."""
    coverage = n_scored / n_samples if n_samples else 0.0
    passed = n_samples > 0 and coverage >= min_coverage
    return CheckOutcome(
        "uncertainty_coverage",
        passed,
        f"{n_scored}/{n_samples} samples scored ({coverage:.1%}; minimum {min_coverage:.1%})",
        {"coverage": coverage, "scored": n_scored, "samples": n_samples, "min_coverage": min_coverage},
    )


def range_check(scores: Iterable[float]) -> CheckOutcome:
    """Every ok score lies in [0, 1] (and is a number)."""
    values = list(scores)
    bad = [s for s in values if s is None or not (0.0 <= s <= 1.0)]
    return CheckOutcome(
        "uncertainty_range",
        not bad,
        f"{len(bad)} of {len(values)} scores outside [0, 1]",
        {"out_of_range": len(bad), "scores": len(values), "examples": [str(b) for b in bad[:5]]},
    )


def dataset_checks(
    store: DuckDBStore, dataset: str, cfg: ElicitationConfig, only: Collection[str] | None = None
) -> list[CheckOutcome]:
    """Coverage and range of the dataset's current scores under the configured elicitor;
    with `only`, coverage is over those sample ids (the rows the scenarios use)."""
    elicitor = elicitor_fingerprint(cfg)
    with store.connect() as con:
        rows = scored_samples(con, dataset, elicitor, cfg.elicit_splits)
        counts = status_counts(con, dataset, elicitor, cfg.elicit_splits)
    present = split_sample_ids(store, dataset, list(cfg.elicit_splits))
    if only is not None:
        present &= set(only)
        rows = [r for r in rows if r[0] in present]
    n_samples = len(present)
    coverage = coverage_check(len(rows), int(n_samples), cfg.min_coverage)
    if only is not None and n_samples == 0:  # no scenario or probe uses this data set: nothing to score
        coverage = CheckOutcome(
            "uncertainty_coverage",
            True,
            "no rows of this data set are used by a scenario or an evaluation probe",
            {"coverage": 1.0, "scored": 0, "samples": 0, "min_coverage": cfg.min_coverage},
        )
    coverage.metadata.update({f"rows_{k}": v for k, v in counts.items()})
    return [coverage, range_check(r[1] for r in rows)]
