"""Launcher-neutral training entry: a JSON-serialisable spec in, a TrainResult out (records.py).

The same `run_training(spec)` runs in the Dagster process, in a local subprocess
(`training_command`, via dagster's PipesSubprocessClient) or in a cluster pod
(PipesK8sClient); the last two go through `python -m ual_dagster.train.pipes_entry`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ual_dagster.config.training import TrainingConfig
from ual_dagster.train.entry_points import TRAIN_ENTRY, entry_command
from ual_dagster.train.records import TrainResult, TrainSpec, read_examples
from ual_dagster.train.trainer import train_lora


def run_training(
    spec: TrainSpec,
    log: Callable[[str], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    cfg = TrainingConfig.model_validate(spec.training)
    examples = read_examples(spec.examples_path)
    return train_lora(
        spec.base_path,
        examples,
        cfg,
        Path(spec.out_dir),
        log=log,
        progress_every=spec.progress_every,
        on_step=on_step,
    )


def training_command(spec_path: str | Path, num_processes: int = 1) -> list[str]:
    """Command line that runs the spec at `spec_path` through the training Pipes entry point."""
    return entry_command(TRAIN_ENTRY, spec_path, num_processes=num_processes)
