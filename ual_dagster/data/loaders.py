"""Local instruction files: JSON arrays, JSON lines or Parquet of Alpaca, Dolly, MetaMathQA,
GSM8K, chat or ShareGPT records (records.py), or any records through a `columns:` map.

Format "auto" picks the container by extension (.jsonl/.ndjson: JSON lines; .json: a JSON
array, or JSON lines when the first line is a whole object; .parquet/.pq: Parquet) and the
record schema by the defining fields of the first record that has all of some schema's
(records.DEFINING_FIELDS). With `columns`, no schema is detected: each record's fields
are read through the map. Bad rows become rejects naming "file:line" (JSON lines, 1-based),
"file[index]" (JSON arrays, 0-based) or "file:row N" (Parquet, 0-based). A file that
cannot be read as a whole raises DataSourceError naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ual_dagster.config.data import FileFormat
from ual_dagster.data.errors import DataSourceError
from ual_dagster.data.records import ACCEPTED, Schema, detect_schema, map_columns, raw_text, record_to_sample
from ual_dagster.data.samples import Reject, Sample, preview
from ual_dagster.data.source import SourceRows

# Bumped when loading, normalisation or testbed generation changes the rows a data set yields
# (the instruction_sets asset hashes it into its Dagster code version).

_EXPLICIT: dict[str, tuple[str, Schema | None]] = {
    "alpaca_json": ("json_array", "alpaca"),
    "alpaca_jsonl": ("jsonl", "alpaca"),
    "gsm8k_jsonl": ("jsonl", "gsm8k"),
    "chat_jsonl": ("jsonl", "chat"),
    "dolly_jsonl": ("jsonl", "dolly"),
    "metamath_json": ("json_array", "metamath"),
    "metamath_jsonl": ("jsonl", "metamath"),
    "sharegpt_json": ("json_array", "sharegpt"),
    "sharegpt_jsonl": ("jsonl", "sharegpt"),
    "parquet": ("parquet", None),  # schema from the column names
}
_SCHEMA_SNIFF_LINES = 1000  # JSON lines inspected to find the first record with a known schema
_BOM = b"\xef\xbb\xbf"
_PARQUET_BATCH_ROWS = 8192


def read_file(path: str | Path, fmt: FileFormat, dataset: str, columns: Mapping[str, str] | None = None) -> SourceRows:
    """Open `path` (already resolved) as format `fmt`; rows are read lazily. `columns` maps
    {instruction, input, output} to the records' own field names (no schema detection)."""
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"data file {path} does not exist")
    if not path.is_file():
        raise DataSourceError(f"data file {path} is not a regular file")
    try:
        path.open("rb").close()
    except OSError as exc:
        raise DataSourceError(f"data file {path} cannot be read: {exc}") from exc
    container, schema = _EXPLICIT[fmt] if fmt != "auto" else (_detect_container(path), None)
    if columns:
        schema = "mapped"
    info: dict[str, Any] = {"path": str(path), "container": container}
    if columns:
        info["columns"] = dict(columns)
    if container == "json_array":
        records = _load_json_array(path)
        schema = schema or _schema_or_raise(path, _first_signature(r for r in records if isinstance(r, dict)))
        rows = _array_rows(path, records, schema, dataset, columns)
    elif container == "jsonl":
        schema = schema or _schema_or_raise(path, _first_signature(_sniff_jsonl(path)))
        info["n_blank_lines"] = 0
        rows = _jsonl_rows(path, schema, dataset, info, columns)
    else:
        pf = _open_parquet(path)
        schema = schema or _schema_or_raise(path, pf.schema_arrow.names)
        rows = _parquet_rows(path, pf, schema, dataset, columns)
    info["schema"] = schema
    return SourceRows(rows, info)


# -- detection -------------------------------------------------------------------------


