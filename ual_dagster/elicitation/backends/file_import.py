"""The `file` backend: import scores computed elsewhere (CSV, JSONL or Parquet).

Each row needs `uncertainty` (a number in [0, 1]) and a key: `sample_id`, or
`instruction` (+ optional `input`) + `output`, matched after the same normalisation the
data domain applies (Unicode NFC, CRLF -> LF, strip). Rows that match no sample of the
dataset are counted and reported (first few row numbers); samples the file does not
cover stay unscored (coverage shows it). A malformed row raises an error naming the file
and row. The elicitor fingerprint includes the file's content hash, so an edited file
is imported again.
"""

from __future__ import annotations

import csv
import math
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq

from ual_dagster.config import resolve_path
from ual_dagster.config.elicitation import FileElicitation
from ual_dagster.elicitation.commit import RowCommitter
from ual_dagster.elicitation.outcome import Outcome
from ual_dagster.elicitation.table import SampleToScore
from ual_dagster.jsonl import iter_json_objects

UNMATCHED_EXAMPLES = 5


class ScoreFileError(ValueError):
    """A score file that cannot be imported; the message names the file and row."""


def normalise_text(text: str | None) -> str:
    return unicodedata.normalize("NFC", (text or "").replace("\r\n", "\n").replace("\r", "\n")).strip()


def content_key(instruction: str | None, input_text: str | None, output: str | None) -> tuple[str, str, str]:
    return normalise_text(instruction), normalise_text(input_text), normalise_text(output)


def _read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row number as a person counts it: 1-based data row / JSONL line, record)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for n, record in enumerate(csv.DictReader(fh), start=2):  # line 1 is the header
                yield n, record
    elif suffix in (".jsonl", ".ndjson"):
        yield from iter_json_objects(path, ScoreFileError)
    elif suffix == ".parquet":
        for n, record in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield n, record
    else:
        raise ScoreFileError(f"{path}: unsupported score file type {suffix!r}; use .csv, .jsonl or .parquet")


def _score(path: Path, n: int, record: dict) -> float:
    value = record.get("uncertainty")
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ScoreFileError(f"{path} row {n}: 'uncertainty' must be a number in [0, 1], got {value!r}") from None
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise ScoreFileError(f"{path} row {n}: 'uncertainty' {score} is outside [0, 1]")
    return score


def import_scores(
    pending: list[SampleToScore],
    known_keys: dict[tuple[str, str, str], str],
    known_ids: set[str],
    cfg: FileElicitation,
    committer: RowCommitter,
    log: Callable[[str], None],
) -> dict:
    """Write ok rows for the pending samples the file scores; report what did not match.

    known_keys / known_ids cover every sample of the dataset, so a row for an already
    imported sample is not misreported as unmatched.
    """
    path = resolve_path(cfg.file_path)
    if not path.is_file():
        raise ScoreFileError(f"score file {path} does not exist (elicitation.file_path)")
    pending_by_id = {s.sample_id: s for s in pending}
    scores: dict[str, tuple[float, int]] = {}
    unmatched: list[int] = []
    n_rows = 0
    for n, record in _read_rows(path):
        n_rows += 1
        score = _score(path, n, record)
        if record.get("sample_id"):
            sample_id = str(record["sample_id"])
            if sample_id not in known_ids:
                sample_id = ""
        elif record.get("instruction") is not None and record.get("output") is not None:
            sample_id = known_keys.get(content_key(record["instruction"], record.get("input"), record["output"]), "")
        else:
            raise ScoreFileError(f"{path} row {n}: needs 'sample_id' or 'instruction' and 'output' to match a sample")
        if not sample_id:
            unmatched.append(n)
            continue
        if sample_id in scores and scores[sample_id][0] != score:
            raise ScoreFileError(
                f"{path} rows {scores[sample_id][1]} and {n}: two different scores for sample {sample_id}"
            )
        scores[sample_id] = (score, n)
    for sample_id, (score, n) in scores.items():
        sample = pending_by_id.get(sample_id)
        if sample is not None:
            committer.add(
                sample, Outcome(status="ok", uncertainty=score, raw_answer=f"{path.name} row {n}", attempts=1)
            )
    committer.flush()
    missing = sum(1 for sid in pending_by_id if sid not in scores)
    log(
        f"file import {path.name}: {n_rows} rows, {len(scores)} matched, {len(unmatched)} unmatched, "
        f"{missing} pending samples not in the file"
    )
    return {
        "file": str(path),
        "file_rows": n_rows,
        "file_matched_rows": len(scores),
        "file_unmatched_rows": len(unmatched),
        "file_unmatched_examples": [f"row {n}" for n in unmatched[:UNMATCHED_EXAMPLES]],
        "file_missing_samples": missing,
    }
