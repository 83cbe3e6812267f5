"""In Dagster: an unusable data set fails its asset with the one-line cause as the failure
description, and a failing coverage check blocks everything downstream in the run."""

import json
from pathlib import Path

import dagster as dg
import yaml

from assets.definitions import build_definitions
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR


def small_profile(root: Path, datasets: dict, scenarios: dict, **elicitation) -> Path:
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data.update(name="guards", storage={"state_dir": str(root / "state")}, datasets=datasets, scenarios=scenarios)
    data["elicitation"].update(elicitation)
    path = root / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def materialize(profile: Path, root: Path, keys: list[str]) -> dg.ExecuteInProcessResult:
    defs = build_definitions(load_profile(str(profile)))
    (root / "home").mkdir(exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(root / "home"))
    selection = [dg.AssetKey.from_user_string(k) for k in keys]
    return dg.materialize(
        list(defs.assets), resources=defs.resources, instance=instance, selection=selection, raise_on_error=False
    )


def test_an_all_rejected_data_set_fails_its_asset_with_a_one_line_description(tmp_path):
    dolly = tmp_path / "dolly.jsonl"
    dolly.write_text(
        "".join(json.dumps({"instruction": f"i{n}", "context": "", "response": "r"}) + "\n" for n in range(3))
    )
    datasets = {"bad": {"source": "file", "entropy": "high", "path": str(dolly), "format": "alpaca_jsonl"}}
    profile = small_profile(tmp_path, datasets, {"s": {"size": 2, "weights": {"bad": 1.0}}})
    result = materialize(profile, tmp_path, ["instruction_sets/bad"])
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("data set 'bad': no row kept, 3 of 3 rows rejected from file")
    assert str(dolly) in description and "missing field 'output' (3 rows" in description
    assert "\n" not in description


def test_a_failing_coverage_check_blocks_the_training_set(tmp_path):
    datasets = {
        "exact": {
            "source": "testbed",
            "entropy": "low",
            "testbed": {"kind": "single_answer", "n_samples": 40, "heldout_fraction": 0.1, "seed": 0},
        },
    }
    profile = small_profile(
        tmp_path, datasets, {"s": {"size": 10, "weights": {"exact": 1.0}}}, max_calls=5, concurrency=2
    )
    result = materialize(profile, tmp_path, ["instruction_sets/exact", "uncertainty/exact", "training_sets/s"])
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["uncertainty_coverage"].passed is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "uncertainty/exact" in materialized  # the paid-for answers are kept
    assert "training_sets/s" not in materialized  # never trained on a partly scored data set
