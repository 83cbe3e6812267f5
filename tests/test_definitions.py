"""The code location loads for every bundled profile, offline, with the graph the profile implies."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets.definitions import build_definitions
from tests.orchestration.profiles import small_profile, write_profile
from tests.orchestration.test_dead_runs import started_run
from ual_dagster.config import bundled_profiles, load_profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", bundled_profiles())
def test_definitions_load_and_validate(name):
    profile = load_profile(name)
    defs = build_definitions(profile)
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    variants = {f"{s}_{m}" for s in profile.scenarios for m in profile.methods}
    expected = (
        {f"instructions_{d}" for d in profile.datasets}
        | {f"uncertainty_{d}" for d in profile.datasets}
        | {f"training_set_{s}" for s in profile.scenarios}
        | {f"lora_{v}" for v in variants}
        | {f"eval_{v}" for v in variants}
        | {"preflight", "base_model", "eval_sets", "token_clustering", "eval_scores", "comparison_report"}
    )
    assert keys == expected
    assert defs.get_schedule_def("reelicitation").cron_schedule == profile.elicitation.schedule_cron
    assert defs.get_sensor_def("ual_automation") is not None


def test_lineage_of_the_tiny_profile():
    graph = build_definitions(load_profile("tiny")).resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey.from_user_string(key)).parent_keys}

    assert parents("uncertainty_testbed_open") == {"instructions_testbed_open"}
    assert parents("training_set_mixed") == {"uncertainty_testbed_open", "uncertainty_testbed_exact"}
    assert parents("lora_mixed_ual") == {"training_set_mixed", "base_model"}
    assert parents("eval_mixed_ual") == {"lora_mixed_ual", "eval_sets", "base_model"}
    assert "eval_low_entropy_sft" in parents("eval_scores")
    assert parents("comparison_report") == {"eval_scores"}
    # its corpus is generated, not read; preflight (external needs) runs before it
    assert parents("base_model") == {"preflight"}
    assert parents("instructions_testbed_open") == {"preflight"}


def _code_version(defs: dg.Definitions, key: str) -> str:
    asset_key = dg.AssetKey.from_user_string(key)
    return defs.resolve_assets_def(asset_key).code_versions_by_key[asset_key]


def test_code_versions_change_with_the_result_not_with_how_it_is_computed(tmp_path):
    """The lora asset's code version and the checkpoint fingerprint hash the same fields
    (ual_dagster.train.versioning.result_config); the uncertainty asset's code version and the
    elicitor fingerprint both leave out throughput settings. A pod size or a concurrency
    therefore marks nothing stale, a learning rate or an elicitor model does."""
    from ual_dagster.elicitation import elicitor_fingerprint
    from ual_dagster.train.versioning import checkpoint_fingerprint

    def variant(name: str, **sections) -> tuple:
        path = tmp_path / f"{name}.yaml"
        lines = ["extends: cluster", f"name: {name}"] + [f"{k}: {v}" for k, v in sections.items()]
        path.write_text("\n".join(lines) + "\n")
        profile = load_profile(str(path))
        defs = build_definitions(profile)
        fp = checkpoint_fingerprint("base", "examples", profile.training, profile.methods["ual"])
        return (
            (_code_version(defs, "lora_mixed_ual"), fp),
            (_code_version(defs, "uncertainty_alpaca"), elicitor_fingerprint(profile.elicitation)),
        )

    base_train, base_elicit = variant("base")
    pod = "{launcher: {kind: k8s, image: other:2, state_pvc: ual-state, gpus: 4, distributed: accelerate, memory: 1Ti}}"
    assert variant("pod", training=pod) == (base_train, base_elicit)
    assert variant("interval", training="{save_every_steps: 7}")[0] == base_train
    assert variant("concurrency", elicitation="{concurrency: 4, timeout_s: 5, max_retries: 1, batch_commit: 8}") == (
        base_train,
        base_elicit,
    )

    lr_train, _ = variant("lr", training="{learning_rate: 0.001}")
    assert lr_train[0] != base_train[0] and lr_train[1] != base_train[1]
    _, model_elicit = variant("model", elicitation="{model: gpt-4o-mini}")
    assert model_elicit[0] != base_elicit[0] and model_elicit[1] != base_elicit[1]


def _pools(profile_name: str) -> dict[str, str | None]:
    defs = build_definitions(load_profile(profile_name))
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    return {key.to_user_string(): defs.resolve_assets_def(key).node_def.pool for key in keys}


@pytest.mark.parametrize("name", ["tiny", "slurm", "cluster"])
def test_who_writes_duckdb_and_which_pool_it_holds(name):
    """docs/deployment.md, "Who writes": steps whose work is DuckDB hold the one-slot `duckdb`
    pool; steps that wait on a training or evaluation hold `train` where that work runs on
    this machine, and no pool where a cluster's scheduler decides (so their jobs queue)."""
    pools = _pools(name)
    duckdb_steps = {k for k in pools if k.startswith(("instructions_", "uncertainty_", "training_set_"))}
    duckdb_steps |= {"eval_sets", "eval_scores", "comparison_report"}
    assert {k: pools[k] for k in duckdb_steps} == dict.fromkeys(duckdb_steps, "duckdb")
    compute = {k for k in pools if k.startswith(("lora_", "eval_")) and k not in duckdb_steps} | {"token_clustering"}
    local = name == "tiny"
    assert {k: pools[k] for k in compute} == dict.fromkeys(compute, "train" if local else None)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_importing_the_definitions_writes_nothing_and_sweeps_nothing(tmp_path):
    """`import assets.definitions` (every dagster command, the webserver, every run worker) builds
    the graph and nothing else: no file under DAGSTER_HOME or the state folder appears or changes,
    and a run left STARTED by a killed process stays as it is (the sweep is a run's first act,
    assets/runs.py, not the import's)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        dead = started_run(instance, gone.pid)
    profile = write_profile(
        tmp_path, small_profile(tmp_path, "no_side_effect", pretrain_steps=1, corpus_samples=10, training={})
    )
    before = _files(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(home), "UAL_PROFILE": str(profile)}
    probe = "import assets.definitions as d; print(len(d.defs.resolve_asset_graph().get_all_asset_keys()))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) > 10  # the graph was built
    assert _files(tmp_path) == before
    assert not (tmp_path / "state").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.STARTED
