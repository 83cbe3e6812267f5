"""Shared base for every profile section: strict, immutable, hashable to a fingerprint."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ual_dagster.fingerprint import stable_hash


class StrictModel(BaseModel):
    """A config section: unknown keys are errors (a typo must never be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def fingerprint(self, *extra: object) -> str:
        """Hash of this section's values (plus `extra`), used to name what it produces."""
        return stable_hash(self.model_dump(mode="json"), *extra)
