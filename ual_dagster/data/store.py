"""DuckDB tables of the data domain: `samples` and `rejects` (their owner: no other module's
SQL names them, ual_dagster/storage/tables.py).

Writing a data set replaces its rows in both tables in one transaction (delete, then a
bulk insert from an Arrow table), so readers see either the old or the new version,
never a mix, and a crash mid-write leaves the old one.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

from ual_dagster.data.samples import Reject, Sample
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import table_exists, transaction

SAMPLES_DDL = """
CREATE TABLE IF NOT EXISTS samples (
    dataset VARCHAR NOT NULL,
    sample_id VARCHAR NOT NULL,          -- content hash of the normalised (instruction, input, output)
    instruction VARCHAR NOT NULL,
    input VARCHAR NOT NULL,              -- '' when the sample has no input
    output VARCHAR NOT NULL,
    source VARCHAR NOT NULL,             -- file:line, file[index], file:row N, hub_id:split:row, testbed:...
    split VARCHAR NOT NULL,              -- 'train' | 'heldout'
    family VARCHAR,                      -- testbed task family
    intrinsic_uncertainty DOUBLE,        -- testbed: normalised entropy of the valid answers
    valid_answers VARCHAR,               -- testbed: JSON list of accepted answers
    loaded_at TIMESTAMP NOT NULL
)
"""
REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS rejects (
    dataset VARCHAR NOT NULL,
    source VARCHAR NOT NULL,             -- where the bad row is: file:line, file[index], file:row N, ...
    reason VARCHAR NOT NULL,             -- category and detail, e.g. "invalid JSON: Expecting ',' ... at column 9"
    raw VARCHAR NOT NULL,                -- the row's text, truncated
    loaded_at TIMESTAMP NOT NULL
)
"""

