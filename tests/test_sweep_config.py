"""experiment.sweep: the grid's expansion into ordinary methods, their names, the errors, and
`validate`'s listing of it."""

from __future__ import annotations

import pytest
import yaml

from ual_dagster.__main__ import main
from ual_dagster.config import load_profile
from ual_dagster.config.loader import ProfileError
from ual_dagster.config.sweep import expand_methods, number_token, sweep_points
from ual_dagster.config.training import MethodConfig
from ual_dagster.train.versioning import checkpoint_fingerprint

UAL = {"kind": "ual", "eps_min": 0.0, "eps_max": 0.2, "mapping": "linear"}
METHODS = {"sft": {"kind": "sft"}, "ual": UAL, "ls_matched": {"kind": "ls", "match": "ual"}}
GRID = {"ual": {"eps_max": [0.05, 0.1, 0.2, 0.4], "mapping": ["linear", "sqrt"]}, "ls_matched": {"follow": "ual"}}


def _write(tmp_path, methods=METHODS, **experiment):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"extends": "tiny", "name": "t", "methods": methods, "experiment": experiment}))
    return path


def _load(tmp_path, methods=METHODS, **experiment):
    return load_profile(str(_write(tmp_path, methods, **experiment)))


@pytest.mark.parametrize(
    "value, token", [(0.1, "0p1"), (0.05, "0p05"), (0.4, "0p4"), (0, "0"), (0.0, "0"), (3, "3"), (1e-5, "0p00001")]
)
def test_numbers_in_names_write_p_for_the_decimal_point(value, token):
    assert number_token(value) == token


def test_the_bundled_sweep_profile_expands_into_the_grid_and_one_matched_ls_per_point():
    profile = load_profile("sweep")
    ual = [f"ual_e{e}_{m}" for e in ("0p05", "0p1", "0p2", "0p4") for m in ("linear", "sqrt")]
    ls = [n.replace("ual_", "ls_matched_") for n in ual]
    assert list(profile.methods) == ["sft", *ual, *ls]  # the templates are replaced by their points
    assert profile.methods["ual_e0p1_sqrt"] == MethodConfig(kind="ual", eps_min=0.0, eps_max=0.1, mapping="sqrt")
    assert profile.methods["ls_matched_e0p4_linear"] == MethodConfig(kind="ls", match="ual_e0p4_linear")
    points = {p.name: p for p in profile.sweep_points()}
    assert points["ls_matched_e0p1_sqrt"].values == {"eps_max": 0.1, "mapping": "sqrt"}
    assert points["ls_matched_e0p1_sqrt"].family == "ls_matched" and points["ls_matched_e0p1_sqrt"].follows
    assert profile.baselines() == ["sft"]
    assert list(profile.scenarios) == ["high_entropy"] and len(profile.experiment.seeds) <= 3


def test_a_point_is_its_template_with_the_fields_replaced_so_its_checkpoint_fingerprint_is_the_same():
    study, sweep = load_profile("study"), load_profile("sweep")
    # study's `ual` (eps 0-0.2, linear) is the sweep's ual_e0p2_linear, field for field
    assert sweep.methods["ual_e0p2_linear"] == study.methods["ual"]
    train = sweep.training
    assert checkpoint_fingerprint("b", "e", train, sweep.methods["ual_e0p2_linear"]) == checkpoint_fingerprint(
        "b", "e", train, study.methods["ual"]
    )


def test_adding_a_grid_value_leaves_every_other_point_as_it_was():
    small = expand_methods(METHODS, {"ual": {"eps_max": [0.1]}, "ls_matched": {"follow": "ual"}})
    big = expand_methods(METHODS, {"ual": {"eps_max": [0.1, 0.3]}, "ls_matched": {"follow": "ual"}})
    assert set(small) == {"sft", "ual_e0p1", "ls_matched_e0p1"}
    assert set(big) == set(small) | {"ual_e0p3", "ls_matched_e0p3"}
    assert all(big[name] == small[name] for name in small)


def test_name_tokens_follow_the_method_fields_order_not_the_sweeps():
    a = [p.name for p in sweep_points({"ual": {"mapping": ["sqrt"], "eps_max": [0.1], "eps_min": [0.02]}})]
    assert a == ["ual_emin0p02_e0p1_sqrt"]
    assert [p.name for p in sweep_points({"ls": {"epsilon": [0.05, 0.15]}})] == ["ls_eps0p05", "ls_eps0p15"]


