"""What crosses a training process's boundary, in plain Python (pydantic, no torch).

The examples a run trains on (`TrainExample`, one JSON object per line of `examples.jsonl`),
the spec a launcher hands to the training process (`TrainSpec`), the result it writes back
(`TrainResult`, `train_result.json`) and the names of the files in a checkpoint directory.
The Dagster definitions, `checkpoints` and evaluation import these at load time; only
`trainer` (and what it imports) needs torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ual_dagster.jsonl import iter_json_objects

# Files of a checkpoint directory (artifacts/lora/<fingerprint>/).
RESULT_FILE = "train_result.json"  # written last by a finished run
ADAPTER_DIR = "adapter"
SPEC_FILE = "train_spec.json"
EXAMPLES_FILE = "examples.jsonl"

EXAMPLE_FIELDS = ("instruction", "input", "output", "epsilon")


class TrainExample(BaseModel):
    """One row of the examples file (JSONL, one `model_dump()` per line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instruction: str
    input: str
    output: str
    epsilon: float


class TrainResult(BaseModel):
    """A finished run; written as train_result.json (its `model_dump()`), which the launchers read back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int
    final_loss: float
    curve: list[dict]  # per optimizer step: step, loss (the objective), nll (plain), lr, tokens, tokens_per_s, eps_mean
    tokens_per_s: float
    eps_stats: dict
    resumed_from_step: int
    adapter_path: str = ""
    metadata: dict = Field(default_factory=dict)


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
