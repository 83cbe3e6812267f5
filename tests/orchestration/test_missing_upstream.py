"""A selection whose upstream was never built fails its step with one line: how many upstream
assets are missing, the first few (in build order), and the command that builds them; no
internal table names."""

from pathlib import Path

import dagster as dg
import yaml

from assets.definitions import build_definitions
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR


def profile(tmp_path: Path) -> Path:
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data["storage"] = {"state_dir": str(tmp_path / "state")}
    data["orchestration"] = {"automation": False, "reelicit_schedule": False}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_eval_scores_alone_on_a_fresh_state_fails_with_one_line_naming_the_missing_cone(tmp_path):
    path = profile(tmp_path)
    defs = build_definitions(load_profile(str(path)))
    upstream = {
        k.to_user_string()
        for k in defs.resolve_asset_graph().get_all_asset_keys()
        if k.to_user_string() not in {"eval_scores", "comparison_report", "preflight"}
    }
    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    result = dg.materialize(
        list(defs.assets),
        resources=defs.resources,
        instance=instance,
        selection=[dg.AssetKey("eval_scores")],
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "\n" not in description and "asset_versions" not in description
    n = len(upstream)
    assert description == (
        f"eval_scores: {n} upstream assets never materialised (base_model, instructions_testbed_exact, "
        f"instructions_testbed_open and {n - 3} more); build them with: dagster asset materialize --select '*eval_scores'"
    )  # the first named are the roots of the missing cone (build order), preflight is never "missing"
