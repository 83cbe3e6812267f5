"""What every engine job's entry point shares: its spec file, and the Dagster Pipes session
that reports its result (docs/deployment.md, "Who writes").

An entry point (`ual_dagster.evaluation.job_entry`, `ual_dagster.elicitation.job_entry`)
is `run_job_entry(description, run)`: it marks the process as an engine job (no DuckDB
writes), finds the spec path (`--spec`, else the Pipes extra "spec_path"), calls
`run(spec_path, log)` and reports what it returns as a Pipes custom message. Outside Dagster
the Pipes session is a no-op and the entry point is a plain script.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ual_dagster.storage.duckdb_store import forbid_duckdb_writes
from ual_dagster.storage.files import atomic_write_text

SPEC_PATH_EXTRA = "spec_path"


class JobSpec(BaseModel):
    """A job's spec: crosses process, pod and node boundaries as a JSON file on the state folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.model_dump(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path):
        return cls.model_validate_json(Path(path).read_text())


def run_job_entry(
    description: str, run: Callable[[str, Callable[[str], None]], Any], argv: list[str] | None = None
) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--spec", help=f"path of the job's spec file (default: the Pipes extra {SPEC_PATH_EXTRA!r})")
    args = parser.parse_args(argv)
    forbid_duckdb_writes()

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        # Outside Dagster `pipes` is a MagicMock whose extras are not a dict.
        extras = dict(pipes.extras) if isinstance(pipes.extras, dict) else {}
        spec_path = args.spec or extras.get(SPEC_PATH_EXTRA)
        if not spec_path:
            raise SystemExit(f"no spec: pass --spec or the Pipes extra {SPEC_PATH_EXTRA!r}")
        pipes.report_custom_message(run(spec_path, pipes.log.info))
