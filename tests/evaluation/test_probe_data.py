"""token_clustering's probe set: held-out rows when the evaluation has them, else the train split."""

from ual_dagster.config import load_profile
from ual_dagster.data import Sample
from ual_dagster.data.store import replace_dataset
from ual_dagster.evaluation.pipeline import probe_data
from ual_dagster.storage import DuckDBStore


def _sample(dataset: str, i: int, split: str) -> Sample:
    return Sample.create(dataset=dataset, instruction=f"q{i}", input="", output=f"a{i}", source=f"f:{i}", split=split)


def test_paper_profile_probes_the_train_split_and_tiny_the_heldout_rows(tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    replace_dataset(store, "alpaca", [_sample("alpaca", i, "train") for i in range(5)], [])
    replace_dataset(store, "metamath", [_sample("metamath", i, "train") for i in range(3)], [])
    paper = probe_data(load_profile("paper"), store)  # its evaluation reads gsm8k / AlpacaEval from the hub
    assert {k: len(v) for k, v in paper.items.items()} == {"alpaca": 5, "metamath": 3}

    replace_dataset(
        store, "testbed_exact", [_sample("testbed_exact", 1, "train"), _sample("testbed_exact", 2, "heldout")], []
    )
    replace_dataset(store, "testbed_open", [_sample("testbed_open", 3, "heldout")], [])
    tiny = probe_data(load_profile("tiny"), store)
    assert sorted(it.instruction for it in tiny.all_items()) == ["q2", "q3"]
