"""Elicit only what training uses (issue 10, item 7): rows are selected before any score exists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ual_dagster.config import Profile, load_profile
from ual_dagster.config.data import ScenarioConfig
from ual_dagster.data import build_instruction_set, draw_scenario
from ual_dagster.data.selection import elicitation_targets, take_scored, targets_for_dataset
from ual_dagster.data.store import sample_ids_by_split
from ual_dagster.elicitation import elicit_dataset
from ual_dagster.storage import DuckDBStore
from ual_dagster.train.training_sets import build_training_set, read_training_set

ROOT = Path(__file__).resolve().parents[2]


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_union_of_nested_scenarios_is_the_largest_share_plus_reserve():
    train = {"open": ids("o", 5000), "exact": ids("e", 5000)}
    scenarios = {
        "high": ScenarioConfig(size=1000, weights={"open": 1.0}),
        "low": ScenarioConfig(size=1000, weights={"exact": 1.0}),
        "mixed": ScenarioConfig(size=1000, weights={"open": 0.5, "exact": 0.5}),
    }
    targets = elicitation_targets(scenarios, train, reserve=0.02)
    # the mixed scenario's 500 of each are the head of the same ranking, so nothing is added
    assert {d: len(t) for d, t in targets.items()} == {"open": 1020, "exact": 1020}
    for name, cfg in scenarios.items():
        draw = take_scored(cfg, train, set(targets["open"]) | set(targets["exact"]))
        assert not draw.shortfall, name
        assert {s for _, s in draw.pairs} <= set(targets["open"]) | set(targets["exact"])


def test_rows_do_not_depend_on_score_values_and_match_the_old_draw_when_all_scored():
    cfg = ScenarioConfig(size=300, weights={"a": 1.0, "b": 2.0}, seed=3)
    train = {"a": ids("a", 1000), "b": ids("b", 1000)}
    every = set(train["a"]) | set(train["b"])
    # scores are a set/dict of ids; their values never enter the choice
    low = {s: 0.0 for s in every}
    high = {s: 1.0 for s in every}
    assert take_scored(cfg, train, low).pairs == take_scored(cfg, train, high).pairs
    # with every train row scored, the historic draw over scored candidates is reproduced
    assert take_scored(cfg, train, every).pairs == draw_scenario(cfg, train).pairs


def test_reserve_replaces_unparseable_rows():
    cfg = ScenarioConfig(size=200, weights={"a": 1.0})
    train = {"a": ids("a", 2000)}
    window = elicitation_targets({"s": cfg}, train, reserve=0.05)["a"]
    assert len(window) == 210
    ranked_head = take_scored(cfg, train, set(window)).pairs
    failed = {s for _, s in ranked_head[:7]}  # 7 answers unparseable: fewer than the 10 in reserve
    draw = take_scored(cfg, train, set(window) - failed)
    assert draw.drawn == {"a": 200} and not draw.shortfall
    assert {s for _, s in draw.pairs} <= set(window) - failed


def _profile(tmp_path: Path) -> Profile:
    return Profile.model_validate(
        {
            "name": "sel",
            "storage": {"state_dir": str(tmp_path / "state")},
            "datasets": {
                "exact": {
                    "source": "testbed",
                    "entropy": "low",
                    "testbed": {"kind": "single_answer", "n_samples": 400, "heldout_fraction": 0.1},
                },
            },
            "scenarios": {
                "low": {"size": 50, "weights": {"exact": 1.0}},
                "small": {"size": 20, "weights": {"exact": 1.0}},
            },
            "elicitation": {"backend": "oracle", "selection_reserve": 0.1},
            "base_model": {"source": "build_tiny"},
            "methods": {"sft": {"kind": "sft"}},
        }
    )


def test_elicitation_asks_only_for_the_selected_rows_and_training_sets_join_them(tmp_path):
    profile = _profile(tmp_path)
    store = DuckDBStore(tmp_path / "ual.duckdb")
    build_instruction_set("exact", profile.datasets["exact"], store)
    targets = targets_for_dataset(profile, "exact", store)
    assert len(targets) == 55  # the largest share (50) plus 10% reserve; the 20-row scenario nests in it

    result = elicit_dataset("exact", profile.elicitation, store, only=targets)
    assert result.metadata["to_elicit"] == 55 and result.metadata["samples"] == 55
    assert result.metadata["coverage_ok"]
    with store.connect(read_only=True) as con:
        scored = {r[0] for r in con.execute("SELECT sample_id FROM uncertainty").fetchall()}
        n_train = con.execute("SELECT count(*) FROM samples WHERE split = 'train'").fetchone()[0]
    assert scored == set(targets) and n_train > 300  # 360 train rows, 55 paid for

    build_training_set("low", profile.scenarios["low"], profile, store, {})
    rows = read_training_set(store, "low")
    assert len(rows) == 50 and set(rows["sample_id"]) <= set(targets)


def test_plan_paper_elicits_at_most_105_percent_of_the_rows_used():
    out = subprocess.run(
        [sys.executable, "-m", "ual_dagster", "plan", "paper", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    plan = json.loads(out.stdout)
    for key in (
        "elicitation_calls",
        "cached",
        "estimated_cost_usd",
        "estimated_cost_usd_batch",
        "training_rows",
        "train_runs",
        "eval_runs",
    ):
        assert key in plan
    assert 0 < plan["elicitation_calls"] <= 1.05 * plan["rows_used"]
    profile = load_profile("paper")
    assert plan["rows_used"] == 40000  # 20k alpaca + 20k MetaMathQA: the mixed scenario nests in them
    n_variants = len(profile.scenarios) * len(profile.methods) * len(profile.experiment.seeds)
    assert plan["train_runs"] == plan["eval_runs"] == n_variants
    assert (
        plan["estimated_cost_usd_batch"] == round(plan["estimated_cost_usd"] / 2, 2)
        or abs(plan["estimated_cost_usd_batch"] * 2 - plan["estimated_cost_usd"]) <= 0.02
    )


def test_a_data_set_no_scenario_uses_is_elicited_in_full_and_passes_coverage(tmp_path):
    from ual_dagster.elicitation import dataset_checks

    profile = _profile(tmp_path)
    store = DuckDBStore(tmp_path / "ual.duckdb")
    build_instruction_set("unused", profile.datasets["exact"], store)  # loaded, but in no scenario
    targets = targets_for_dataset(
        profile.model_copy(update={"datasets": {**profile.datasets, "unused": profile.datasets["exact"]}}),
        "unused",
        store,
    )
    assert targets is None  # every row of elicit_splits: no silent zero (issue 21)
    result = elicit_dataset("unused", profile.elicitation, store, only=targets)
    n_train = len(sample_ids_by_split(store, "unused")["train"])
    assert result.metadata["to_elicit"] == n_train > 0
    coverage = {c.name: c for c in dataset_checks(store, "unused", profile.elicitation, only=targets)}
    assert coverage["uncertainty_coverage"].passed
