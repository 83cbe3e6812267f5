"""Fingerprints (Dagster data versions) of LoRA checkpoints."""

from __future__ import annotations

from ual_dagster import versions
from ual_dagster.config.training import (
    InProcessLauncher,
    K8sLauncher,
    Launcher,
    MethodConfig,
    TrainingConfig,
)
from ual_dagster.fingerprint import stable_hash

# Kept free of torch imports: the Dagster definitions import this module at load time.

# Training fields that do not change the trained weights: where processes start (the
# launcher: pod size, image, namespace, ...), how often a resumable checkpoint is written,
# and the free disk preflight asks for.
NOT_RESULT_FIELDS = {"launcher", "save_every_steps", "min_free_disk_gb"}


def data_parallel(launcher: Launcher) -> int | str:
    """Processes whose gradients are averaged per optimiser step. batch_size is per process,
    so this changes the global batch and with it the weights: 1 without accelerate, the pod's
    GPUs on Kubernetes, one per GPU of a Slurm job, and on a local subprocess every local GPU
    (counted when it starts)."""
    if launcher.kind == "slurm":
        return max(launcher.gpus, 1)
    if isinstance(launcher, InProcessLauncher) or launcher.distributed == "none":
        return 1
    if isinstance(launcher, K8sLauncher):
        return max(launcher.gpus, 1)
    return "all local GPUs"


def result_config(cfg: TrainingConfig) -> dict:
    """The part of the training config that changes the trained weights: every field except
    NOT_RESULT_FIELDS, plus the data-parallel process count the launcher implies.

    Both the checkpoint fingerprint and the lora asset's code version hash this, so a
    change to the pod's memory or the checkpoint interval neither renames a checkpoint nor
    marks the asset stale, and a change to the learning rate does both.
    """
    fields = cfg.model_dump(mode="json", exclude=NOT_RESULT_FIELDS)
    fields["data_parallel"] = data_parallel(cfg.launcher)
    return fields


# Bump when a change to the trainer, loss or prompt rendering changes what is trained.


def effective_training_config(cfg: TrainingConfig, method: MethodConfig) -> TrainingConfig:
    """The profile's training section with the method's overrides applied (validated)."""
    if not method.training:
        return cfg
    return TrainingConfig.model_validate({**cfg.model_dump(mode="json"), **method.training})


def checkpoint_fingerprint(base_fp: str, examples_hash: str, cfg: TrainingConfig, method: MethodConfig) -> str:
    """hash(code version, base model, training examples, result-affecting config, method).

    examples_hash must cover each example's epsilon (so the method's eps values are
    already in it). Only result_config enters: changing where the run executes (launcher,
    pod settings) or the checkpoint interval retrains nothing.
    """
    result_fields = result_config(effective_training_config(cfg, method))
    return stable_hash(versions.LORA, base_fp, examples_hash, result_fields, method.model_dump(mode="json"))
