"""`dagster asset materialize` as a user runs it, for the tests that drive the real CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def start_materialize(selection: str, env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """Start the CLI on `selection` in its own process group (so a test can kill the whole
    run), its output going to `log`."""
    with log.open("w") as fh:
        return subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "assets.definitions", "--select", selection],
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
