"""transaction() and replace_rows(): a replacement is all or nothing."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ual_dagster.storage.duckdb_store import DuckDBStore, replace_rows, transaction


@pytest.fixture
def store(tmp_path):
    store = DuckDBStore(tmp_path / "state.duckdb")
    with store.connect() as con:
        con.execute("CREATE TABLE scores (run VARCHAR NOT NULL, item INTEGER NOT NULL, value DOUBLE)")
        con.execute("INSERT INTO scores VALUES ('a', 1, 0.5), ('a', 2, 0.25), ('b', 1, 1.0)")
    return store


def _rows(store):
    with store.connect() as con:
        return con.execute("SELECT run, item, value FROM scores ORDER BY run, item").fetchall()


def test_replace_rows_swaps_only_the_matching_rows(store):
    new = pd.DataFrame({"value": [0.75], "item": [3], "run": ["a"]})  # columns matched by name, not position
    with store.connect() as con:
        assert replace_rows(con, "scores", "run = ?", ["a"], new) == 1
    assert _rows(store) == [("a", 3, 0.75), ("b", 1, 1.0)]


def test_replace_rows_with_no_rows_deletes_the_matching_ones(store):
    with store.connect() as con:
        assert replace_rows(con, "scores", "run = ?", ["b"], pd.DataFrame()) == 0
    assert _rows(store) == [("a", 1, 0.5), ("a", 2, 0.25)]


def test_a_failed_insert_rolls_back_the_delete(store):
    before = _rows(store)
    bad = pd.DataFrame({"run": ["a", None], "item": [1, 2], "value": [0.1, 0.2]})  # NOT NULL violated mid-insert
    with store.connect() as con:
        with pytest.raises(duckdb.ConstraintException):
            replace_rows(con, "scores", "run = ?", ["a"], bad)
        # the connection is usable afterwards: the failed transaction was closed
        assert con.execute("SELECT count(*) FROM scores").fetchone() == (3,)
    assert _rows(store) == before


def test_transaction_commits_on_success_and_rolls_back_on_any_exception(store):
    with store.connect() as con:
        with transaction(con):
            con.execute("DELETE FROM scores WHERE run = 'b'")
        with pytest.raises(KeyboardInterrupt):
            with transaction(con):
                con.execute("DELETE FROM scores")
                raise KeyboardInterrupt
    assert _rows(store) == [("a", 1, 0.5), ("a", 2, 0.25)]
