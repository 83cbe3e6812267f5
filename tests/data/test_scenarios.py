"""Scenario selection: sizes, ratios, determinism, no replacement, shortfall."""

import random

from ual_dagster.config.data import ScenarioConfig
from ual_dagster.data import draw_scenario, select_scenario
from ual_dagster.data.scenarios import scenario_shares


def ids(prefix, n):
    return [f"{prefix}{i:05d}" for i in range(n)]


CANDIDATES = {"open": ids("o", 500), "exact": ids("e", 500), "maths": ids("m", 500)}


def test_shares_use_largest_remainder_and_sum_to_size():
    assert scenario_shares(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}  # tie: first name
    assert scenario_shares(7, {"a": 0.5, "b": 0.3, "c": 0.2}) == {"a": 4, "b": 2, "c": 1}  # 3.5 2.1 1.4
    assert scenario_shares(5, {"a": 2.0, "b": 0.0}) == {"a": 5, "b": 0}


def test_size_ratio_and_no_replacement():
    cfg = ScenarioConfig(size=301, weights={"open": 2.0, "exact": 1.0})
    pairs = select_scenario(cfg, CANDIDATES)
    assert len(pairs) == 301 == len(set(pairs))
    per = {d: sum(1 for p, _ in pairs if p == d) for d in ("open", "exact", "maths")}
    assert per == {"open": 201, "exact": 100, "maths": 0}  # 200.67 / 100.33
    assert all(sid in CANDIDATES[d] for d, sid in pairs)


def test_deterministic_and_independent_of_input_order():
    cfg = ScenarioConfig(size=200, weights={"open": 1.0, "exact": 1.0}, seed=7)
    shuffled = {d: random.Random(1).sample(v, len(v)) + v[:10] for d, v in CANDIDATES.items()}  # reordered, repeats
    assert select_scenario(cfg, CANDIDATES) == select_scenario(cfg, shuffled)
    other_seed = ScenarioConfig(size=200, weights={"open": 1.0, "exact": 1.0}, seed=8)
    assert select_scenario(other_seed, CANDIDATES) != select_scenario(cfg, CANDIDATES)


def test_one_dataset_changing_leaves_the_others_draw_alone():
    cfg = ScenarioConfig(size=100, weights={"open": 1.0, "exact": 1.0})
    before = select_scenario(cfg, CANDIDATES)
    after = select_scenario(cfg, {**CANDIDATES, "exact": ids("e", 400)})
    assert [p for p in before if p[0] == "open"] == [p for p in after if p[0] == "open"]


def test_shortfall_takes_all_and_says_so():
    cfg = ScenarioConfig(size=100, weights={"open": 1.0, "exact": 1.0})
    draw = draw_scenario(cfg, {"open": ids("o", 20), "exact": ids("e", 500)})
    assert draw.requested == {"exact": 50, "open": 50}
    assert draw.drawn == {"exact": 50, "open": 20} and draw.shortfall == {"open": 30}
    assert len(draw.pairs) == 70
    logged = []
    select_scenario(cfg, {"exact": ids("e", 500)}, log=logged.append)  # 'open' has no candidates at all
    assert "short" in logged[0] and "'open': 50" in logged[0]


def test_an_edited_sample_changes_at_most_one_pick():
    cfg = ScenarioConfig(size=100, weights={"open": 1.0})
    before = set(select_scenario(cfg, CANDIDATES))
    picked = sorted(sid for _, sid in before)
    for old in (picked[0], next(s for s in CANDIDATES["open"] if ("open", s) not in before)):
        edited = {"open": [s for s in CANDIDATES["open"] if s != old] + ["edited-id"]}
        after = set(select_scenario(cfg, edited))
        assert len(after) == 100
        assert len(before - after) <= 1 and len(after - before) <= 1
        if ("open", old) not in before:  # editing an unpicked row changes a pick only if the new id ranks in
            assert (before - after) == set() or (after - before) == {("open", "edited-id")}
