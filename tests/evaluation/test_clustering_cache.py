"""token_clustering keeps one result per fingerprint, failures of the inputs included."""

import numpy as np
import pytest

from ual_dagster.evaluation.clustering import (
    ClusteringInputError,
    cluster_quality,
    load_clustering,
    save_clustering,
)
from ual_dagster.evaluation.scores import ScoreRow
from ual_dagster.storage import DuckDBStore


def test_results_of_every_fingerprint_are_kept(tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    assert load_clustering(store, "fp-a") is None
    rows_a = [ScoreRow("token_clustering", "silhouette@L-1", 0.25, None, 120, {"n_token_ids": 9})]
    rows_b = [ScoreRow("token_clustering", "silhouette@L-1", 0.5, None, 80, {})]
    save_clustering(store, "fp-a", "ckpt-a", rows_a)
    save_clustering(store, "fp-b", "ckpt-b", rows_b)  # a new config: fp-a stays (a revert finds it)
    assert load_clustering(store, "fp-a").rows == rows_a
    assert load_clustering(store, "fp-b").rows == rows_b
    failed = save_clustering(store, "fp-c", "ckpt-c", [], error="too few tokens")
    assert load_clustering(store, "fp-c") == failed and failed.error == "too few tokens" and failed.rows == []


def test_unclusterable_inputs_raise_the_input_error():
    with pytest.raises(ClusteringInputError, match="at least 2 token ids"):
        cluster_quality(np.random.default_rng(0).normal(size=(5, 4)), np.arange(5), max_tokens=100, seed=0)


def test_writing_no_rows_removes_the_benchmarks_rows(tmp_path):
    """A checkpoint whose clustering failed keeps no clustering rows of an earlier config."""
    from ual_dagster.evaluation.scores import read_scores, write_scores

    store = DuckDBStore(tmp_path / "db.duckdb")
    row = ScoreRow("token_clustering", "silhouette@L-1", 0.25, None, 120)
    write_scores(store, "mixed", "ual", "ck", "fp-a", [row], benchmarks=["token_clustering"])
    assert len(read_scores(store)) == 1
    write_scores(store, "mixed", "ual", "ck", "fp-b", [], benchmarks=["token_clustering"])
    assert read_scores(store).empty
