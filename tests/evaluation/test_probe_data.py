"""token_clustering's probe set: held-out rows, never rows a checkpoint may have trained on."""

import pytest
import yaml

from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR
from ual_dagster.data import Sample
from ual_dagster.data.selection import scenario_windows
from ual_dagster.data.store import replace_dataset
from ual_dagster.evaluation.pipeline import probe_data
from ual_dagster.storage import DuckDBStore


def _sample(dataset: str, i: int, split: str) -> Sample:
    return Sample.create(dataset=dataset, instruction=f"q{i}", input="", output=f"a{i}", source=f"f:{i}", split=split)


def _paper_small(tmp_path):
    """The paper profile (hub data sets: train split only) with scenarios of 10 rows a data set."""
    data = yaml.safe_load((BUNDLED_DIR / "paper.yaml").read_text())
    data["scenarios"] = {
        "high_entropy": {"size": 10, "weights": {"alpaca": 1.0}},
        "low_entropy": {"size": 10, "weights": {"metamath": 1.0}},
        "mixed": {"size": 20, "weights": {"alpaca": 0.5, "metamath": 0.5}},
    }
    path = tmp_path / "paper_small.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(str(path))


def test_paper_probes_are_rows_no_scenario_can_train_on(tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    replace_dataset(store, "alpaca", [_sample("alpaca", i, "train") for i in range(50)], [])
    replace_dataset(store, "metamath", [_sample("metamath", 100 + i, "train") for i in range(30)], [])
    profile = _paper_small(tmp_path)
    probes = probe_data(profile, store)  # its evaluation reads gsm8k / AlpacaEval from the hub
    # each data set's window is its 10-row share plus the 2% reserve (1 row): 11 rows a data set
    assert {k: len(v) for k, v in probes.items.items()} == {"alpaca": 39, "metamath": 19}
    ids = {d: [it.sample_id for it in probe_data(profile, store).items[d]] for d in ("alpaca", "metamath")}
    with store.connect(read_only=True) as con:
        train = dict.fromkeys(("alpaca", "metamath"))
        for d in train:
            train[d] = [r[0] for r in con.execute("SELECT sample_id FROM samples WHERE dataset = ?", [d]).fetchall()]
    for scen in profile.scenarios.values():
        for d, window in scenario_windows(scen, {d: train[d] for d in scen.weights}, 0.02).items():
            assert not set(window) & set(ids[d]), (d, "a probe is a row the scenario trains on")

    # a training set row outside the windows (e.g. drawn past the reserve) is excluded too
    extra = next(s for s in ids["alpaca"])
    with store.connect() as con:
        con.execute(
            "CREATE TABLE training_sets (scenario VARCHAR, position INTEGER, dataset VARCHAR, sample_id VARCHAR)"
        )
        con.execute("INSERT INTO training_sets VALUES ('high_entropy', 99, 'alpaca', ?)", [extra])
    assert extra not in {it.sample_id for it in probe_data(profile, store).items["alpaca"]}


def test_probes_fail_clearly_when_every_row_may_be_trained_on(tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    replace_dataset(store, "alpaca", [_sample("alpaca", i, "train") for i in range(5)], [])
    replace_dataset(store, "metamath", [_sample("metamath", i, "train") for i in range(3)], [])
    with pytest.raises(ValueError, match="no held-out rows and every train row may be trained on"):
        probe_data(load_profile("paper"), store)  # 20,000-row scenarios cover all 8 rows


def test_tiny_probes_its_heldout_rows(tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    replace_dataset(
        store, "testbed_exact", [_sample("testbed_exact", 1, "train"), _sample("testbed_exact", 2, "heldout")], []
    )
    replace_dataset(store, "testbed_open", [_sample("testbed_open", 3, "heldout")], [])
    tiny = probe_data(load_profile("tiny"), store)
    assert sorted(it.instruction for it in tiny.all_items()) == ["q2", "q3"]
