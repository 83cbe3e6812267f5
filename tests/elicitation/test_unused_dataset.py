"""No silent zero: a data set that no scenario uses is elicited in full (it was added to be
scored), and its asset's description says so."""

from pathlib import Path

import dagster as dg
import yaml

from assets.definitions import build_definitions
from ual_dagster.config import load_profile
from ual_dagster.data.store import sample_ids_by_split
from ual_dagster.plan import dataset_plan
from ual_dagster.storage import StatePaths


def test_a_data_set_no_scenario_uses_is_scored_in_full(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "extends": "tiny",
                "name": "extra",
                "storage": {"state_dir": str(tmp_path / "state")},
                "datasets": {
                    "extra": {
                        "source": "testbed",
                        "entropy": "low",
                        "testbed": {"kind": "single_answer", "n_samples": 40, "seed": 5},
                    }
                },
                "elicitation": {"backend": "oracle"},
            }
        )
    )
    profile = load_profile(str(path))
    defs = build_definitions(profile)
    spec = defs.resolve_assets_def("uncertainty_extra").specs_by_key[dg.AssetKey("uncertainty_extra")]
    assert "no scenario uses it, so it is scored in full" in spec.description
    used = defs.resolve_assets_def("uncertainty_testbed_open").specs_by_key[dg.AssetKey("uncertainty_testbed_open")]
    assert "that the scenarios use" in used.description
    (tmp_path / "home").mkdir()
    result = dg.materialize(
        list(defs.assets),
        resources=defs.resources,
        instance=dg.DagsterInstance.local_temp(str(tmp_path / "home")),
        selection=[dg.AssetKey("instructions_extra"), dg.AssetKey("uncertainty_extra")],
        raise_on_error=False,
    )
    assert result.success
    store = StatePaths.for_profile(profile).store()
    train = set(sample_ids_by_split(store, "extra")["train"])
    with store.connect(read_only=True) as con:
        scored = {r[0] for r in con.execute("SELECT sample_id FROM uncertainty WHERE status = 'ok'").fetchall()}
    assert len(train) == 40 and scored == train  # every train row, not 0
    # plan counts what the asset elicits: the loaded data set's every row of elicit_splits
    extra = dataset_plan(profile, "extra", store)
    assert (extra.rows_used, extra.to_elicit, extra.cached) == (40, 40, 40)


def test_validate_names_the_data_sets_no_scenario_uses(capsys):
    from ual_dagster.__main__ import main

    shared = Path(__file__).resolve().parents[2] / "examples" / "profiles" / "shared_data.yaml"
    assert main(["validate", str(shared)]) == 0
    assert "in no scenario (its uncertainty asset scores every row): alpaca, gsm8k" in capsys.readouterr().out
