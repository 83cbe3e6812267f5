"""Content hashes that name data versions and artifacts.

Every asset's DataVersion is a fingerprint: a hash of its code version, the part of
the profile it reads, and the fingerprints of its inputs. The same fingerprint names
its artifact directory, so "unchanged inputs" means "reuse what is on disk".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FINGERPRINT_LEN = 16


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(*parts: Any, length: int = FINGERPRINT_LEN) -> str:
    """Hex digest of the canonical JSON of `parts` (order matters)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(canonical_json(part).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()[:length]


def hash_rows(rows: Any, length: int = FINGERPRINT_LEN) -> str:
    """Order-independent hash of an iterable of hashable row keys (e.g. sample ids)."""
    h = hashlib.sha256()
    for key in sorted(canonical_json(r) for r in rows):
        h.update(key.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:length]
