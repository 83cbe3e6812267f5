"""Fingerprints (Dagster data versions) of LoRA checkpoints."""

from __future__ import annotations

from ual_dagster.config.training import MethodConfig, TrainingConfig
from ual_dagster.fingerprint import stable_hash
from ual_dagster.train.trainer import result_affecting_config

# Bump when a change to the trainer, loss or prompt rendering changes what is trained.
CODE_VERSION = "lora-train-1"


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
    return stable_hash(CODE_VERSION, base_fp, examples_hash, result_fields, method.model_dump(mode="json"))
