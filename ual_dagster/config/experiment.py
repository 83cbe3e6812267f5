"""Profile section for the study design: training seeds and the paired comparisons."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ual_dagster.config.base import StrictModel
from ual_dagster.config.sweep import sweep_points


class ExperimentConfig(StrictModel):
    """Seeds are a dimension of every (scenario, method) variant, not more assets.

    A seed sets the LoRA initialisation, the data order and dropout (it replaces
    `training.seed`). Adding a seed trains and evaluates only that seed's checkpoints;
    removing one reuses the rest: each checkpoint is named by a fingerprint that
    includes its seed.
    """

    seeds: list[int] = Field([0], min_length=1, description="training seeds; each variant is trained once per seed")
    baselines: list[str] | None = Field(
        None,
        description="methods every other method is compared against; default: every 'sft' method and every 'ls' "
        "method with 'match'",
    )
    ci_level: float = Field(0.95, gt=0.5, lt=1.0, description="confidence level of the intervals in `comparisons`")
    bootstrap_iters: int = Field(
        4000, ge=200, description="resamples of the hierarchical (seeds x items) bootstrap behind CIs and p-values"
    )
    bootstrap_seed: int = Field(0, description="seed of the bootstrap's random resampling (results are reproducible)")
    # Excluded from dumps (so from every fingerprint): its effect is the methods it generates,
    # which the profile's `methods` already hold once loaded.
    sweep: dict[str, dict[str, Any]] | None = Field(
        None,
        exclude=True,
        description="a grid over method fields, expanded into ordinary methods at load time: "
        "{<method>: {<field>: [values], ...}, <method>: {follow: <method>}} (ual_dagster/config/sweep.py)",
    )

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @field_validator("sweep")
    @classmethod
    def _sweep_names(cls, sweep: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        sweep_points(sweep)  # the grid's own errors (fields, values, follow targets)
        return sweep
