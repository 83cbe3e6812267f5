"""Launcher-neutral training entry: a JSON-serialisable spec in, a TrainResult out.

The same `run_training(spec)` runs in the Dagster process, in a local subprocess
(`training_command`, via dagster's PipesSubprocessClient) or in a cluster pod
(PipesK8sClient); the last two go through `python -m ual_dagster.train.pipes_entry`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ual_dagster.config.training import TrainingConfig
from ual_dagster.jsonl import iter_json_objects
from ual_dagster.train.entry_points import TRAIN_ENTRY, entry_command
from ual_dagster.train.examples import TrainExample
from ual_dagster.train.trainer import TrainResult, train_lora

EXAMPLE_FIELDS = ("instruction", "input", "output", "epsilon")


class TrainSpec(BaseModel):
    """What a training process needs; crosses process and pod boundaries as its `model_dump()` JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_path: str  # a model directory, or a hub model_ref `<hub id>@<revision>` (base_model.model_ref)
    examples_path: str  # JSONL: one {instruction, input, output, epsilon} per line
    training: dict  # a TrainingConfig as JSON (method overrides already applied)
    out_dir: str
    progress_every: int = 10

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.model_dump(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TrainSpec":
        return cls.model_validate_json(Path(path).read_text())


def write_examples(path: str | Path, examples: list[TrainExample]) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for e in examples:
            fh.write(json.dumps(e.model_dump(), ensure_ascii=False) + "\n")
    return path


def read_examples(path: str | Path) -> list[TrainExample]:
    """Read and check the examples file; errors name the file, line and reason."""
    examples = []
    for lineno, row in iter_json_objects(path):
        where = f"{path}:{lineno}"
        missing = [k for k in EXAMPLE_FIELDS if k not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        for k in ("instruction", "input", "output"):
            if not isinstance(row[k], str):
                raise ValueError(f"{where}: field {k!r} must be a string, got {type(row[k]).__name__}")
        eps = row["epsilon"]
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or math.isnan(eps) or not 0 <= eps < 1:
            raise ValueError(f"{where}: epsilon must be a number in [0, 1), got {eps!r}")
        examples.append(
            TrainExample(instruction=row["instruction"], input=row["input"], output=row["output"], epsilon=float(eps))
        )
    if not examples:
        raise ValueError(f"{path}: no training examples")
    return examples


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
