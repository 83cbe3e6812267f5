"""Profile section for uncertainty elicitation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ual_dagster.config.base import StrictModel

# What `base_url: null` means for the openai backend (and for the judge).
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


class ElicitationConfig(StrictModel):
    backend: Literal["openai", "hf_local", "file", "oracle"]
    method: Literal["verbalized", "logprobs", "consistency"] = "verbalized"
    prompt: str = Field(
        "uncertainty_v1",
        description="a template stem under ual_dagster/elicitation/prompts, or a path to your own .txt template",
    )
    # openai backend
    model: str | None = None
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
    scale_max: int = Field(
        10,
        ge=1,
        le=100,
        description="top of the score scale the prompt asks for (0 = one right answer); scores map to u = s / scale_max",
    )
    consistency_statistic: Literal["std", "entropy"] = Field(
        "std",
        description="consistency: u = std of the k scores / 0.5 (its maximum on [0,1]), or entropy of their histogram over "
        "the integer scale / log(min(k, scale_max + 1))",
    )
    top_logprobs: int = Field(20, ge=1, le=20, description="logprobs: candidates requested at the score token")
    answer_prefill: bool = Field(
        False,
        description="openai: end the request with the assistant turn '{\"uncertainty\": ' for the server to continue "
        "(continue_final_message: vLLM, base_url 'local-model'), so small models write the score first",
    )
    backoff_base_s: float = Field(0.5, gt=0, description="retry n waits base * 2**n with full jitter (or Retry-After)")
    backoff_max_s: float = Field(30.0, gt=0)
    retry_after_max_s: float = Field(120.0, gt=0, description="cap on a server's Retry-After")
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
    # openai backend: online calls, or the Batch API at its lower price (ual_dagster/elicitation/batch.py)
    mode: Literal["online", "batch"] = Field("online", description="openai: one call per answer, or the Batch API")
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
    # hf_local backend
    hf_model: str | None = Field(
        None, description="hf_local: local path, hub id, or 'packaged:smollm2' (ual_dagster/models)"
    )
    hf_batch_size: int = Field(8, ge=1, description="hf_local and base_url 'local-model': prompts per forward pass")
    hf_device: str = Field("cpu", description="hf_local and base_url 'local-model': torch device")
    # file backend
    file_path: str | None = None
    # budget and bookkeeping
    max_calls: int | None = Field(None, ge=0, description="stop cleanly after this many API calls per run")
    max_tokens_total: int | None = Field(None, ge=0)
    price_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    price_per_1k_completion_tokens: float = Field(0.0, ge=0)
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
    def _backend_fields(self) -> "ElicitationConfig":
        if self.backend == "openai" and not self.model:
            raise ValueError("backend 'openai' needs 'model'")
        if self.backend == "hf_local" and not self.hf_model:
            raise ValueError("backend 'hf_local' needs 'hf_model'")
        if self.backend == "file" and not self.file_path:
            raise ValueError("backend 'file' needs 'file_path'")
        if self.mode == "batch" and self.backend != "openai":
            raise ValueError("mode 'batch' needs backend 'openai' (the OpenAI Batch API)")
        if self.mode == "batch" and self.base_url == "local-heuristic":
            raise ValueError(
                "mode 'batch' needs a server with the Batch API (files + batches endpoints); the bundled "
                "'local-heuristic' server has only chat completions: use mode 'online' or another base_url"
            )
        if self.commit_min_interval_s > self.commit_interval_s:
            raise ValueError("commit_min_interval_s must not exceed commit_interval_s")
        if self.backend == "openai" and self.method == "consistency" and self.temperature <= 0:
            raise ValueError("method 'consistency' needs temperature > 0 (k samples at temperature 0 do not disperse)")
        return self
