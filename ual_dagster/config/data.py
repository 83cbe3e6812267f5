"""Profile sections for data sets and training scenarios."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ual_dagster.config.base import StrictModel
from ual_dagster.testbed_families import family_quotas, select_families

FileFormat = Literal[
    "auto",
    "alpaca_json",
    "alpaca_jsonl",
    "gsm8k_jsonl",
    "chat_jsonl",
    "dolly_jsonl",
    "metamath_json",
    "metamath_jsonl",
    "sharegpt_json",
    "sharegpt_jsonl",
    "parquet",
]


class TestbedConfig(StrictModel):
    """The generated testbed: tasks whose intrinsic uncertainty is known by construction."""

    __test__ = False  # not a pytest class despite the name

    kind: Literal["single_answer", "many_answers", "both"] = "both"
    n_samples: int = Field(2000, ge=1, le=1_000_000)
    heldout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    families: list[str] | None = Field(
        None, description="family names to include (None = all of `kind`); see ual_dagster.testbed_families.FAMILIES"
    )
    seed: int = 0
    answers_per_prompt: int | None = Field(
        None,
        ge=1,
        description="train samples per many-answer prompt, each with a distinct valid answer (1 = every prompt "
        "is seen with one answer); None = (prompt, answer) pairs drawn from all pairs, so the count depends on "
        "the family's size (see docs/testbed.md)",
    )
    in_base_corpus: bool = Field(
        True,
        description="build_tiny base models: whether this data set's task families are in the pre-training "
        "corpus (false: fine-tuning is the first time the base model sees them; see docs/testbed.md)",
    )

    @model_validator(mode="after")
    def _families_can_supply(self) -> "TestbedConfig":
        # Raises ValueError naming unknown or wrong-kind families, or an n_samples larger than
        # the selected families' distinct instances allow: a config error, caught at load time.
        family_quotas(select_families(self), self.n_samples, self.heldout_fraction, self.answers_per_prompt)
        return self


class DatasetConfig(StrictModel):
    """One instruction set; becomes one `instruction_sets` and one `uncertainty` asset."""

    source: Literal["file", "hub", "testbed"]
    entropy: Literal["high", "low", "mixed"] = Field(
        description="the UAL task family: high = open-ended, low = one right answer"
    )
    # source: file
    path: str | None = Field(
        None, description="local file; a relative path resolves against the folder of the profile file that states it"
    )
    format: FileFormat = "auto"
    # source: hub
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "train"
    revision: str | None = None
    columns: dict[str, str] | None = Field(
        None,
        description="map {instruction,input,output} -> the field (file) or column (hub) names of the data "
        "(instruction and output required; input optional); None = detect the format from the field names",
    )
    # source: testbed
    testbed: TestbedConfig | None = None
    limit: int | None = Field(None, ge=1, description="keep the first N good rows (after de-duplication)")
    max_reject_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="fail the instruction_sets asset when more than this share of the rows read is rejected "
        "(a data set with no kept row always fails)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_testbed(cls, data: object) -> object:
        """source testbed without a `testbed` section generates the default testbed."""
        if isinstance(data, dict) and data.get("source") == "testbed" and data.get("testbed") is None:
            return {**data, "testbed": {}}
        return data

    @model_validator(mode="after")
    def _source_fields(self) -> "DatasetConfig":
        if self.source == "file" and not self.path:
            raise ValueError("source 'file' needs 'path'")
        if self.source == "hub" and not self.hub_id:
            raise ValueError("source 'hub' needs 'hub_id'")
        if self.columns is not None:
            unknown = sorted(set(self.columns) - {"instruction", "input", "output"})
            missing = sorted({"instruction", "output"} - set(self.columns))
            if unknown or missing:
                raise ValueError(
                    f"'columns' maps instruction, input (optional) and output to column names; "
                    f"unknown keys {unknown}, missing keys {missing}"
                )
        return self


class ScenarioConfig(StrictModel):
    """A training set: a seeded draw of `size` samples, mixed across data sets by `weights`."""

    size: int = Field(ge=1)
    weights: dict[str, float] = Field(description="dataset name -> share of the scenario (normalised to sum 1)")
    seed: int = 0
    # Not part of any fingerprint (exclude=True keeps it out of model_dump): it changes no row,
    # it only lets a scenario with too few rows train on what there is instead of failing.
    allow_short: bool = Field(
        False,
        exclude=True,
        description="train on fewer rows than `size` when a data set has fewer than its share "
        "(default: validate and training_set_<scenario> fail naming the data set and both counts)",
    )

    @model_validator(mode="after")
    def _weights(self) -> "ScenarioConfig":
        if not self.weights:
            raise ValueError("'weights' must name at least one dataset")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("'weights' must be non-negative and sum to more than 0")
        return self


class DataChecksConfig(StrictModel):
    max_reject_rate: float = Field(0.05, ge=0.0, le=1.0, description="asset check: rejects / (rows read)")
