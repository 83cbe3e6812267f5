"""Seeds are a dimension of every variant: adding one trains and evaluates only that seed,
removing one reuses the rest, and the comparisons follow the seeds that are listed."""

from pathlib import Path

import dagster as dg
import pytest

from tests.orchestration.profiles import (
    NOTES,
    finished_checkpoints,
    materialize_profile,
    write_jsonl,
    write_rebuild_profile,
)
from ual_dagster.config import load_profile
from ual_dagster.evaluation.comparisons import read_comparisons
from ual_dagster.evaluation.scores import read_items
from ual_dagster.storage import DuckDBStore, StatePaths

pytestmark = pytest.mark.slow

SCENARIOS = {"low_entropy": {"size": 24, "weights": {"testbed_exact": 1.0}}}


def _run(root: Path, instance: dg.DagsterInstance, seeds: list[int]) -> dict[str, dict]:
    path = write_rebuild_profile(root, scenarios=SCENARIOS, experiment={"seeds": seeds, "bootstrap_iters": 300})
    return materialize_profile(path, instance)


def test_adding_a_seed_trains_only_that_seed_and_removing_one_reuses_the_rest(tmp_path):
    write_jsonl(tmp_path / "notes.jsonl", NOTES)
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))

    meta = _run(tmp_path, instance, [0])
    first = finished_checkpoints(tmp_path)
    assert len(first) == 2  # sft and ual, seed 0
    assert meta["lora_low_entropy_ual"]["trained"] == 1

    meta = _run(tmp_path, instance, [0, 1])
    second = finished_checkpoints(tmp_path)
    assert {k: v for k, v in second.items() if k in first} == first  # seed 0 untouched
    assert len(second) == 4
    for method in ("sft", "ual"):
        lora = meta[f"lora_low_entropy_{method}"]
        assert lora["trained"] == 1 and lora["seeds"] == [0, 1]
        ev = meta[f"eval_low_entropy_{method}"]
        assert ev["evaluated"] == 1  # only seed 1's checkpoint was evaluated
    store = DuckDBStore(StatePaths.for_profile(load_profile(str(tmp_path / "profile.yaml"))).duckdb)
    items = read_items(store)
    assert sorted(items["seed"].unique()) == [0, 1]
    cmp = read_comparisons(store)
    assert len(cmp) and set(cmp["n_seeds"]) == {2} and set(cmp["method"]) == {"ual"}

    meta = _run(tmp_path, instance, [1])
    assert finished_checkpoints(tmp_path) == second  # nothing trained
    assert meta["lora_low_entropy_ual"]["trained"] == 0
    assert meta["eval_low_entropy_ual"]["evaluated"] == 0
    assert set(read_comparisons(store)["n_seeds"]) == {1}
