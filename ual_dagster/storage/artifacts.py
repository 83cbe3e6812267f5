"""Content-addressed artifact directories: `<root>/<kind>/<fingerprint>/`.

A directory is finished only when its marker file exists; the marker is written last,
atomically, so a crash leaves an unfinished directory that the next run resumes from
(training checkpoints) or rebuilds, and never a half-written one that looks done.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ual_dagster.storage.files import atomic_write_text

MARKER = "_FINISHED.json"


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, kind: str, fingerprint: str) -> Path:
        return self.root / kind / fingerprint

    def is_finished(self, kind: str, fingerprint: str) -> bool:
        return (self.path(kind, fingerprint) / MARKER).is_file()

    def manifest(self, kind: str, fingerprint: str) -> dict[str, Any]:
        return json.loads((self.path(kind, fingerprint) / MARKER).read_text())

    def open(self, kind: str, fingerprint: str) -> Path:
        """The (possibly partial) directory to build into; created if missing."""
        p = self.path(kind, fingerprint)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def finish(self, kind: str, fingerprint: str, manifest: dict[str, Any]) -> Path:
        p = self.open(kind, fingerprint)
        atomic_write_text(p / MARKER, json.dumps(manifest, indent=2, sort_keys=True, default=str), fsync=True)
        return p
