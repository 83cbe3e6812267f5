"""The entry points engine jobs run, and their command line; torch-free (the definitions import it)."""

from __future__ import annotations

import sys
from pathlib import Path

TRAIN_ENTRY = "ual_dagster.train.pipes_entry"
EVAL_ENTRY = "ual_dagster.evaluation.job_entry"
ELICIT_ENTRY = "ual_dagster.elicitation.job_entry"  # hf_local elicitation on elicitation.launcher


def entry_command(
    module: str, spec_path: str | Path, *, num_processes: int = 1, python: str | None = None
) -> list[str]:
    """`python -m <module> --spec <spec_path>`. More than one process goes through
    `accelerate launch` (one process per GPU). `python`: the interpreter (default: this one,
    which a cluster job finds when the virtualenv is on the shared file system)."""
    py = python or sys.executable
    entry = ["-m", module, "--spec", str(spec_path)]
    if num_processes > 1:
        return [py, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes), *entry]
    return [py, *entry]