_SAMPLES_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("sample_id", pa.string()),
        ("instruction", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("family", pa.string()),
        ("intrinsic_uncertainty", pa.float64()),
        ("valid_answers", pa.string()),
    ]
)
_REJECTS_SCHEMA = pa.schema(
    [("dataset", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("raw", pa.string())]
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SAMPLES_DDL)
    con.execute(REJECTS_DDL)


def tables_exist(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the data tables exist (readers open read-only and must not create them)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('samples', 'rejects')"
    ).fetchone()
    return bool(found and found[0] == 2)


def samples_exist(con: duckdb.DuckDBPyConnection) -> bool:
    return table_exists(con, "samples")


def require_samples(con: duckdb.DuckDBPyConnection) -> None:
    if not samples_exist(con):
        raise RuntimeError("table 'samples' does not exist: materialise instruction_sets (the data domain) first")


SAMPLES_VIEW = "samples_view"


def samples_view(con: duckdb.DuckDBPyConnection) -> str:
    """The read interface of `samples` for SQL that joins it with another owner's table: a
    temporary view (this connection only) with SAMPLES_DDL's columns; returns its name. A
    schema change of `samples` keeps this view's columns (or changes its readers with it)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {SAMPLES_VIEW} AS SELECT * FROM samples")
    return SAMPLES_VIEW


def _samples_table(samples: list[Sample]) -> pa.Table:
    columns = {name: [getattr(s, name) for s in samples] for name in _SAMPLES_SCHEMA.names if name != "valid_answers"}
    columns["valid_answers"] = [
        None if s.valid_answers is None else json.dumps(list(s.valid_answers), ensure_ascii=False) for s in samples
    ]
    return pa.table(columns, schema=_SAMPLES_SCHEMA)


def _rejects_table(dataset: str, rejects: list[Reject]) -> pa.Table:
    return pa.table(
        {
            "dataset": [dataset] * len(rejects),
            "source": [r.source for r in rejects],
            "reason": [r.message for r in rejects],
            "raw": [r.raw for r in rejects],
        },
        schema=_REJECTS_SCHEMA,
    )


def replace_dataset(store: DuckDBStore, dataset: str, samples: list[Sample], rejects: list[Reject]) -> None:
    """Make `samples` and `rejects` the dataset's rows, atomically."""
    new_samples, new_rejects = _samples_table(samples), _rejects_table(dataset, rejects)
    with store.connect() as con:
        ensure_tables(con)
        con.register("new_samples", new_samples)
        con.register("new_rejects", new_rejects)
        with transaction(con):
            con.execute("DELETE FROM samples WHERE dataset = ?", [dataset])
            con.execute("DELETE FROM rejects WHERE dataset = ?", [dataset])
            con.execute(
                f"INSERT INTO samples SELECT {', '.join(_SAMPLES_SCHEMA.names)}, current_timestamp FROM new_samples"
            )
            con.execute("INSERT INTO rejects SELECT dataset, source, reason, raw, current_timestamp FROM new_rejects")


def read_samples(store: DuckDBStore, dataset: str, split: str | None = None) -> list[Sample]:
    """The dataset's stored samples (optionally one split), in sample_id order."""
    query = f"SELECT {', '.join(_SAMPLES_SCHEMA.names)} FROM samples WHERE dataset = ?"
    params: list[object] = [dataset]
    if split is not None:
        query += " AND split = ?"
        params.append(split)
    with store.connect(read_only=True) as con:
        rows = con.execute(query + " ORDER BY sample_id", params).fetchall() if tables_exist(con) else []
    out = []
    for row in rows:
        values = dict(zip(_SAMPLES_SCHEMA.names, row))
        answers = values.pop("valid_answers")
        out.append(Sample(**values, valid_answers=None if answers is None else tuple(json.loads(answers))))
    return out


def read_rejects(store: DuckDBStore, dataset: str) -> list[tuple[str, str, str]]:
    """(source, reason, raw) of the dataset's rejected rows, in source order."""
    with store.connect(read_only=True) as con:
        if not tables_exist(con):
            return []
        return con.execute(
            "SELECT source, reason, raw FROM rejects WHERE dataset = ? ORDER BY source", [dataset]
        ).fetchall()


def train_sample_ids(store: DuckDBStore, datasets: list[str]) -> dict[str, list[str]]:
    """Train-split sample ids per dataset: the candidates for select_scenario."""
    with store.connect(read_only=True) as con:
        rows = (
            con.execute(
                "SELECT dataset, sample_id FROM samples WHERE split = 'train' AND dataset IN (SELECT unnest(?))",
                [datasets],
            ).fetchall()
            if tables_exist(con)
            else []
        )
    out: dict[str, list[str]] = {d: [] for d in datasets}
    for dataset, sample_id in rows:
        out[dataset].append(sample_id)
    return out


def sample_ids_by_split(store: DuckDBStore, dataset: str) -> dict[str, list[str]]:
    """split -> the data set's sample ids (empty when `samples` does not exist yet)."""
    with store.connect(read_only=True) as con:
        rows = (
            con.execute("SELECT DISTINCT split, sample_id FROM samples WHERE dataset = ?", [dataset]).fetchall()
            if tables_exist(con)
            else []
        )
    out: dict[str, list[str]] = {}
    for split, sample_id in rows:
        out.setdefault(split, []).append(sample_id)
    return out


def split_sample_ids(store: DuckDBStore, dataset: str, splits: list[str]) -> set[str]:
    """The data set's sample ids in `splits`."""
    marks = ", ".join("?" for _ in splits)
    with store.connect(read_only=True) as con:
        rows = con.execute(
            f"SELECT DISTINCT sample_id FROM samples WHERE dataset = ? AND split IN ({marks})", [dataset, *splits]
        ).fetchall()
    return {r[0] for r in rows}


def repeated_sample_ids(store: DuckDBStore, dataset: str, limit: int) -> tuple[int, int, dict[str, int]] | None:
    """(rows, distinct sample ids, up to `limit` repeated ids -> count) of the data set; None
    when `samples` does not exist."""
    with store.connect(read_only=True) as con:
        if not tables_exist(con):
            return None
        n_rows, n_distinct = con.execute(
            "SELECT count(*), count(DISTINCT sample_id) FROM samples WHERE dataset = ?", [dataset]
        ).fetchone() or (0, 0)
        repeated = con.execute(
            "SELECT sample_id, count(*) AS n FROM samples WHERE dataset = ? GROUP BY sample_id HAVING n > 1 "
            "ORDER BY n DESC, sample_id LIMIT ?",
            [dataset, limit],
        ).fetchall()
    return n_rows, n_distinct, {sid: n for sid, n in repeated}


def empty_sample_sources(store: DuckDBStore, dataset: str) -> list[str] | None:
    """Sources of the data set's samples with an empty (or whitespace-only) output or
    instruction, in source order; None when `samples` does not exist."""
    with store.connect(read_only=True) as con:
        if not tables_exist(con):
            return None
        rows = con.execute(
            "SELECT source FROM samples WHERE dataset = ? AND (trim(output) = '' OR trim(instruction) = '') "
            "ORDER BY source",
            [dataset],
        ).fetchall()
    return [s for (s,) in rows]


def train_row_counts(store: DuckDBStore) -> dict[str, int]:
    """dataset -> distinct train-split sample ids ({} when `samples` does not exist)."""
    with store.connect(read_only=True) as con:
        if not tables_exist(con):
            return {}
        rows = con.execute(
            "SELECT dataset, count(DISTINCT sample_id) FROM samples WHERE split = 'train' GROUP BY dataset"
        ).fetchall()
    return {d: int(n) for d, n in rows}


def sample_lengths_by_split(store: DuckDBStore, dataset: str) -> dict[str, list[tuple[str, int]]]:
    """split -> [(sample_id, instruction + input + output length)] of the data set ({} when
    `samples` does not exist)."""
    with store.connect(read_only=True) as con:
        if not table_exists(con, "samples"):
            return {}
        rows = con.execute(
            "SELECT split, sample_id, any_value(length(instruction) + length(input) + length(output)) "
            "FROM samples WHERE dataset = ? GROUP BY split, sample_id",
            [dataset],
        ).fetchall()
    out: dict[str, list[tuple[str, int]]] = {}
    for split, sid, n in rows:
        out.setdefault(split, []).append((sid, int(n)))
    return out


def split_rows(store: DuckDBStore, datasets: list[str], split: str) -> list[tuple[str, str, str, str, str, str | None]]:
    """(dataset, sample_id, instruction, input, output, valid_answers as stored JSON) of one
    split of `datasets`, by dataset and sample_id."""
    with store.connect(read_only=True) as con:
        return con.execute(
            "SELECT dataset, sample_id, instruction, coalesce(input, ''), output, valid_answers FROM samples "
            "WHERE split = ? AND dataset IN (SELECT unnest(?)) ORDER BY dataset, sample_id",
            [split, datasets],
        ).fetchall()


def dataset_sample_contents(store: DuckDBStore, dataset: str) -> list[tuple[str, str, str, str]]:
    """(sample_id, instruction, input, output) of every sample of the dataset, any split."""
    with store.connect() as con:
        require_samples(con)
        return con.execute(
            "SELECT DISTINCT sample_id, instruction, coalesce(input, ''), output FROM samples WHERE dataset = ?",
            [dataset],
        ).fetchall()
