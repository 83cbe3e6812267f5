"""The mix the profile says, or an error: `extends` replaces a scenario's weights (and every
other map that defines a set), `validate` prints each scenario's resolved mix with the row
counts it knows, and a scenario short of rows fails (at validate, or at its training-set
asset when the counts are not known before loading) unless it says `allow_short: true`."""

from pathlib import Path

import dagster as dg
import yaml

from assets.definitions import build_definitions
from ual_dagster.__main__ import main
from ual_dagster.config import load_profile
from ual_dagster.data.testbed import generate_testbed


def child(tmp_path: Path, text: str, name: str = "child.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"extends: tiny\nname: child\nstorage: {{state_dir: {tmp_path / 'state'}}}\n" + text)
    return path


def test_a_childs_weights_replace_the_inherited_ones(tmp_path):
    p = load_profile(str(child(tmp_path, "scenarios:\n  high_entropy: {size: 200, weights: {testbed_exact: 1.0}}\n")))
    assert p.scenarios["high_entropy"].weights == {"testbed_exact": 1.0}  # not {testbed_open: 1, testbed_exact: 1}
    assert p.scenarios["high_entropy"].size == 200
    # the other scenarios are inherited unchanged; an entry the child names merges key by key
    tiny = load_profile("tiny")
    assert p.scenarios["mixed"] == tiny.scenarios["mixed"]
    q = load_profile(str(child(tmp_path, "scenarios:\n  mixed: {seed: 3}\n", "seed.yaml")))
    assert q.scenarios["mixed"].weights == tiny.scenarios["mixed"].weights and q.scenarios["mixed"].seed == 3


def test_a_child_removes_an_inherited_entry_by_setting_it_to_null(tmp_path):
    text = "scenarios: {high_entropy: null, mixed: null}\nmethods: {ls: null}\n"
    p = load_profile(str(child(tmp_path, text)))
    assert list(p.scenarios) == ["low_entropy"] and list(p.methods) == ["sft", "ual"]
    keys = {k.to_user_string() for k in build_definitions(p).resolve_asset_graph().get_all_asset_keys()}
    assert {k for k in keys if k.startswith("lora_")} == {"lora_low_entropy_sft", "lora_low_entropy_ual"}


def test_every_map_that_defines_a_set_is_replaced_not_merged(tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        f"extends: tiny\nname: parent\nstorage: {{state_dir: {tmp_path / 'state'}}}\n"
        "datasets:\n  notes: {source: file, entropy: high, path: /x/notes.jsonl,\n"
        "          columns: {instruction: q, input: ctx, output: a}}\n"
        "methods:\n  ual: {kind: ual, training: {learning_rate: 0.01, epochs: 3}}\n"
    )
    kid = tmp_path / "kid.yaml"
    kid.write_text(
        "extends: parent.yaml\nname: kid\n"
        "datasets:\n  notes: {columns: {instruction: prompt, output: completion}}\n"
        "methods:\n  ual: {training: {epochs: 1}}\n"
    )
    p = load_profile(str(kid))
    assert p.datasets["notes"].columns == {"instruction": "prompt", "output": "completion"}  # no stale 'input'
    assert p.datasets["notes"].path == "/x/notes.jsonl"  # the entry itself still merges
    assert p.methods["ual"].training == {"epochs": 1}
    assert p.methods["ual"].kind == "ual" and set(p.datasets) == {"testbed_exact", "testbed_open", "notes"}


def test_validate_prints_each_scenarios_mix_with_its_row_counts(tmp_path, capsys):
    path = child(tmp_path, "scenarios:\n  mixed: {size: 400, weights: {testbed_open: 3, testbed_exact: 1}}\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    n_open = sum(
        s.split == "train" for s in generate_testbed(load_profile(str(path)).datasets["testbed_open"].testbed, "o")
    )
    mixed = out[out.index("mixed: 400 rows") :].splitlines()
    assert "testbed_exact" in mixed[1] and "25.0%" in mixed[1] and "100 rows" in mixed[1]
    assert "testbed_open" in mixed[2] and "75.0%" in mixed[2] and "300 rows" in mixed[2]
    assert f"of {n_open} train rows (from the profile)" in mixed[2]


def test_a_scenario_short_of_rows_fails_validate_naming_the_data_set_and_both_counts(tmp_path, capsys):
    text = "scenarios:\n  high_entropy: {size: 20000, weights: {testbed_open: 1.0}}\n"
    path = child(tmp_path, text)
    n_open = sum(
        s.split == "train" for s in generate_testbed(load_profile(str(path)).datasets["testbed_open"].testbed, "o")
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"scenario 'high_entropy' asks 20000 rows of data set 'testbed_open', which has {n_open} train rows" in err
    assert "allow_short" in err and "Traceback" not in err
    # explicitly allowed: valid, and the summary says it is short
    allowed = child(tmp_path, text.replace("weights:", "allow_short: true, weights:"), "allowed.yaml")
    assert main(["validate", str(allowed)]) == 0
    assert f"SHORT by {20000 - n_open}" in capsys.readouterr().out


def materialize(profile: Path, root: Path, keys: list[str]) -> dg.ExecuteInProcessResult:
    defs = build_definitions(load_profile(str(profile)))
    (root / "home").mkdir(exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(root / "home"))
    selection = [dg.AssetKey.from_user_string(k) for k in keys]
    return dg.materialize(
        list(defs.assets), resources=defs.resources, instance=instance, selection=selection, raise_on_error=False
    )


def small(tmp_path: Path, allow_short: bool) -> Path:
    data = {
        "extends": "tiny",
        "name": "short",
        "storage": {"state_dir": str(tmp_path / "state")},
        # `limit` hides the count from the profile: only loading tells (validate cannot)
        "datasets": {"testbed_open": {"limit": 30, "testbed": {"n_samples": 60}}},
        "scenarios": {"s": {"size": 50, "weights": {"testbed_open": 1.0}, "allow_short": allow_short}},
        "elicitation": {"backend": "oracle"},
    }
    path = tmp_path / f"short_{allow_short}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_short_training_set_fails_its_asset_when_validate_could_not_know(tmp_path, capsys):
    path = small(tmp_path, allow_short=False)
    assert main(["validate", str(path)]) == 0  # counts not known before loading
    assert "train rows not known yet" in capsys.readouterr().out
    result = materialize(path, tmp_path, ["instructions_testbed_open", "uncertainty_testbed_open", "training_set_s"])
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "training_set_s"
    description = failure.step_failure_data.user_failure_data.description
    n_train = int(description.split("which has ")[1].split()[0])
    assert n_train < 50
    assert description.startswith(
        f"scenario 's' asks 50 rows of data set 'testbed_open', which has {n_train} train rows"
    )
    assert "\n" not in description
    # after loading, validate knows the count and fails too
    assert main(["validate", str(path)]) == 2
    assert f"which has {n_train} train rows (as loaded)" in capsys.readouterr().err


def test_allow_short_trains_on_what_there_is(tmp_path):
    path = small(tmp_path, allow_short=True)
    result = materialize(path, tmp_path, ["instructions_testbed_open", "uncertainty_testbed_open", "training_set_s"])
    assert result.success
    (mat,) = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("training_set_s")]
    meta = mat.materialization.metadata
    assert 0 < meta["rows"].value < 50 and meta["shortfall"].value == {"testbed_open": 50 - meta["rows"].value}
