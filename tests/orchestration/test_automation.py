"""The automation condition reacts to data-version and code-version changes only;
the re-elicitation schedule asks for exactly the data sets with missing or stale rows."""

from datetime import datetime, timezone

import dagster as dg
import yaml

from assets.common import DATA_OR_CODE_CHANGED
from assets.definitions import build_definitions
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR
from ual_dagster.data import build_instruction_set
from ual_dagster.elicitation import elicit_dataset
from ual_dagster.storage import StatePaths


def _defs(raw_version: str, elicited_code: str) -> dg.Definitions:
    @dg.asset(key="raw", code_version="raw-1")
    def raw():
        return dg.MaterializeResult(data_version=dg.DataVersion(raw_version))

    @dg.asset(key="elicited", deps=["raw"], code_version=elicited_code, automation_condition=DATA_OR_CODE_CHANGED)
    def elicited():
        return dg.MaterializeResult(data_version=dg.DataVersion("e"))

    return dg.Definitions(assets=[raw, elicited])


def _tick(defs, instance, cursor):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return result.total_requested, result.cursor


def test_condition_fires_on_new_data_version_or_code_version_not_on_noop_runs():
    instance = dg.DagsterInstance.ephemeral()
    defs = _defs("v1", "c1")
    dg.materialize(defs.assets, instance=instance)
    requested, cursor = _tick(defs, instance, None)
    assert requested == 0  # everything materialised and fresh

    dg.materialize([a for a in defs.assets if a.key == dg.AssetKey("raw")], instance=instance)
    requested, cursor = _tick(defs, instance, cursor)
    assert requested == 0  # upstream re-ran with the SAME data version: plain eager() would retrain here

    changed = _defs("v2", "c1")
    dg.materialize([a for a in changed.assets if a.key == dg.AssetKey("raw")], instance=instance)
    requested, cursor = _tick(changed, instance, cursor)
    assert requested == 1  # a new data version upstream
    dg.materialize([a for a in changed.assets if a.key == dg.AssetKey("elicited")], instance=instance)
    requested, cursor = _tick(changed, instance, cursor)
    assert requested == 0  # handled

    bumped = _defs("v2", "c2")
    requested, cursor = _tick(bumped, instance, cursor)
    assert requested == 1  # the asset's own code (config) changed: eager() alone would not fire
    requested, cursor = _tick(bumped, instance, cursor)
    assert requested == 0 or requested == 1  # still in flight until materialised; never more than the one asset


def test_reelicitation_schedule_requests_only_datasets_with_missing_rows(tmp_path):
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data["storage"] = {"state_dir": str(tmp_path / "state")}
    for ds in data["datasets"].values():
        ds["testbed"]["n_samples"] = 60
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = load_profile(str(path))
    store = StatePaths.for_profile(profile).ensure().store()
    for name, cfg in profile.datasets.items():
        build_instruction_set(name, cfg, store)
    elicit_dataset("testbed_exact", profile.elicitation, store)  # fully scored; testbed_open is not

    defs = build_definitions(profile)
    schedule = defs.get_schedule_def("reelicitation")
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.now(timezone.utc),
            resources={"duckdb": defs.resources["duckdb"]},  # the schedule reads the location's DuckDB resource
        )
        requests = schedule.evaluate_tick(ctx).run_requests
    assert [r.asset_selection for r in requests] == [[dg.AssetKey("uncertainty_testbed_open")]]

    elicit_dataset("testbed_open", profile.elicitation, store)
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.now(timezone.utc),
            resources={"duckdb": defs.resources["duckdb"]},  # the schedule reads the location's DuckDB resource
        )
        data = schedule.evaluate_tick(ctx)
    assert not data.run_requests and data.skip_message


def test_source_files_sensor_requests_the_changed_dataset_only(tmp_path):
    from assets.sensors import source_files_sensor

    files = {}
    for name in ("a", "b"):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text('{"instruction": "x", "input": "", "output": "y"}\n')
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data["datasets"] = {n: {"source": "file", "entropy": "high", "path": str(p)} for n, p in files.items()}
    data["scenarios"] = {"s": {"size": 1, "weights": {"a": 1.0}}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    sensor = source_files_sensor(load_profile(str(path)))

    first = sensor.evaluate_tick(dg.build_sensor_context())
    assert not first.run_requests and first.cursor  # the first look only remembers
    quiet = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor))
    assert not quiet.run_requests
    files["b"].write_text(files["b"].read_text() + '{"instruction": "z", "input": "", "output": "w"}\n')
    tick = sensor.evaluate_tick(dg.build_sensor_context(cursor=quiet.cursor))
    assert [r.asset_selection for r in tick.run_requests] == [[dg.AssetKey("instructions_b")]]
