"""Profile sections for the base model, LoRA training and the SFT / LS / UAL methods."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ual_dagster.config.base import StrictModel
from ual_dagster.config.launchers import (  # noqa: F401  (re-exported: the launchers lived here)
    InProcessLauncher,
    K8sLauncher,
    Launcher,
    SlurmLauncher,
    SubprocessLauncher,
)


class TinyModelConfig(StrictModel):
    """A small Llama-architecture model built and pre-trained locally (tiny profile)."""

    vocab_size: int = Field(2048, ge=256)
    hidden_size: int = Field(128, ge=16)
    intermediate_size: int = Field(344, ge=16)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    max_position_embeddings: int = Field(256, ge=32)
    corpus_samples: int = Field(4000, ge=1, description="testbed samples (own seed) in the pre-training corpus")
    pretrain_steps: int = Field(600, ge=0)
    pretrain_batch_size: int = Field(32, ge=1)
    pretrain_lr: float = Field(3e-3, gt=0)
    pretrain_seq_len: int = Field(128, ge=8, description="tokens per packed pre-training block")
    pretrain_warmup_steps: int = Field(30, ge=0)
    seed: int = 0


class BaseModelConfig(StrictModel):
    source: Literal["build_tiny", "hub", "local"]
    hub_id: str | None = None
    revision: str | None = Field(None, description="hub commit / tag; pin it for reproducibility")
    path: str | None = None
    tiny: TinyModelConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_tiny(cls, data: object) -> object:
        """source build_tiny without a `tiny` section builds the default tiny model."""
        if isinstance(data, dict) and data.get("source") == "build_tiny" and data.get("tiny") is None:
            return {**data, "tiny": {}}
        return data

    @model_validator(mode="after")
    def _fields(self) -> "BaseModelConfig":
        if self.source == "hub" and not self.hub_id:
            raise ValueError("source 'hub' needs 'hub_id'")
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path'")
        return self


class LoraConfig(StrictModel):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


# Keys that moved from `training` into `training.launcher` (old name -> new name), for the error message.
_MOVED_TO_LAUNCHER = {
    **{f"k8s_{k}": k for k in K8sLauncher.model_fields if k != "kind"},
    "distributed": "distributed",
    "accelerate_config": "accelerate_config",
}


class TrainingConfig(StrictModel):
    lora: LoraConfig = LoraConfig()
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1, description="per process (the global batch grows with the process count)")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(256, ge=8)
    prompt_template: Literal["alpaca", "plain"] = "alpaca"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    save_every_steps: int = Field(50, ge=1, description="checkpoint interval, for resume after a crash")
    loss_chunk_tokens: int = Field(
        64,
        ge=1,
        description="tokens per chunk of the smoothed loss on the logits path; a chunk of (tokens x vocab) floats "
        "should fit in cache (64 x 32k fp32 = 8 MB); the linear path sizes its own (docs/loss.md)",
    )
    loss_impl: Literal["auto", "logits", "linear"] = Field(
        "auto",
        description="linear: the loss straight from the lm_head's input, no (tokens x vocab) logits; logits: through "
        "the model's logits; auto: linear where the model allows it (docs/loss.md), else logits",
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay on the LoRA parameters")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; null turns it off")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (large models)")
    seed: int = Field(0, description="set for each checkpoint from experiment.seeds; a profile sets experiment.seeds")
    min_free_disk_gb: float | None = Field(
        None, ge=0, description="preflight: free disk the state folder needs (None: 40 for a hub model, else 1)"
    )
    launcher: Launcher = Field(
        InProcessLauncher(),
        description="where training processes start (docs/deployment.md): {kind: in_process}, "
        "{kind: subprocess, distributed}, {kind: k8s, image, state_pvc, gpus, ...}, "
        "{kind: slurm, partition, gpus, cpus_per_task, mem_gb, time_limit, sbatch_args, setup}; "
        "the strings in_process / subprocess are short for the first two",
    )

    @model_validator(mode="before")
    @classmethod
    def _launcher_keys_moved(cls, data: object) -> object:
        if isinstance(data, dict):
            moved = [k for k in data if k in _MOVED_TO_LAUNCHER]
            if moved:
                new = ", ".join(f"{_MOVED_TO_LAUNCHER[k]}: ..." for k in moved)
                raise ValueError(
                    f"{', '.join(moved)} moved into training.launcher: write launcher: {{kind: ..., {new}}} "
                    "(docs/deployment.md)"
                )
        return data


class MethodConfig(StrictModel):
    """sft: eps = 0; ls: eps = `epsilon` for every sample; ual: eps = F(u).

    Controls are ordinary methods: `ls` with `match: <ual method>` takes that method's mean
    eps over the same training set (so UAL minus it isolates the per-sample allocation);
    `ual` with `uncertainty: shuffled` permutes the elicited eps across samples (same
    histogram, no information); `uncertainty: oracle` uses the data set's known intrinsic
    uncertainty (the testbed's) instead of the elicited score.
    """

    kind: Literal["sft", "ls", "ual"]
    epsilon: float = Field(0.1, ge=0.0, lt=1.0, description="ls only")
    match: str | None = Field(
        None, description="ls only: name of a ual method whose mean eps over the same training set replaces `epsilon`"
    )
    uncertainty: Literal["elicited", "shuffled", "oracle"] = Field(
        "elicited",
        description="ual only: where u comes from (elicited scores, the same permuted, or the testbed's truth)",
    )
    shuffle_seed: int = Field(0, description="ual with uncertainty 'shuffled': the fixed seed of the permutation")
    eps_min: float = Field(0.0, ge=0.0, lt=1.0, description="ual only: eps at u = 0")
    eps_max: float = Field(0.2, ge=0.0, lt=1.0, description="ual only: eps at u = 1")
    mapping: Literal["linear", "sqrt", "square"] = "linear"
    training: dict[str, object] | None = Field(
        None, description="per-method overrides of the `training` section (e.g. learning_rate)"
    )

    @model_validator(mode="after")
    def _range(self) -> "MethodConfig":
        if self.eps_max < self.eps_min:
            raise ValueError("eps_max must be >= eps_min")
        if self.match is not None and self.kind != "ls":
            raise ValueError("'match' applies to kind 'ls' only")
        if self.uncertainty != "elicited" and self.kind != "ual":
            raise ValueError("'uncertainty' applies to kind 'ual' only")
        return self
