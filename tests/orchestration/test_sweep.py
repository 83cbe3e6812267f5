"""A sweep's points are ordinary methods: adding a grid value trains only that point (and its
matched LS copy), removing one reuses the rest, and the report draws the dose-response."""

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
from ual_dagster.storage import DuckDBStore, StatePaths

pytestmark = pytest.mark.slow

SCENARIOS = {"low_entropy": {"size": 24, "weights": {"testbed_exact": 1.0}}}
METHODS = {
    "sft": {"kind": "sft"},
    "ual": {"kind": "ual", "eps_min": 0.0, "eps_max": 0.2},
    "ls_matched": {"kind": "ls", "match": "ual"},
}


def _run(root: Path, instance: dg.DagsterInstance, eps_max: list[float]) -> dict[str, dict]:
    sweep = {"ual": {"eps_max": eps_max}, "ls_matched": {"follow": "ual"}}
    experiment = {"seeds": [0], "bootstrap_iters": 200, "sweep": sweep}
    path = write_rebuild_profile(root, scenarios=SCENARIOS, methods=METHODS, experiment=experiment)
    return materialize_profile(path, instance)


def test_adding_a_grid_value_trains_only_that_point_and_removing_one_reuses_the_rest(tmp_path):
    write_jsonl(tmp_path / "notes.jsonl", NOTES)
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))

    _run(tmp_path, instance, [0.1])
    first = finished_checkpoints(tmp_path)
    assert len(first) == 3  # sft, ual_e0p1 and ls_matched_e0p1

    meta = _run(tmp_path, instance, [0.1, 0.3])
    second = finished_checkpoints(tmp_path)
    assert {k: v for k, v in second.items() if k in first} == first  # the 0.1 point untouched
    assert len(second) == 5
    assert meta["lora_low_entropy_ual_e0p3"]["trained"] == 1
    assert meta["lora_low_entropy_ls_matched_e0p3"]["trained"] == 1
    for kept in ("sft", "ual_e0p1", "ls_matched_e0p1"):
        assert meta[f"lora_low_entropy_{kept}"]["trained"] == 0
        assert meta[f"eval_low_entropy_{kept}"]["evaluated"] == 0
    store = DuckDBStore(StatePaths.for_profile(load_profile(str(tmp_path / "profile.yaml"))).duckdb)
    cmp = read_comparisons(store)
    # the points are not baselines: each is compared with SFT, and each ual point with its own matched LS
    pairs = set(zip(cmp["method"], cmp["baseline"]))
    assert pairs == {
        ("ual_e0p1", "sft"),
        ("ual_e0p3", "sft"),
        ("ls_matched_e0p1", "sft"),
        ("ls_matched_e0p3", "sft"),
        ("ual_e0p1", "ls_matched_e0p1"),
        ("ual_e0p3", "ls_matched_e0p3"),
    }
    report = Path(meta["comparison_report"]["report"])
    dose = report.parent / "dose_response_low_entropy.png"
    assert dose.is_file() and dose.read_bytes().startswith(b"\x89PNG")
    assert "![dose-response low_entropy](dose_response_low_entropy.png)" in report.read_text()
    assert "cover the sampling of held-out items only" in report.read_text()  # one seed

    meta = _run(tmp_path, instance, [0.3])
    assert finished_checkpoints(tmp_path) == second  # nothing trained
    assert meta["lora_low_entropy_ual_e0p3"]["trained"] == 0
    assert "lora_low_entropy_ual_e0p1" not in meta
    assert set(read_comparisons(store)["method"]) == {"ual_e0p3", "ls_matched_e0p3"}
