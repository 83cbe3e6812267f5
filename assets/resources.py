"""Dagster resources: one ConfigurableResource per external system the assets touch.

The library underneath (`DuckDBStore`, `ArtifactStore`) works without
Dagster; these thin wrappers make the systems configurable and swappable per
deployment (a test points them at a temp dir, a cluster at a shared volume).
"""

from __future__ import annotations

import dagster as dg

from ual_dagster.storage import ArtifactStore, DuckDBStore


class DuckDBStoreResource(dg.ConfigurableResource):
    """The project's DuckDB file (samples, rejects, uncertainty, training sets, curves, scores)."""

    database: str

    def store(self) -> DuckDBStore:
        return DuckDBStore(self.database)


class ArtifactStoreResource(dg.ConfigurableResource):
    """Content-addressed directories for models, adapters, generations and reports."""

    root: str

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root)
