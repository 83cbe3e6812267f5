"""Profile section for uncertainty elicitation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ual_dagster.config.base import StrictModel


class ElicitationConfig(StrictModel):
    backend: Literal["openai", "hf_local", "file", "oracle"]
    method: Literal["verbalized", "logprobs", "consistency"] = "verbalized"
    prompt: str = Field("uncertainty_v1", description="prompt template file stem under ual_dagster/elicitation/prompts")
    # openai backend
    model: str | None = None
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint; 'local-heuristic' starts the bundled loopback server"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(64, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0)
    max_parse_retries: int = Field(2, ge=0)
    concurrency: int = Field(16, ge=1, le=1024)
    consistency_k: int = Field(5, ge=2)
    # hf_local backend
    hf_model: str | None = Field(None, description="hf_local: local path or hub id")
    # file backend
    file_path: str | None = None
    # budget and bookkeeping
    max_calls: int | None = Field(None, ge=0, description="stop cleanly after this many API calls per run")
    max_tokens_total: int | None = Field(None, ge=0)
    price_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    price_per_1k_completion_tokens: float = Field(0.0, ge=0)
    batch_commit: int = Field(32, ge=1, description="rows per DuckDB commit while eliciting")
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
        return self
