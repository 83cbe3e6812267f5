"""Where the files a profile names live: the project root, and the bundled prompt templates.

A relative path in a profile file means the path beside that file: the loader makes it
absolute against the file's folder when it reads a file outside the project root and its
bundled profiles (`loader._anchor_paths`), so what is still relative here comes from a
bundled profile (whose folder counts as the project root), a default, or a profile built in
code, and resolves against the project root.

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
    """Resolve a path from a profile: absolute, or relative to the project root (see the module docstring)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def template_path(name: str) -> Path:
    """A bundled prompt template by stem (`uncertainty_v1`), or a .txt file of the user's by path."""
    if name.endswith(".txt") or "/" in name:
        return resolve_path(name)
    return PROMPTS_DIR / f"{name}.txt"
