"""Fingerprints (Dagster data versions) of LoRA checkpoints."""

from __future__ import annotations

from ual_dagster import versions
from ual_dagster.config.training import MethodConfig, TrainingConfig
from ual_dagster.fingerprint import stable_hash

# Kept free of torch imports: the Dagster definitions import this module at load time.

# Training fields that change where or how a run executes, not what it computes. The
# process count (distributed, k8s_gpus) is not among them: batch_size is per device, so
# it changes the global batch.
EXECUTION_ONLY_FIELDS = {"launcher", "accelerate_config", "save_every_steps"}


def result_affecting_config(cfg: TrainingConfig) -> dict:
    """The training config without the execution-only fields (launcher, pod shape, ...)."""
    return {
        k: v
        for k, v in cfg.model_dump(mode="json").items()
        if k not in EXECUTION_ONLY_FIELDS and not (k.startswith("k8s_") and k != "k8s_gpus")
    }


# Bump when a change to the trainer, loss or prompt rendering changes what is trained.


def effective_training_config(cfg: TrainingConfig, method: MethodConfig) -> TrainingConfig:
    """The profile's training section with the method's overrides applied (validated)."""
    if not method.training:
        return cfg
    return TrainingConfig.model_validate({**cfg.model_dump(mode="json"), **method.training})


def checkpoint_fingerprint(base_fp: str, examples_hash: str, cfg: TrainingConfig, method: MethodConfig) -> str:
    """hash(code version, base model, training examples, result-affecting config, method).

    examples_hash must cover each example's epsilon (so the method's eps values are
    already in it). Fields that only choose where the run executes (launcher, pod
    settings, checkpoint interval) are left out: changing them retrains nothing.
    """
    result_fields = result_affecting_config(effective_training_config(cfg, method))
    return stable_hash(versions.LORA, base_fp, examples_hash, result_fields, method.model_dump(mode="json"))
