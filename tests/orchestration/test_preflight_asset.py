"""The preflight asset runs first and its blocking check stops a run that lacks something (issue 10)."""

import dagster as dg
import yaml

from assets.definitions import build_definitions
from assets.keys import instruction_set_key
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR


def _profile(tmp_path, **elicitation):
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data["storage"] = {"state_dir": str(tmp_path / "state")}
    for ds in data["datasets"].values():
        ds["testbed"]["n_samples"] = 60
    data["elicitation"].update(elicitation)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(str(path))


def _run(profile, monkeypatch):
    monkeypatch.delenv("UAL_TEST_NO_SUCH_KEY", raising=False)
    defs = build_definitions(profile)
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(["preflight"]), instruction_set_key("testbed_exact")]
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)
        done = {e.asset_key for e in result.get_asset_materialization_events()}
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return done, checks


def test_missing_key_stops_the_run_before_any_data_is_loaded(tmp_path, monkeypatch):
    profile = _profile(tmp_path, base_url="https://elicitor.invalid/v1", api_key_env="UAL_TEST_NO_SUCH_KEY")
    done, checks = _run(profile, monkeypatch)
    assert checks == {"preflight_passed": False}  # and no check of instruction_sets: it never ran
    assert instruction_set_key("testbed_exact") not in done


def test_passing_preflight_lets_the_run_go_on(tmp_path, monkeypatch):
    done, checks = _run(_profile(tmp_path), monkeypatch)
    assert checks["preflight_passed"] is True
    assert instruction_set_key("testbed_exact") in done
