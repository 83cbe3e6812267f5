from __future__ import annotations

import math

import pytest

from ual_dagster.config.training import MethodConfig
from ual_dagster.train.epsilon import epsilon_for, epsilons_for


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
