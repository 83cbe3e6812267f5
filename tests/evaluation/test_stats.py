"""Paired statistics against hand-computed cases and independent references."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ual_dagster.evaluation.comparisons import compute_comparisons, contrasts, paired_matrix
from ual_dagster.evaluation.stats import holm, paired_bootstrap


def test_holm_on_known_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.2]), [0.2])


def test_constant_difference_has_a_degenerate_interval():
    d = np.full((3, 40), 0.25)
    est = paired_bootstrap(d, iters=500)
    assert est.estimate == pytest.approx(0.25)
    assert est.ci_low == pytest.approx(0.25) and est.ci_high == pytest.approx(0.25)
    assert est.p_value == pytest.approx(2 / 501)  # every resample is above zero
    assert (est.n_seeds, est.n_items) == (3, 40)


def test_one_seed_matches_scipy_percentile_bootstrap_and_the_normal_interval():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=400)
    est = paired_bootstrap(d, iters=8000, seed=3)
    ref = sps.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=8000, method="percentile", random_state=4)
    assert est.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert est.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.02)
    half = 1.959964 * d.std(ddof=1) / np.sqrt(d.size)  # the large-sample normal interval
    assert est.ci_low == pytest.approx(d.mean() - half, abs=0.02)
    assert est.ci_high == pytest.approx(d.mean() + half, abs=0.02)
    z_p = 2 * sps.norm.sf(abs(d.mean()) / (d.std(ddof=1) / np.sqrt(d.size)))
    assert est.p_value < 0.01 and z_p < 0.01


def test_seed_variation_widens_the_interval():
    """Items identical across seeds but seeds shifted: the item-only interval is narrow,
    the hierarchical one includes the spread between seeds."""
    rng = np.random.default_rng(0)
    items = rng.normal(0.0, 0.1, size=200)
    shifts = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    d = shifts[:, None] + items[None, :] + 0.2
    est = paired_bootstrap(d, iters=4000)
    assert est.estimate == pytest.approx(d.mean())
    assert est.ci_high - est.ci_low > 0.8  # seed spread sd 0.79 / sqrt(5) -> ~ +-0.6
    assert est.p_value > 0.05
    single = paired_bootstrap(d[2:3], iters=4000)
    assert single.ci_high - single.ci_low < 0.05


def test_comparisons_pair_items_and_seeds_and_adjust_per_scenario():
    rows = []
    for seed in (0, 1):
        for i in range(30):
            base = float(i % 2)
            for method, delta in (("sft", 0.0), ("ls_matched", 0.0), ("ual", 1.0)):
                rows.append(("mixed", method, seed, "tb", f"item{i}", "logp", base + delta))
    # an item only the baseline has must not enter the pairing
    rows.append(("mixed", "sft", 0, "tb", "extra", "logp", 100.0))
    items = pd.DataFrame(rows, columns=["scenario", "method", "seed", "benchmark", "item_id", "metric", "value"])
    assert paired_matrix(items, "ual", "sft").shape == (2, 30)
    assert contrasts(["sft", "ls_matched", "ual"], ["sft", "ls_matched"]) == [
        ("ls_matched", "sft"),
        ("ual", "sft"),
        ("ual", "ls_matched"),
    ]
    cmp = compute_comparisons(items, ["sft", "ls_matched", "ual"], ["sft", "ls_matched"], iters=400)
    ual = cmp[(cmp["method"] == "ual") & (cmp["baseline"] == "sft")].iloc[0]
    assert ual["estimate"] == pytest.approx(1.0) and ual["n_items"] == 30 and ual["n_seeds"] == 2
    assert ual["ci_low"] == pytest.approx(1.0) and ual["ci_high"] == pytest.approx(1.0)
    np.testing.assert_allclose(cmp["p_adjusted"], holm(cmp["p_value"].to_numpy()))


def test_each_ual_point_is_compared_with_its_own_matched_ls_when_they_are_not_baselines():
    from ual_dagster.config.training import MethodConfig
    from ual_dagster.evaluation.comparisons import matched_contrasts

    methods = {
        "sft": MethodConfig(kind="sft"),
        "ual_a": MethodConfig(kind="ual", eps_max=0.1),
        "ual_b": MethodConfig(kind="ual", eps_max=0.4),
        "ls_a": MethodConfig(kind="ls", match="ual_a"),
        "ls_b": MethodConfig(kind="ls", match="ual_b"),
    }
    assert matched_contrasts(methods, ["sft"]) == [("ual_a", "ls_a"), ("ual_b", "ls_b")]
    # a matched LS that is a baseline is already paired with its UAL method: nothing extra
    assert matched_contrasts(methods, ["sft", "ls_a"]) == [("ual_b", "ls_b")]

    rows = []
    for i in range(20):
        for method, value in (("sft", 0.0), ("ual_a", 0.5), ("ual_b", 1.0), ("ls_a", 0.25), ("ls_b", 2.0)):
            rows.append(("high", method, 0, "tb", f"item{i}", "logp", value + (i % 3)))
    items = pd.DataFrame(rows, columns=["scenario", "method", "seed", "benchmark", "item_id", "metric", "value"])
    extra = matched_contrasts(methods, ["sft"])
    cmp = compute_comparisons(items, list(methods), ["sft"], extra=extra, iters=200)
    pairs = list(zip(cmp["method"], cmp["baseline"]))
    assert pairs.count(("ual_a", "ls_a")) == 1 and pairs.count(("ual_b", "ls_b")) == 1
    assert ("ual_a", "ls_b") not in pairs and ("ls_a", "ls_b") not in pairs
    est = dict(zip(pairs, cmp["estimate"]))
    assert est[("ual_a", "ls_a")] == pytest.approx(0.25) and est[("ual_b", "ls_b")] == pytest.approx(-1.0)
    # Holm runs over the scenario's contrasts, the matched pairs included
    np.testing.assert_allclose(cmp["p_adjusted"], holm(cmp["p_value"].to_numpy()))
