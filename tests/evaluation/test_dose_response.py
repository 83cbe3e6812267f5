"""The report's dose-response plot of a sweep (one point per grid value on each line, SFT at
zero) and its one-sentence caveat for a run with fewer than 3 seeds."""

from __future__ import annotations

import matplotlib.image
import pandas as pd
import pytest

from ual_dagster.config import load_profile
from ual_dagster.config.profile import Profile
from ual_dagster.evaluation.comparisons import compute_comparisons, write_comparisons
from ual_dagster.evaluation.report import (
    MAX_FIGURE_PX,
    comparison_report,
    dose_response_rows,
    plot_dose_response,
    seed_caveat,
    sft_baseline,
)
from ual_dagster.evaluation.scores import ScoreRow, read_items, write_scores
from ual_dagster.storage import DuckDBStore

GRID = [0.05, 0.1, 0.2, 0.4]


def _synthetic_comparisons(profile: Profile, scenario: str = "mixed") -> pd.DataFrame:
    """Every point against sft (estimate = -eps_max, sqrt a bit lower) and against another baseline."""
    rows = []
    for p in profile.sweep_points():
        est = -p.values["eps_max"] - (0.01 if p.values["mapping"] == "sqrt" else 0.0)
        for baseline in ("sft", "other"):
            rows.append(
                {
                    "scenario": scenario,
                    "benchmark": "testbed_likelihood",
                    "metric": "log_p_valid_set",
                    "method": p.name,
                    "baseline": baseline,
                    "estimate": est,
                    "ci_low": est - 0.05,
                    "ci_high": est + 0.05,
                }
            )
    return pd.DataFrame(rows)


def test_one_point_per_grid_value_on_each_family_and_mapping_line(tmp_path):
    profile = load_profile("sweep")
    assert sft_baseline(profile) == "sft"
    rows = dose_response_rows(_synthetic_comparisons(profile), "mixed", profile.sweep_points(), "sft")
    assert rows.attrs["dose_field"] == "eps_max"
    lines = list(dict.fromkeys(rows["line"]))
    assert lines == ["ual, linear", "ual, sqrt", "ls_matched, linear", "ls_matched, sqrt"]  # the template first
    for line, g in rows.groupby("line"):
        assert g["dose"].tolist() == GRID
    sqrt = rows[rows["line"] == "ual, sqrt"]
    assert sqrt["estimate"].tolist() == pytest.approx([-e - 0.01 for e in GRID])  # against sft, not 'other'
    assert sqrt["method"].tolist() == ["ual_e0p05_sqrt", "ual_e0p1_sqrt", "ual_e0p2_sqrt", "ual_e0p4_sqrt"]
    path = plot_dose_response(rows, "mixed", "sft", tmp_path / "dose_response_mixed.png")
    image = matplotlib.image.imread(path, format="png")
    assert image.shape[1] <= MAX_FIGURE_PX
    assert dose_response_rows(_synthetic_comparisons(profile), "high_entropy", profile.sweep_points(), "sft").empty


@pytest.mark.parametrize(
    "n, expected",
    [
        (1, "With one training run per method, these intervals cover the sampling of held-out items only"),
        (2, "With 2 training runs per method, these intervals cover the sampling of held-out items only"),
        (3, None),
    ],
)
def test_fewer_than_three_seeds_say_what_the_interval_covers(n, expected):
    sentence = seed_caveat(n)
    if expected is None:
        assert sentence is None
    else:
        assert sentence.startswith(expected) and "not training randomness" in sentence and "`study`" in sentence


def test_a_one_seed_sweep_report_has_the_caveat_and_links_its_dose_response_plot(tmp_path):
    base = load_profile("tiny").model_dump(mode="json")
    base["methods"] = {"sft": {"kind": "sft"}, "ual": {"kind": "ual"}}
    base["experiment"] = {"seeds": [0], "bootstrap_iters": 200, "sweep": {"ual": {"eps_max": [0.1, 0.3]}}}
    profile = Profile.model_validate(base)
    assert list(profile.methods) == ["sft", "ual_e0p1", "ual_e0p3"]
    store = DuckDBStore(tmp_path / "db.duckdb")

    class Item:
        def __init__(self, item_id, value):
            self.benchmark, self.item_id, self.metric, self.value = "testbed", item_id, "valid_logprob", value

    for method, delta in (("sft", 0.0), ("ual_e0p1", -0.1), ("ual_e0p3", -0.3)):
        items = [Item(f"i{k}", -2.0 + 0.1 * (k % 5) + delta) for k in range(10)]
        score = ScoreRow("testbed", "valid_logprob", sum(i.value for i in items) / 10, 0.05, 10)
        write_scores(store, "mixed", method, f"ck-{method}", f"ev-{method}", [score], seed=0, items=items)
    cmp = compute_comparisons(read_items(store), list(profile.methods), profile.baselines(), iters=200)
    write_comparisons(store, cmp, "v1")
    result = comparison_report(store, tmp_path / "report", profile)
    text = result.markdown.read_text()
    summary = text.split("## Summary")[1].split("## mixed")[0]
    assert seed_caveat(1) in summary
    assert "![dose-response mixed](dose_response_mixed.png)" in text
    assert (tmp_path / "report" / "dose_response_mixed.png") in result.plots
    assert (tmp_path / "report" / "dose_response_mixed.png").is_file()
    assert result.metadata["summary"][-1] == seed_caveat(1)


def test_bench_sweep_prints_each_points_difference_from_sft(tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location(
        "bench_sweep", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sweep.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    profile = load_profile("sweep")
    frame = _synthetic_comparisons(profile, "high_entropy").assign(
        p_value=0.5, p_adjusted=0.5, n_seeds=3, n_items=10, level=0.95
    )
    store = DuckDBStore(tmp_path / "db.duckdb")
    write_comparisons(store, frame, "v1")
    bench.print_dose_response(profile, SimpleNamespace(duckdb=store.path, state_dir=tmp_path))
    out = capsys.readouterr().out
    assert "high_entropy testbed_likelihood/log_p_valid_set (eps_max" in out
    assert "ual, sqrt               0.10  -0.110 [-0.160, -0.060]  Holm p 0.500" in out
    assert len([line for line in out.splitlines() if line.startswith("    ")]) == 16


def test_the_report_says_when_too_few_resamples_let_nothing_pass_holm():
    import pandas as pd

    from ual_dagster.evaluation.report import holm_floor_caveat

    cmp = pd.DataFrame({"scenario": ["high_entropy"] * 120 + ["mixed"] * 10})
    # 120 contrasts x 2/4001 = 0.060 >= 0.05: blocked; 10 x 2/4001 = 0.005: fine
    sentence = holm_floor_caveat(cmp, 4000, 0.95)
    assert sentence is not None
    assert "high_entropy (120 contrasts: 0.060)" in sentence and "mixed" not in sentence
    assert "at least 4800" in sentence
    # the suggested count really lowers the floor below alpha, and one fewer does not
    assert 120 * 2 / (4800 + 1) < 0.05 <= 120 * 2 / (4799 + 1)
    assert holm_floor_caveat(cmp, 4800, 0.95) is None
    assert holm_floor_caveat(cmp.iloc[120:], 4000, 0.95) is None
