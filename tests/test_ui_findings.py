"""What the UI shows (issue 21, item 10), checked on the definitions and the metadata they write:
reused LoRA materialisations keep their checkpoint's pictures; no metadata entry lists file
paths; figures fit the preview; one significance mark (Holm) stated in the legend; identical
contrasts labelled; every asset names its profile; local elicitors read local; the README's
sensor table matches the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest
import yaml
from PIL import Image

from assets.common import plots_of
from assets.definitions import PROFILE_TAG, build_definitions
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR
from ual_dagster.elicitation.elicitor import elicitor_fingerprint, elicitor_label
from ual_dagster.evaluation import write_scores
from ual_dagster.evaluation.comparisons import compute_comparisons, write_comparisons
from ual_dagster.evaluation.report import (
    IDENTICAL_CELL,
    MAX_FIGURE_PX,
    plot_forest,
    plot_training_curves,
    plot_uncertainty,
    significant,
)
from ual_dagster.evaluation.scores import ScoreRow, read_items
from ual_dagster.storage import StatePaths
from ual_dagster.train.checkpoints import CheckpointPlan
from ual_dagster.train.records import RESULT_FILE

ROOT = Path(__file__).resolve().parents[1]


def test_a_reused_checkpoint_carries_the_figures_of_the_run_that_trained_it(tmp_path):
    out = tmp_path / "lora" / "fp"
    out.mkdir(parents=True)
    curve = [{"step": s, "loss": 3.0 - 0.5 * s, "nll": 2.9 - 0.5 * s} for s in (1, 2, 3)]
    eps = {"min": 0.0, "max": 0.2, "mean": 0.1, "histogram": {"0.00-0.05": 3, "0.15-0.20": 5}}
    (out / RESULT_FILE).write_text(json.dumps({"curve": curve, "eps_stats": eps}))
    plan = CheckpointPlan("mixed", "ual", 0, "fp", "base", out, [], None, True, manifest={"steps": 3})
    meta = plan.reuse_metadata()
    assert meta["loss_curve"] == {"1": 2.5, "2": 2.0, "3": 1.5} and meta["eps_histogram"] == eps
    # the lora asset names them <extra>_seed_<first seed>, which the shared result code draws
    drawn = plots_of({"loss_curve_seed_0": meta["loss_curve"], "eps_histogram_seed_0": meta["eps_histogram"]})
    assert set(drawn) == {"loss_curve_seed_0_plot", "eps_histogram_seed_0_plot"}


def _items(store, scenario: str, gains: dict[str, float]) -> None:
    class Item:
        def __init__(self, item_id, value):
            self.benchmark, self.item_id, self.metric, self.value = "testbed", item_id, "log_p", value

    for seed in (0, 1):
        for method, gain in gains.items():
            items = [Item(f"i{k}", -2.0 + 0.1 * (k % 5) + gain + 0.01 * seed) for k in range(20)]
            mean = sum(i.value for i in items) / len(items)
            row = ScoreRow("testbed", "log_p", mean, 0.05, 20)
            write_scores(
                store,
                scenario,
                method,
                f"ck{method}{seed}",
                f"ev{scenario}{method}{seed}",
                [row],
                seed=seed,
                items=items,
            )


@pytest.fixture()
def report_run(tmp_path):
    """comparison_report materialised alone over a store with scores and comparisons."""
    data = yaml.safe_load((BUNDLED_DIR / "study.yaml").read_text())
    data.pop("extends")
    tiny = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data = {**tiny, **data, "methods": {**tiny["methods"], **data["methods"]}}
    data["storage"] = {"state_dir": str(tmp_path / "state")}
    data["experiment"] = {"seeds": [0, 1], "baselines": ["sft"], "bootstrap_iters": 400}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = load_profile(str(path))
    store = StatePaths.for_profile(profile).store()
    # mixed: ual 0.5 better on every item; low_entropy: ual_oracle exactly as sft (u = 0 there)
    _items(store, "mixed", {"sft": 0.0, "ual": 0.5})
    _items(store, "low_entropy", {"sft": 0.0, "ual_oracle": 0.0})
    cmp = compute_comparisons(read_items(store), list(profile.methods), ["sft"], iters=400)
    write_comparisons(store, cmp, "v")
    store.record_version("eval_scores", "v")
    defs = build_definitions(profile)
    (tmp_path / "home").mkdir()
    result = dg.materialize(
        list(defs.assets),
        resources=defs.resources,
        instance=dg.DagsterInstance.local_temp(str(tmp_path / "home")),
        selection=[dg.AssetKey("comparison_report")],
    )
    (mat,) = result.get_asset_materialization_events()
    return mat.materialization.metadata


def test_the_report_has_no_path_lists_and_points_to_its_pictures(report_run):
    meta = report_run
    for name, value in meta.items():
        raw = value.value if hasattr(value, "value") else value
        if isinstance(raw, list):
            assert not any(isinstance(x, str) and x.startswith("/") for x in raw), name
    assert "plots" not in meta and "preview" in meta
    assert "`preview`" in meta["figures"].value


def test_one_significance_mark_and_identical_contrasts_are_labelled(report_run):
    text = report_run["preview"].value
    assert (
        "One significance mark throughout: **bold** in the tables and red in the forest plots mean a Holm-adjusted p < 0.05"
        in text
    )
    assert re.search(r"\| log_p \| ual - sft \| \*\*\+0\.5 \[\+0\.5, \+0\.5\]\*\* \|", text)
    assert f"| log_p | ual_oracle - sft | {IDENTICAL_CELL} |" in text
    assert "+0 [+0, +0]" not in text


def test_an_interval_that_excludes_zero_is_not_marked_unless_holm_says_so(tmp_path):
    loose = SimpleNamespace(estimate=0.2, ci_low=0.05, ci_high=0.4, p_adjusted=0.3)
    held = SimpleNamespace(estimate=0.2, ci_low=0.05, ci_high=0.4, p_adjusted=0.01)
    assert not significant(loose, 0.95) and significant(held, 0.95)
    cmp = pd.DataFrame(
        [
            {"scenario": "s", "benchmark": "b", "metric": "m", "method": "ual", "baseline": base, **vars(r)}
            for base, r in (("sft", loose), ("ls", held))
        ]
    )
    colors = []
    import matplotlib.axes

    real = matplotlib.axes.Axes.errorbar

    def spy(self, *a, **k):
        colors.append(k.get("color"))
        return real(self, *a, **k)

    matplotlib.axes.Axes.errorbar = spy
    try:
        path = plot_forest(cmp, "s", {"ual": SimpleNamespace(kind="ual")}, tmp_path / "f.png")
    finally:
        matplotlib.axes.Axes.errorbar = real
    assert sorted(colors) == ["tab:blue", "tab:red"]  # ls (Holm 0.01) red; sft (Holm 0.3) blue though its CI excludes 0
    assert Image.open(path).size[0] <= MAX_FIGURE_PX


def test_every_figure_fits_the_preview(tmp_path):
    many = pd.DataFrame(
        [
            {"scenario": f"s{i}", "method": m, "seed": 0, "step": k, "loss": 1.0, "nll": 1.0}
            for i in range(5)
            for m in ("sft", "ual")
            for k in (1, 2)
        ]
    )
    assert Image.open(plot_training_curves(many, tmp_path / "c.png")).size[0] <= MAX_FIGURE_PX
    unc = pd.DataFrame({"dataset": [f"d{i}" for i in range(4) for _ in range(5)], "uncertainty": [0.1] * 20})
    methods = load_profile("tiny").methods
    assert Image.open(plot_uncertainty(unc, methods, tmp_path / "u.png")).size[0] <= MAX_FIGURE_PX


def test_every_asset_and_the_location_name_the_profile():
    defs = build_definitions(load_profile("study"))
    graph = defs.resolve_asset_graph()
    assert {graph.get(k).tags.get(PROFILE_TAG) for k in graph.get_all_asset_keys()} == {"study"}
    assert defs.metadata["ual/profile"].value == "study"
    assert defs.metadata["ual/profile_file"].value.endswith("study.yaml")


def test_local_elicitors_read_local_and_keep_their_fingerprint():
    tiny, paper = load_profile("tiny"), load_profile("paper")
    assert elicitor_label(tiny.elicitation).startswith("local:heuristic-v1")
    assert elicitor_label(paper.elicitation).startswith("openai:")
    assert elicitor_fingerprint(tiny.elicitation).startswith("openai:heuristic-v1:")  # the cache key as it was
    defs = build_definitions(tiny)
    spec = defs.resolve_assets_def("uncertainty_testbed_open").specs_by_key[dg.AssetKey("uncertainty_testbed_open")]
    assert "local:heuristic-v1" in spec.description and "openai" not in spec.kinds
    paper_spec = (
        build_definitions(paper)
        .resolve_assets_def("uncertainty_alpaca")
        .specs_by_key[dg.AssetKey("uncertainty_alpaca")]
    )
    assert "openai" in paper_spec.kinds


def test_the_readme_sensor_table_matches_the_code():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| schedule / sensor |")[1].split("\n\n")[0]
    named = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    tiny = build_definitions(load_profile("tiny"))
    in_code = {s.name for s in tiny.sensors} | {s.name for s in tiny.schedules}
    assert named == in_code
    status = {s.name: s.default_status for s in tiny.sensors}
    assert status["source_files"] == dg.DefaultSensorStatus.STOPPED  # tiny reads no local file
    assert status["dead_run_sweep"] == dg.DefaultSensorStatus.RUNNING
    shared = build_definitions(load_profile(str(ROOT / "examples/profiles/shared_data.yaml")))
    assert {s.name: s.default_status for s in shared.sensors}["source_files"] == dg.DefaultSensorStatus.RUNNING
