"""build_instruction_set: duplicates, fingerprints, replacement, limit, atomic writes, checks."""

import duckdb
import pytest

from tests.data.helpers import load, write_lines
from ual_dagster.data import checks, read_rejects, read_samples
from ual_dagster.data import store as data_store
from ual_dagster.storage import DuckDBStore


@pytest.fixture
def store(tmp_path):
    return DuckDBStore(tmp_path / "db.duckdb")


def rows(n):
    return [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(n)]


def test_exact_duplicates_are_dropped_but_counted(tmp_path, store):
    base = rows(3)
    dup_crlf = {"instruction": "task 1", "input": "", "output": "answer 1\r\n"}  # same after normalisation
    path = write_lines(tmp_path / "d.jsonl", base + [base[0], dup_crlf, base[0]])
    result = load(path, store)
    assert (result.n_read, result.n_kept, result.n_duplicates, result.n_rejects) == (6, 3, 3, 0)
    assert result.metadata["duplicate_examples"][0] == f"{path}:4 repeats {path}:1"
    assert len(read_samples(store, "ds")) == 3
    assert checks.unique_sample_ids(store, "ds")[0]


def test_fingerprint_stable_across_reloads_order_and_location_and_changed_by_an_edit(tmp_path, store):
    data = rows(5)
    first = load(write_lines(tmp_path / "a.jsonl", data), store)
    again = load(tmp_path / "a.jsonl", store)
    moved_and_reordered = load(write_lines(tmp_path / "b.jsonl", data[::-1]), store)
    assert first.fingerprint == again.fingerprint == moved_and_reordered.fingerprint
    edited = [dict(r) for r in data]
    edited[2]["output"] = "answer two"
    assert load(write_lines(tmp_path / "a.jsonl", edited), store).fingerprint != first.fingerprint


def test_reloading_replaces_the_dataset_rows_and_leaves_other_datasets(tmp_path, store):
    load(write_lines(tmp_path / "a.jsonl", rows(4) + ["{bad"]), store, name="a")
    load(write_lines(tmp_path / "b.jsonl", rows(2)), store, name="b")
    load(write_lines(tmp_path / "a.jsonl", rows(3)), store, name="a")
    assert len(read_samples(store, "a")) == 3 and read_rejects(store, "a") == []
    assert len(read_samples(store, "b")) == 2


def test_limit_keeps_the_first_good_rows_and_stops_reading(tmp_path, store):
    path = write_lines(tmp_path / "l.jsonl", ["{bad"] + rows(10))
    result = load(path, store, limit=4)
    assert (result.n_read, result.n_kept, result.n_rejects) == (5, 4, 1)
    assert sorted(s.output for s in read_samples(store, "ds")) == [f"answer {i}" for i in range(4)]
    assert result.metadata["stopped_at_limit"] is True


def test_a_failed_write_rolls_back_to_the_previous_rows(tmp_path, store, monkeypatch):
    load(write_lines(tmp_path / "a.jsonl", rows(3)), store)
    # An insert that fails after the delete: the transaction must restore the old rows.
    monkeypatch.setattr(data_store, "_rejects_table", lambda dataset, rejects: data_store.pa.table({"x": [1]}))
    with pytest.raises(duckdb.Error):
        load(write_lines(tmp_path / "a.jsonl", rows(5)), store)
    assert len(read_samples(store, "ds")) == 3


def test_checks_detect_repeated_ids_and_empty_outputs(tmp_path, store):
    load(write_lines(tmp_path / "a.jsonl", rows(3)), store)
    assert checks.no_empty_outputs(store, "ds") == (True, {"n_empty": 0, "examples": []})
    with store.connect() as con:  # rows no loader would write, planted to prove the checks see them
        con.execute("INSERT INTO samples SELECT * REPLACE ('  ' AS output, 'x:9' AS source) FROM samples LIMIT 1")
    unique_ok, unique_meta = checks.unique_sample_ids(store, "ds")
    empty_ok, empty_meta = checks.no_empty_outputs(store, "ds")
    assert not unique_ok and unique_meta["n_rows"] == 4 and unique_meta["n_distinct_ids"] == 3
    assert not empty_ok and empty_meta == {"n_empty": 1, "examples": ["x:9"]}


def test_reject_rate_check(tmp_path, store):
    result = load(write_lines(tmp_path / "a.jsonl", rows(7) + ["{bad"] + [rows(1)[0]] * 2), store)
    # 1 reject of 10 rows read (7 kept + 2 duplicates + 1 reject)
    ok, meta = checks.reject_rate(result, 0.1)
    assert ok and meta["reject_rate"] == 0.1
    assert not checks.reject_rate(result, 0.09)[0]


def test_checks_on_an_empty_database_fail_cleanly(store):
    assert checks.unique_sample_ids(store, "none") == (False, {"error": "table 'samples' does not exist"})