def _detect_container(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".json":
        first_line = _read_first_line(path).strip()
        if first_line.startswith(b"{"):
            try:
                if isinstance(json.loads(first_line), dict):
                    return "jsonl"
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass  # a pretty-printed object: read as an array, which names the problem
        return "json_array"
    raise DataSourceError(
        f"data file {path}: cannot tell the format from the extension {suffix!r}; "
        f"set 'format' to one of {sorted(_EXPLICIT)}"
    )


def _read_first_line(path: Path) -> bytes:
    with path.open("rb") as fh:
        for line in fh:
            line = line.removeprefix(_BOM)
            if line.strip():
                return line
    return b""


def _first_signature(records: Any) -> list[str] | None:
    """Keys of the first record that identifies a schema (bad leading rows are skipped)."""
    first: list[str] | None = None
    for record in records:
        keys = list(record)
        if detect_schema(keys):
            return keys
        first = first if first is not None else keys
    return first


def _schema_or_raise(path: Path, keys: list[str] | None) -> Schema:
    if keys is None:
        raise DataSourceError(
            f"data file {path}: no JSON object among its first records to tell the schema from; set 'format'"
        )
    schema = detect_schema(keys)
    if schema is None:
        raise DataSourceError(
            f"data file {path}: cannot tell the record schema from its keys {keys}; accepted: {ACCEPTED}; "
            "or map your fields with 'columns: {instruction: ..., input: ..., output: ...}'"
        )
    return schema


# -- JSON arrays -----------------------------------------------------------------------


def _load_json_array(path: Path) -> list[Any]:
    try:
        data = path.read_bytes().removeprefix(_BOM)
    except OSError as exc:
        raise DataSourceError(f"data file {path} cannot be read: {exc}") from exc
    # surrogateescape: bad bytes survive parsing and reject only the element holding them
    text = data.decode("utf-8", "surrogateescape")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataSourceError(
            f"data file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(value, list):
        raise DataSourceError(
            f"data file {path}: top-level JSON is {type(value).__name__}, expected an array of objects"
        )
    return value


def _array_rows(
    path: Path, records: list[Any], schema: Schema, dataset: str, columns: Mapping[str, str] | None
) -> Iterator[Sample | Reject]:
    for i, record in enumerate(records):
        raw = None if columns is None else raw_text(record)
        record = record if columns is None else map_columns(record, columns)
        yield record_to_sample(schema, record, dataset, f"{path}[{i}]", raw)


# -- JSON lines ------------------------------------------------------------------------


def _sniff_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for n, line in enumerate(fh):
            if n >= _SCHEMA_SNIFF_LINES:
                return
            try:
                record = json.loads(line.removeprefix(_BOM))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                yield record


def _jsonl_rows(
    path: Path, schema: Schema, dataset: str, info: dict[str, Any], columns: Mapping[str, str] | None
) -> Iterator[Sample | Reject]:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1:
                line = line.removeprefix(_BOM)
            source = f"{path}:{lineno}"
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raw = preview(line.decode("utf-8", "replace").rstrip("\r\n"))
                yield Reject(source, "invalid UTF-8", f"byte {exc.start}: {exc.reason}", raw)
                continue
            if not text.strip():
                info["n_blank_lines"] += 1  # not a record; counted so nothing passes unseen
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Reject(source, "invalid JSON", f"{exc.msg} at column {exc.colno}", preview(text.rstrip()))
                continue
            if columns is not None:
                record = map_columns(record, columns)
            yield record_to_sample(schema, record, dataset, source, preview(text.rstrip()))


# -- Parquet ---------------------------------------------------------------------------


def _open_parquet(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"data file {path} is not a readable Parquet file: {exc}") from exc


def _parquet_rows(
    path: Path, pf: Any, schema: Schema, dataset: str, columns: Mapping[str, str] | None
) -> Iterator[Sample | Reject]:
    import pyarrow as pa

    row = 0
    batches = pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise DataSourceError(f"data file {path}: Parquet data unreadable after row {row}: {exc}") from exc
        for record in batch.to_pylist():
            raw = None if columns is None else raw_text(record)
            record = record if columns is None else map_columns(record, columns)
            yield record_to_sample(schema, record, dataset, f"{path}:row {row}", raw)
            row += 1
