"""Strict JSONL reading for files the pipeline itself consumes (score imports, training
examples, benchmark data): the first bad line stops the read with an error naming the
file, the line and the reason. (User instruction sets are read by ual_dagster.data,
which rejects bad rows one by one instead.)"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def iter_json_objects(path: str | Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """(1-based line number, object) for every non-blank line; raises `error` on the first bad one."""
    with Path(path).open(encoding="utf-8") as fh:
        yield from json_objects(fh, str(path), error)


def json_objects(lines: Iterable[str], where: str, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """iter_json_objects over lines already read; errors name `where:line`."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise error(f"{where}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record
