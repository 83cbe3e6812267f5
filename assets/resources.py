"""Dagster resources: one ConfigurableResource per external system the assets touch.

The library underneath (`DuckDBStore`, `ArtifactStore`) works without
Dagster; these thin wrappers make the systems configurable and swappable per
deployment (a test points them at a temp dir, a cluster at a shared volume).
"""

from __future__ import annotations

import dagster as dg

from assets.common import missing_upstream_failure
from ual_dagster.storage import ArtifactStore, DuckDBStore


class StepStore(DuckDBStore):
    """The store as an asset step sees it: an upstream that was never built fails the step with
    one line (how many upstream assets are missing, the first few, the command that builds
    them) instead of a traceback."""

    def require_version(self, asset: str) -> str:
        fp = self.get_version(asset)
        if fp is None:
            raise missing_upstream_failure(self, asset)
        return fp


class DuckDBStoreResource(dg.ConfigurableResource):
    """The project's DuckDB file (samples, rejects, uncertainty, training sets, curves, scores)."""

    database: str

    def store(self) -> DuckDBStore:
        return StepStore(self.database)


class ArtifactStoreResource(dg.ConfigurableResource):
    """Content-addressed directories for models, adapters, generations and reports."""

    root: str

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root)
