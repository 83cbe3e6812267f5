"""Profile section for uncertainty elicitation: one config class per backend.

The YAML stays flat (`elicitation: {backend: hf_local, hf_model: ..., min_coverage: ...}`);
`backend` picks the class, and a key of another backend (say `model` under hf_local) is
an unknown key there, so a typo or a leftover never passes silently. The fields every
backend has (prompt, which rows, commits, checks, schedule) live in ElicitationCommon.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from ual_dagster.config.base import StrictModel
from ual_dagster.config.launchers import InProcessLauncher, Launcher

# What `base_url: null` means for the openai backend (and for the judge).
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


class ElicitationCommon(StrictModel):
    """Fields shared by every backend: the prompt, which rows get a score, commits, checks, schedule."""

    prompt: str = Field(
        "uncertainty_v1",
        description="a template stem under ual_dagster/elicitation/prompts, or a path to your own .txt template",
    )
    scale_max: int = Field(
        10,
        ge=1,
        le=100,
        description="top of the score scale the prompt asks for (0 = one right answer); scores map to u = s / scale_max",
    )
    elicit_splits: list[Literal["train", "heldout"]] = Field(
        ["train"], min_length=1, description="which sample splits get a score (coverage is measured over these)"
    )
    elicit_scope: Literal["used", "all"] = Field(
        "used",
        description="used: only the train rows some scenario selects (plus the reserve) and, if elicit_splits "
        "has heldout, the held-out rows; all: every row of elicit_splits (see ual_dagster/data/selection.py)",
    )
    selection_reserve: float = Field(
        0.02,
        ge=0.0,
        le=0.5,
        description="used scope: extra rows per scenario share, in selection order, so a few unparseable answers "
        "do not shrink a training set",
    )
    # bookkeeping: how answers reach DuckDB
    batch_commit: int = Field(32, ge=1, description="rows per DuckDB commit while eliciting")
    commit_interval_s: float = Field(5.0, gt=0, description="also commit buffered rows at least this often")
    commit_min_interval_s: float = Field(
        1.0,
        ge=0,
        description="commit at most this often (a DuckDB commit costs ~30 ms CPU); a killed run re-asks at most "
        "about this much work",
    )
    # checks and re-elicitation
    min_coverage: float = Field(0.98, ge=0.0, le=1.0)
    schedule_cron: str = "0 3 * * 1"
    ttl_days: float | None = Field(None, gt=0, description="re-elicit ok rows older than this (None = never)")

    @model_validator(mode="after")
    def _commit_intervals(self) -> ElicitationCommon:
        if self.commit_min_interval_s > self.commit_interval_s:
            raise ValueError("commit_min_interval_s must not exceed commit_interval_s")
        return self


class OpenAIElicitation(ElicitationCommon):
    """An OpenAI-compatible chat-completions endpoint (online calls or the Batch API)."""

    backend: Literal["openai"] = "openai"
    model: str = Field(min_length=1, description="model name sent to the endpoint")
    method: Literal["verbalized", "logprobs", "consistency"] = "verbalized"
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint; 'local-heuristic' starts the bundled heuristic loopback server, "
        "'local-model' a loopback server (with logprobs) for `model`: a local transformers folder or 'packaged:smollm2'",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(64, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0)
    max_parse_retries: int = Field(2, ge=0)
    concurrency: int = Field(16, ge=1, le=1024)
    consistency_k: int = Field(5, ge=2)
    consistency_statistic: Literal["std", "entropy"] = Field(
        "std",
        description="consistency: u = std of the k scores / 0.5 (its maximum on [0,1]), or entropy of their histogram over "
        "the integer scale / log(min(k, scale_max + 1))",
    )
    top_logprobs: int = Field(20, ge=1, le=20, description="logprobs: candidates requested at the score token")
    answer_prefill: bool = Field(
        False,
        description="end the request with the assistant turn '{\"uncertainty\": ' for the server to continue "
        "(continue_final_message: vLLM, base_url 'local-model'), so small models write the score first",
    )
    # ual_dagster/elicitation/retry.py: backoff_delay
    backoff_base_s: float = Field(
        0.5,
        gt=0,
        description="retry n (1-based) waits c/2 plus a uniform jitter in [0, c/2], c = min(backoff_max_s, "
        "base * 2**(n-1)); a server's Retry-After, when given, replaces this wait",
    )
    backoff_max_s: float = Field(30.0, gt=0, description="cap on c, the backoff ceiling above")
    retry_after_max_s: float = Field(120.0, gt=0, description="cap on a server's Retry-After")
    # online calls, or the Batch API at its lower price (ual_dagster/elicitation/batch.py)
    mode: Literal["online", "batch"] = Field("online", description="one call per answer, or the Batch API")
    batch_wait_s: float = Field(
        300.0,
        ge=0,
        description="batch: how long the asset polls open batches before failing with 'still running' "
        "(the uncertainty_batches sensor re-runs it when they finish); 0 = submit and return",
    )
    batch_poll_interval_s: float = Field(30.0, gt=0, description="batch: seconds between status polls")
    batch_retry: Literal["batch", "online"] = Field(
        "batch", description="batch: where rows go that a batch did not answer usably (expired, 5xx, unparseable)"
    )
    batch_max_rounds: int = Field(3, ge=1, description="batch: new submissions per run (a re-run continues)")
    batch_max_requests: int = Field(
        50_000, ge=1, le=50_000, description="batch: requests per batch (the API's cap is 50,000)"
    )
    # budget
    max_calls: int | None = Field(None, ge=0, description="stop cleanly after this many API calls per run")
    max_tokens_total: int | None = Field(None, ge=0)
    price_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    price_per_1k_completion_tokens: float = Field(0.0, ge=0)
    # the server base_url 'local-model' starts (ual_dagster/elicitation/model_server.py)
    hf_batch_size: int = Field(8, ge=1, description="base_url 'local-model': prompts per forward pass")
    hf_device: str = Field("cpu", description="base_url 'local-model': torch device")

    @model_validator(mode="after")
    def _openai_fields(self) -> OpenAIElicitation:
        if self.mode == "batch" and self.base_url == "local-heuristic":
            raise ValueError(
                "mode 'batch' needs a server with the Batch API (files + batches endpoints); the bundled "
                "'local-heuristic' server has only chat completions: use mode 'online' or another base_url"
            )
        if self.method == "consistency" and self.temperature <= 0:
            raise ValueError("method 'consistency' needs temperature > 0 (k samples at temperature 0 do not disperse)")
        return self


class HFLocalElicitation(ElicitationCommon):
    """A transformers model read in-process: u = expected score over the score tokens."""

    backend: Literal["hf_local"] = "hf_local"
    hf_model: str = Field(min_length=1, description="local path, hub id, or 'packaged:smollm2' (ual_dagster/models)")
    hf_batch_size: int = Field(8, ge=1, description="prompts per forward pass")
    hf_device: str = Field("cpu", description="torch device")
    launcher: Launcher = Field(
        InProcessLauncher(),
        description="where the model runs (docs/deployment.md): in the step's process, or as an engine job "
        "(subprocess, k8s, slurm) that journals its answers for the step to commit; not part of the elicitor",
    )


class FileElicitation(ElicitationCommon):
    """Scores imported from a file (ual_dagster/elicitation/backends/file_import.py)."""

    backend: Literal["file"] = "file"
    file_path: str = Field(min_length=1, description="score file; relative paths resolve against the project root")


class OracleElicitation(ElicitationCommon):
    """The testbed's known intrinsic uncertainty (no model is asked)."""

    backend: Literal["oracle"] = "oracle"


ELICITATION_BACKENDS: dict[str, type[ElicitationCommon]] = {
    "openai": OpenAIElicitation,
    "hf_local": HFLocalElicitation,
    "file": FileElicitation,
    "oracle": OracleElicitation,
}

ElicitationConfig = Annotated[
    OpenAIElicitation | HFLocalElicitation | FileElicitation | OracleElicitation,
    Field(discriminator="backend"),
]

_ADAPTER: TypeAdapter[ElicitationConfig] = TypeAdapter(ElicitationConfig)


def parse_elicitation(data: dict[str, Any] | str | bytes) -> ElicitationConfig:
    """The backend's config class validated from a flat mapping (or its JSON text)."""
    if isinstance(data, str | bytes):
        return _ADAPTER.validate_json(data)
    return _ADAPTER.validate_python(data)
