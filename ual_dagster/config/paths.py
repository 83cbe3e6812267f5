"""Where the files a profile names live: the project root, and the bundled prompt templates.

Kept apart from the loader and from elicitation so that both can resolve a profile's paths
(the loader checks that the prompt template exists; elicitation reads it) without either
importing the other.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROMPTS_DIR = Path(__file__).resolve().parents[1] / "elicitation" / "prompts"


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a path from a profile: absolute, or relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def template_path(name: str) -> Path:
    """A bundled prompt template by stem (`uncertainty_v1`), or a .txt file of the user's by path."""
    if name.endswith(".txt") or "/" in name:
        return resolve_path(name)
    return PROMPTS_DIR / f"{name}.txt"