def test_a_follower_that_does_not_match_gets_the_points_values(tmp_path):
    methods = {**METHODS, "ual_shuffled": {**UAL, "uncertainty": "shuffled"}}
    profile = _load(
        tmp_path,
        methods,
        sweep={"ual": {"eps_max": [0.1]}, "ual_shuffled": {"follow": "ual"}, "ls_matched": {"follow": "ual"}},
    )
    assert profile.methods["ual_shuffled_e0p1"] == MethodConfig(kind="ual", eps_max=0.1, uncertainty="shuffled")


def test_without_a_sweep_nothing_changes_and_the_sweep_is_in_no_dump():
    tiny = load_profile("tiny")
    assert tiny.sweep_points() == [] and list(tiny.methods) == ["sft", "ls", "ual"]
    sweep = load_profile("sweep")
    assert "sweep" not in sweep.experiment.model_dump(mode="json")  # its effect is the methods it made
    # the bundled sweep differs from study's experiment only where its file says so
    assert sweep.experiment.model_dump() == load_profile("study").experiment.model_dump() | {
        "seeds": [0, 1, 2],
        "baselines": ["sft"],
        "bootstrap_iters": 20000,
    }


@pytest.mark.parametrize(
    "experiment, methods, message",
    [
        ({"sweep": {"uall": {"eps_max": [0.1]}}}, METHODS, "experiment.sweep.uall names no method of the profile"),
        ({"sweep": {"ual": {"eps_maxx": [0.1]}}}, METHODS, "experiment.sweep.ual.eps_maxx: not a sweepable"),
        ({"sweep": {"ual": {"kind": ["ls"]}}}, METHODS, "experiment.sweep.ual.kind: not a sweepable"),
        ({"sweep": {"ual": {"eps_max": []}}}, METHODS, "experiment.sweep.ual.eps_max must be a non-empty list"),
        ({"sweep": {"ual": {"eps_max": 0.1}}}, METHODS, "experiment.sweep.ual.eps_max must be a non-empty list"),
        ({"sweep": {"ual": {"eps_max": [0.1, 0.1]}}}, METHODS, "lists a value twice"),
        ({"sweep": {"ual": {"mapping": ["cubic"]}}}, METHODS, "experiment.sweep.ual: the point {mapping: cubic}"),
        (
            {"sweep": {"ual": {"eps_max": [0.1, 1.2]}}},
            METHODS,
            "experiment.sweep.ual: the point {eps_max: 1.2} (method 'ual_e1p2') is not a valid method: eps_max",
        ),
        (
            {"sweep": {"ual": {"eps_max": [0.1]}}},
            {**METHODS, "ual_e0p1": UAL},
            "the generated method 'ual_e0p1' has the name of a method the profile already has",
        ),
        (
            {"sweep": {"ual": {"eps_max": [0.1]}}},
            METHODS,
            "methods.ls_matched.match names 'ual', which experiment.sweep",
        ),
        (
            {"sweep": {"ual": {"eps_max": [0.1]}, "ls_matched": {"follow": "ual"}}, "baselines": ["sft", "ls_matched"]},
            METHODS,
            "experiment.baselines names 'ls_matched', which experiment.sweep replaces",
        ),
        (
            {"sweep": {"ual": {"eps_max": [0.1]}, "ls_matched": {"follow": "sft"}}},
            METHODS,
            "experiment.sweep.ls_matched.follow names 'sft', which is not a grid entry",
        ),
        (
            {"sweep": {"ual": {"eps_max": [0.1]}, "sft": {"follow": "ual"}, "ls_matched": {"follow": "ual"}}},
            METHODS,
            "experiment.sweep.sft.follow: methods.sft neither has 'match: ual' nor is of the same kind",
        ),
    ],
)
def test_a_bad_sweep_fails_at_load_naming_the_profile_field(tmp_path, experiment, methods, message):
    with pytest.raises(ProfileError) as err:
        _load(tmp_path, methods, **experiment)
    assert message in str(err.value)
    assert str(tmp_path / "p.yaml") in str(err.value)


def test_validate_prints_one_line_per_generated_method_with_its_values(capsys):
    assert main(["validate", "sweep"]) == 0
    out = capsys.readouterr().out
    assert "sweep:     16 methods from experiment.sweep" in out
    lines = [line.split() for line in out.splitlines() if line.startswith(("    ual_", "    ls_matched_e"))]
    assert len(lines) == 16
    assert ["ual_e0p1_sqrt", "eps_max", "0.1,", "mapping", "sqrt"] in lines
    assert any(line[0] == "ls_matched_e0p4_linear" and line[-1] == "ual_e0p4_linear)" for line in lines)
    assert main(["validate", "sweep", "--json"]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["sweep"][0] == {
        "method": "ual_e0p05_linear",
        "family": "ual",
        "template": "ual",
        "values": {"eps_max": 0.05, "mapping": "linear"},
    }
