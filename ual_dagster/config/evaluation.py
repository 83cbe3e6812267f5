"""Profile section for evaluation (lm-eval, AlpacaEval, token clustering)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ual_dagster.config.base import StrictModel
from ual_dagster.config.training import InProcessLauncher, Launcher


class GenerationConfig(StrictModel):
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    batch_size: int = Field(16, ge=1)
    stop_strings: list[str] = Field(
        ["\n###"],
        description="generation stops at eos or at the first of these (cut from the output); "
        "the testbed uses ['\\n'] because every answer is one line",
    )


class LmEvalTaskConfig(StrictModel):
    name: str = Field(description="a task shipped in ual_dagster/evaluation/tasks or an lm-eval hub task (paper)")
    num_fewshot: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1)
    data_path: str | None = Field(None, description="local JSONL for the shipped tasks (GSM8K-style)")
    revision: str | None = Field(
        None,
        description="commit sha of the hub data set the task loads (e.g. openai/gsm8k for gsm8k and gsm8k_ual); "
        "passed to datasets.load_dataset through the task's dataset_kwargs. Pin it for hub tasks",
    )
    dataset: str = Field(
        "testbed_exact",
        description="testbed_exact_heldout: the samples dataset whose held-out single-answer rows are exported",
    )


class JudgeConfig(StrictModel):
    kind: Literal["testbed", "alpaca_eval"] = Field(
        description="testbed: deterministic judge that knows valid answers; alpaca_eval: an LLM judge"
    )
    annotator: str = Field("weighted_alpaca_eval_gpt4_turbo", description="alpaca_eval annotator config name or path")
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    length_controlled: bool = False
    max_retries: int = Field(4, ge=0, description="openai client retries (5xx, 429, timeouts) per judge call")
    timeout_s: float = Field(60.0, gt=0, description="per judge call")
    concurrency: int = Field(4, ge=1, description="judge calls in flight")
    price_per_1k_prompt_tokens: float | None = Field(
        None, ge=0, description="USD, for `plan`'s judge_cost_usd; None: unknown (free only on a loopback judge)"
    )
    price_per_1k_completion_tokens: float | None = Field(None, ge=0, description="USD, for `plan`")


class AlpacaEvalConfig(StrictModel):
    instructions: Literal["testbed_heldout", "file", "hub"] = "testbed_heldout"
    path: str | None = Field(None, description="file: JSON list of {instruction, output} reference outputs")
    # hub: one JSON file of the hub data set, downloaded with hf_hub_download (its loading
    # script no longer runs under datasets >= 4, alpaca_eval issue #454)
    hub_id: str = "tatsu-lab/alpaca_eval"
    hub_file: str = Field(
        "alpaca_eval_gpt4_baseline.json",
        description="alpaca_eval_gpt4_baseline.json: AlpacaEval 2 references (gpt4_1106_preview); "
        "alpaca_eval.json: AlpacaEval 1 references (text_davinci_003)",
    )
    hub_revision: str | None = Field(None, description="commit sha of the hub data set; pin it")
    limit: int | None = Field(None, ge=1)
    datasets: list[str] = Field(
        ["testbed_open"], description="testbed_heldout: the samples datasets whose held-out rows are the instructions"
    )
    judge: JudgeConfig = JudgeConfig(kind="testbed")


class AnswerLikelihoodConfig(StrictModel):
    """Teacher-forced log-probabilities of the held-out items' valid answers (testbed_likelihood)."""

    datasets: list[str] = Field(
        ["testbed_exact", "testbed_open"],
        description="samples datasets whose held-out rows are scored; an item with one valid answer gives "
        "log_p_answer, one with several gives log_p_valid_set and valid_set_entropy",
    )
    limit: int | None = Field(None, ge=1, description="score the first N held-out items (by sample_id) per dataset")
    batch_size: int = Field(128, ge=1, description="(prompt, answer) sequences per forward pass")


class ClusteringConfig(StrictModel):
    probe_samples: int = Field(64, ge=2)
    max_tokens: int = Field(2000, ge=10)
    layers: list[int] = Field([-1], description="hidden-state layers (negative = from the top)")
    seed: int = 0


class EvaluationConfig(StrictModel):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    launcher: Launcher = Field(
        InProcessLauncher(),
        description="where checkpoint evaluation and token clustering run (docs/deployment.md): the same kinds as "
        "training.launcher (in_process, subprocess, k8s, slurm); every kind but in_process runs "
        "`python -m ual_dagster.evaluation.job_entry` through Dagster Pipes and writes only files",
    )
    generation: GenerationConfig = GenerationConfig()
    lm_eval: list[LmEvalTaskConfig] = []
    alpaca_eval: AlpacaEvalConfig | None = AlpacaEvalConfig()
    answer_likelihood: AnswerLikelihoodConfig | None = None
    clustering: ClusteringConfig = ClusteringConfig()
    bootstrap_iters: int = Field(
        0,
        ge=0,
        description="lm-eval bootstrap resamples for standard errors; 0 reports none (the paper profile uses 1000)",
    )

    @model_validator(mode="before")
    @classmethod
    def _pod_keys_moved(cls, data: object) -> object:
        if isinstance(data, dict) and "k8s_pod" in data:
            raise ValueError(
                "evaluation.k8s_pod moved into evaluation.launcher: write launcher: {kind: k8s, image, state_pvc, "
                "gpus, cpu, memory, node_selector, ...} (docs/deployment.md)"
            )
        return data

    @field_validator("launcher", mode="before")
    @classmethod
    def _launcher_shorthand(cls, value: object) -> object:
        """`launcher: subprocess` is short for `{kind: subprocess}`; the old `local` is `in_process`."""
        if value == "local":
            return {"kind": "in_process"}
        return {"kind": value} if isinstance(value, str) else value
