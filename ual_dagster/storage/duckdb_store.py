"""The project's DuckDB database: short-lived connections, retried on lock.

DuckDB allows one writing process at a time. Writers (assets) are serialised by a
Dagster concurrency pool; in addition every connection here retries while another
process holds the lock, so a reader in a notebook or a second run waits instead of
failing. Connections are opened per unit of work and closed at once: nothing holds
the lock across a long computation such as training.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

LOCK_WAIT_S = 120.0

# Set in every engine job (a Slurm job, a Kubernetes pod, a Pipes subprocess: the entry points
# ual_dagster.train.pipes_entry and ual_dagster.evaluation.job_entry set it first thing). Such a
# process writes content-addressed files and reports through Dagster Pipes; the Dagster step
# process is DuckDB's only writer (docs/deployment.md, "Who writes").
ENGINE_JOB_ENV = "UAL_ENGINE_JOB"


class EngineJobWriteError(RuntimeError):
    """An engine job tried to open the project's DuckDB file for writing."""


def forbid_duckdb_writes() -> None:
    """Mark this process (and its children) as an engine job: opening DuckDB to write raises."""
    os.environ[ENGINE_JOB_ENV] = "1"


_VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS asset_versions (
    asset VARCHAR PRIMARY KEY,      -- e.g. 'instructions_alpaca'
    fingerprint VARCHAR NOT NULL,   -- the DataVersion last produced
    config_json VARCHAR,            -- the profile slice the asset read
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: committed when it ends, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, where_sql: str, params: Sequence[Any], frame: Any) -> int:
    """Delete `table`'s rows matching `where_sql` and insert `frame`'s (pandas or Arrow, columns
    matched by name), in one transaction: readers see the old rows or the new, and a failed
    insert leaves the old rows. Returns the number of rows inserted."""
    if len(frame):
        con.register("_replacement_rows", frame)  # outside the transaction: an aborted one refuses (un)register
    try:
        with transaction(con):
            con.execute(f"DELETE FROM {table} WHERE {where_sql}", list(params))
            if len(frame):
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _replacement_rows")
    finally:
        if len(frame):
            con.unregister("_replacement_rows")
    return len(frame)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether `name` exists (a reader opens read-only and must not create it). For a table's
    owner module (ual_dagster/storage/tables.py); other modules ask the owner."""
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(found and found[0])


class DuckDBStore:
    """A DuckDB file plus helpers shared by every domain's tables."""

    def __init__(self, path: str | Path, lock_wait_s: float = LOCK_WAIT_S):
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only and os.environ.get(ENGINE_JOB_ENV) == "1":
            raise EngineJobWriteError(
                f"an engine job may not open {self.path} for writing: jobs write files under the state folder "
                "and report through Dagster Pipes; the Dagster step writes DuckDB (docs/deployment.md)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot create the folder of the DuckDB file {self.path} (storage.state_dir): {exc.strerror}",
            ) from exc
        if read_only and not self.path.exists():
            read_only = False  # first use: create the file
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    # -- data versions -------------------------------------------------------
    def record_version(self, asset: str, fingerprint: str, config_json: str | None = None) -> None:
        with self.connect() as con:
            con.execute(_VERSIONS_DDL)
            con.execute(
                "INSERT OR REPLACE INTO asset_versions VALUES (?, ?, ?, current_timestamp)",
                [asset, fingerprint, config_json],
            )

    def get_version(self, asset: str) -> str | None:
        """The fingerprint last recorded for `asset`, or None if it was never built."""
        with self.connect() as con:
            con.execute(_VERSIONS_DDL)
            row = con.execute("SELECT fingerprint FROM asset_versions WHERE asset = ?", [asset]).fetchone()
        return row[0] if row else None

    def recorded_assets(self) -> set[str]:
        """Every asset that has recorded a fingerprint (has been built at least once)."""
        with self.connect() as con:
            con.execute(_VERSIONS_DDL)
            return {row[0] for row in con.execute("SELECT asset FROM asset_versions").fetchall()}

    def require_version(self, asset: str) -> str:
        """The upstream's fingerprint; a missing one is an error that says how to build it (an asset
        step's store, assets/resources.py, fails the step with the whole missing cone instead)."""
        fp = self.get_version(asset)
        if fp is None:
            raise RuntimeError(
                f"upstream asset {asset!r} has not been materialised yet; build it with: "
                f"dagster asset materialize --select '*{asset}'"
            )
        return fp
