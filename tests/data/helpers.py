"""Small fixture writers and a store factory shared by the data tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ual_dagster.config.data import DatasetConfig
from ual_dagster.data import InstructionSetResult, build_instruction_set
from ual_dagster.storage import DuckDBStore


def write_lines(path: Path, lines: list[str | bytes | dict[str, Any]]) -> Path:
    """JSON lines; dicts are dumped, str and bytes written as they are (to plant bad lines)."""
    out = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line, ensure_ascii=False)
        out += (line.encode("utf-8") if isinstance(line, str) else line) + b"\n"
    path.write_bytes(out)
    return path


def load(path: Path, store: DuckDBStore, name: str = "ds", fmt: str = "auto", **extra: Any) -> InstructionSetResult:
    cfg = DatasetConfig(source="file", entropy="high", path=str(path), format=fmt, **extra)
    return build_instruction_set(name, cfg, store)
