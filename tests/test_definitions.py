"""The code location loads for every bundled profile, offline, with the graph the profile implies."""

import dagster as dg
import pytest

from assets.definitions import build_definitions
from ual_dagster.config import bundled_profiles, load_profile


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
