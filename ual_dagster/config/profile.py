"""The whole profile: one YAML file, validated into typed sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from ual_dagster.config.base import StrictModel
from ual_dagster.config.data import DataChecksConfig, DatasetConfig, ScenarioConfig
from ual_dagster.config.elicitation import ElicitationConfig
from ual_dagster.config.evaluation import EvaluationConfig
from ual_dagster.config.experiment import ExperimentConfig
from ual_dagster.config.sweep import SweepPoint, expand_methods, sweep_points
from ual_dagster.config.training import BaseModelConfig, MethodConfig, TrainingConfig


class StorageConfig(StrictModel):
    state_dir: str = Field(
        ".ual_state",
        description="a relative path resolves against the folder of the profile file that states it (the project "
        "root for the bundled profiles and for this default)",
    )
    duckdb_file: str = "ual.duckdb"
    artifacts_dir: str = "artifacts"
    dagster_home: str = "dagster_home"


class OrchestrationConfig(StrictModel):
    executor: Literal["in_process", "multiprocess"] = Field(
        "in_process",
        description="in_process: no per-step interpreter start-up; best on a few cores; multiprocess: up to "
        "max_concurrent steps at once, e.g. to queue several variants' cluster jobs (heavy work runs where "
        "training.launcher and evaluation.launcher say, not in the step's process)",
    )
    max_concurrent: int = Field(2, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _no_k8s_executor(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("executor") == "k8s":
            raise ValueError(
                "executor 'k8s' is gone: evaluation runs in GPU pods through evaluation.launcher {kind: k8s, ...} "
                "(Dagster Pipes from the run worker); use executor: multiprocess (docs/deployment.md)"
            )
        return data

    automation: bool | None = Field(
        None,
        description="start the data-version-aware automation sensor with the daemon; None (default): on, unless "
        "elicitation or the judge costs money (a paid endpoint), then off until the profile says true",
    )
    reelicit_schedule: bool | None = Field(
        None, description="start the re-elicitation schedule with the daemon; None: as `automation`"
    )
    max_unattended_cost_usd: float | None = Field(
        None,
        ge=0,
        description="a scheduled or automated run plans first and refuses, before any call, when the plan costs "
        "more; None: 0 where elicitation or the judge is a paid endpoint (no limit otherwise)",
    )
    gpu: str | None = Field(
        None, description="the GPU type runs use (A100-80GB, H100-80GB, H200, L40S, ...): `plan` estimates gpu_hours"
    )
    gpu_usd_per_hour: float | None = Field(
        None, ge=0, description="what one GPU-hour costs you; `plan` adds gpu_hours x this to total_cost_usd"
    )


class Profile(StrictModel):
    name: str
    description: str = ""
    storage: StorageConfig = StorageConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    datasets: dict[str, DatasetConfig]
    data_checks: DataChecksConfig = DataChecksConfig()
    scenarios: dict[str, ScenarioConfig]
    elicitation: ElicitationConfig
    base_model: BaseModelConfig
    training: TrainingConfig = TrainingConfig()
    methods: dict[str, MethodConfig]
    evaluation: EvaluationConfig = EvaluationConfig()
    experiment: ExperimentConfig = ExperimentConfig()
    allow_unpinned: bool = Field(
        False,
        description="let `validate` pass hub ids without a pinned revision (they follow the hub's main); "
        "see ual_dagster/config/pins.py",
    )
    # the YAML file it was loaded from (set by load_profile; None for a profile built in code)
    _source_path: Path | None = PrivateAttr(None)

    @property
    def source_path(self) -> Path | None:
        return self._source_path

    @model_validator(mode="before")
    @classmethod
    def _expand_sweep(cls, data: Any) -> Any:
        """experiment.sweep's points become ordinary methods (after `extends` is resolved)."""
        if not isinstance(data, dict):
            return data
        exp = data.get("experiment")
        sweep = exp.sweep if isinstance(exp, ExperimentConfig) else exp.get("sweep") if isinstance(exp, dict) else None
        methods = data.get("methods")
        if not sweep or not isinstance(methods, dict):
            return data
        return {**data, "methods": expand_methods(methods, sweep)}

    def sweep_points(self) -> list[SweepPoint]:
        """The methods experiment.sweep generated, each with its family and swept values ([] without a sweep)."""
        return sweep_points(self.experiment.sweep)

    @model_validator(mode="after")
    def _cross_refs(self) -> "Profile":
        for name in list(self.datasets) + list(self.scenarios) + list(self.methods):
            if not name.replace("_", "").isalnum() or not name[0].isalpha():
                raise ValueError(
                    f"name {name!r} must start with a letter and use only letters, digits and '_' "
                    "(it becomes a Dagster asset key)"
                )
        for scen, cfg in self.scenarios.items():
            unknown = sorted(set(cfg.weights) - set(self.datasets))
            if unknown:
                raise ValueError(
                    f"scenarios.{scen}.weights names unknown dataset(s) {unknown}; allowed: {sorted(self.datasets)}"
                )
        if self.training.seed != 0:
            raise ValueError("training.seed is set per checkpoint from experiment.seeds; list the seeds there instead")
        for name, method in self.methods.items():
            if method.match is not None:
                target = self.methods.get(method.match)
                if target is None or target.kind != "ual":
                    ual = sorted(n for n, m in self.methods.items() if m.kind == "ual")
                    raise ValueError(
                        f"methods.{name}.match names {method.match!r}, which is not a ual method; allowed: {ual}"
                    )
        oracle = [n for n, m in self.methods.items() if m.kind == "ual" and m.uncertainty == "oracle"]
        unknown_truth = sorted(
            {d for c in self.scenarios.values() for d in c.weights if self.datasets[d].source != "testbed"}
        )
        if oracle and unknown_truth:
            raise ValueError(
                f"methods {oracle} use uncertainty 'oracle', but data set(s) {unknown_truth} have no known intrinsic "
                "uncertainty (only source 'testbed' has one); drop the oracle method or those data sets from the scenarios"
            )
        swept = {p.family for p in self.sweep_points()}
        for name in self.experiment.baselines or []:
            if name in swept:
                raise ValueError(
                    f"experiment.baselines names {name!r}, which experiment.sweep replaces by its points; name a "
                    "method that is not swept (e.g. sft) or one of the points"
                )
            if name not in self.methods:
                raise ValueError(f"experiment.baselines names unknown method {name!r}; allowed: {sorted(self.methods)}")
        return self

    def baselines(self) -> list[str]:
        """The methods every other method is compared against (experiment.baselines or the default:
        every sft method and every ls method with `match`, except a sweep's points, which are
        what the sweep studies: each is compared against the baselines)."""
        if self.experiment.baselines is not None:
            return list(self.experiment.baselines)
        points = {p.name for p in self.sweep_points()}
        return [
            n
            for n, m in self.methods.items()
            if n not in points and (m.kind == "sft" or (m.kind == "ls" and m.match is not None))
        ]
