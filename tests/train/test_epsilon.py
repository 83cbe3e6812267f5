from __future__ import annotations

import math

import pytest

from ual_dagster.config.training import MethodConfig
from ual_dagster.train.epsilon import epsilon_for, epsilons_for, method_epsilons


def test_sft_and_ls_ignore_uncertainty():
    assert epsilons_for(MethodConfig(kind="sft"), [0.0, 0.7, None]) == [0.0, 0.0, 0.0]
    assert epsilons_for(MethodConfig(kind="ls", epsilon=0.15), [0.0, 1.0]) == [0.15, 0.15]


@pytest.mark.parametrize(
    "mapping,u,want",
    [
        ("linear", 0.25, 0.05 + 0.2 * 0.25),
        ("sqrt", 0.25, 0.05 + 0.2 * 0.5),
        ("square", 0.5, 0.05 + 0.2 * 0.25),
        ("linear", 1.7, 0.25),  # clipped to u = 1
        ("sqrt", -0.3, 0.05),  # clipped to u = 0
    ],
)
def test_ual_mapping(mapping, u, want):
    method = MethodConfig(kind="ual", eps_min=0.05, eps_max=0.25, mapping=mapping)
    assert math.isclose(epsilon_for(method, u), want, rel_tol=1e-12)


def test_nan_uncertainty_names_the_sample():
    method = MethodConfig(kind="ual")
    with pytest.raises(ValueError, match="sample 'row-42'"):
        epsilons_for(method, [0.1, float("nan")], ["row-1", "row-42"])
    with pytest.raises(ValueError, match="sample 3"):
        epsilon_for(method, None, 3)


CONTROLS = {
    "ual": MethodConfig(kind="ual", eps_min=0.0, eps_max=0.2),
    "ls_matched": MethodConfig(kind="ls", match="ual"),
    "shuffled": MethodConfig(kind="ual", eps_min=0.0, eps_max=0.2, uncertainty="shuffled", shuffle_seed=3),
    "oracle": MethodConfig(kind="ual", eps_min=0.0, eps_max=0.2, uncertainty="oracle"),
}


def test_matched_ls_takes_the_ual_methods_mean_eps_over_the_same_samples():
    u = [0.0, 0.5, 1.0, 0.25]
    eps = method_epsilons("ls_matched", CONTROLS, u)
    assert eps == pytest.approx([0.0875] * 4)  # mean of 0, 0.1, 0.2, 0.05


def test_shuffled_keeps_the_histogram_and_is_reproducible():
    u = [i / 19 for i in range(20)]
    ual = method_epsilons("ual", CONTROLS, u)
    shuffled = method_epsilons("shuffled", CONTROLS, u)
    assert sorted(shuffled) == pytest.approx(sorted(ual)) and shuffled != ual
    assert method_epsilons("shuffled", CONTROLS, u) == shuffled


def test_oracle_maps_intrinsic_uncertainty_and_names_a_sample_without_one():
    assert method_epsilons("oracle", CONTROLS, [0.9, 0.9], intrinsic=[0.0, 0.5]) == pytest.approx([0.0, 0.1])
    with pytest.raises(ValueError, match=r"'oracle'.*1 of 2 training samples.*'s2'"):
        method_epsilons("oracle", CONTROLS, [0.1, 0.2], intrinsic=[0.3, None], sample_ids=["s1", "s2"])


def test_a_profile_rejects_a_match_that_is_not_a_ual_method():
    from ual_dagster.config import load_profile
    from ual_dagster.config.profile import Profile

    data = load_profile("tiny").model_dump(mode="json")
    data["methods"]["bad"] = {"kind": "ls", "match": "sft"}
    with pytest.raises(ValueError, match="methods.bad.match names 'sft', which is not a ual method"):
        Profile.model_validate(data)


def test_a_profile_rejects_an_oracle_method_on_data_without_known_uncertainty():
    from ual_dagster.config import load_profile
    from ual_dagster.config.profile import Profile

    data = load_profile("examples/profiles/shared_data.yaml").model_dump(mode="json")
    data["scenarios"]["real"] = {"size": 10, "weights": {"alpaca": 1.0}}
    data["methods"]["ual_oracle"] = {"kind": "ual", "uncertainty": "oracle"}
    with pytest.raises(ValueError, match=r"\['ual_oracle'\] use uncertainty 'oracle', but data set\(s\) \['alpaca'\]"):
        Profile.model_validate(data)
