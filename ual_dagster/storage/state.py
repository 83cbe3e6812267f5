"""Where a profile keeps its state: DuckDB file, artifacts, DAGSTER_HOME."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ual_dagster.config import Profile, resolve_path
from ual_dagster.storage.duckdb_store import DuckDBStore

# The instance config written into DAGSTER_HOME on first use. The "duckdb" pool
# serialises DuckDB writers (one writing process at a time); "train" keeps two
# trainings from fighting over the same cores or GPU.
DAGSTER_YAML = """\
# Written by ual_dagster.storage.state; edit freely, it is not overwritten.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1   # one run at a time: a 2-core machine, one DuckDB writer
  pools:
    default_limit: 1         # pools "duckdb" (writers) and "train" (cores / GPU)
"""


class StateDirError(OSError):
    """The state folder (or a folder inside it) cannot be created or written."""


@dataclass(frozen=True)
class StatePaths:
    state_dir: Path
    duckdb: Path
    artifacts: Path
    dagster_home: Path

    @classmethod
    def for_profile(cls, profile: Profile) -> "StatePaths":
        s = profile.storage
        root = resolve_path(s.state_dir)
        return cls(
            state_dir=root,
            duckdb=root / s.duckdb_file,
            artifacts=root / s.artifacts_dir,
            dagster_home=root / s.dagster_home,
        )

    def ensure(self) -> "StatePaths":
        try:
            for d in (self.state_dir, self.artifacts, self.dagster_home):
                d.mkdir(parents=True, exist_ok=True)
            cfg = self.dagster_home / "dagster.yaml"
            if not cfg.exists():
                cfg.write_text(DAGSTER_YAML)
        except OSError as exc:
            raise StateDirError(
                f"cannot create the state folder {self.state_dir} (storage.state_dir): "
                f"{exc.strerror or exc} ({exc.filename or self.state_dir})"
            ) from exc
        return self

    def store(self) -> DuckDBStore:
        return DuckDBStore(self.duckdb)
