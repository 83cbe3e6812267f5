"""Storage: the DuckDB database, content-addressed artifacts, the state folder."""

from ual_dagster.storage.artifacts import ArtifactStore
from ual_dagster.storage.duckdb_store import DuckDBStore
from ual_dagster.storage.state import StatePaths

__all__ = ["ArtifactStore", "DuckDBStore", "StatePaths"]
