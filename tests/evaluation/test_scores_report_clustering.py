"""eval_scores storage, the comparison report, token clustering, and evaluate_checkpoint end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ual_dagster.config.evaluation import (
    AlpacaEvalConfig,
    AnswerLikelihoodConfig,
    ClusteringConfig,
    EvaluationConfig,
    GenerationConfig,
    LmEvalTaskConfig,
)
from ual_dagster.evaluation import evaluate_checkpoint, has_scores, load_eval_data, read_scores, write_scores
from ual_dagster.evaluation.clustering import cluster_checkpoint, cluster_quality
from ual_dagster.evaluation.report import comparison_report
from ual_dagster.evaluation.scores import ScoreRow
from ual_dagster.storage import DuckDBStore


def test_write_scores_replaces_rows_and_keeps_missing_stderr_null(tmp_path) -> None:
    store = DuckDBStore(tmp_path / "db.duckdb")
    rows = [
        ScoreRow("alpaca_eval", "win_rate", 40.0, 5.0, 10, {"n_unjudged": 1}),
        ScoreRow("gsm8k_local", "exact_match,strict-match", 0.25, "N/A", 4),
    ]
    write_scores(store, "mixed", "ual", "ck1", "ev1", rows)
    write_scores(store, "mixed", "sft", "ck2", "ev2", rows[:1])
    assert has_scores(store, "ev1") and not has_scores(store, "ev-other")
    write_scores(store, "mixed", "ual", "ck3", "ev3", rows[:1])  # replaces ual's two rows
    df = read_scores(store)
    assert sorted(zip(df.method, df.eval_fingerprint)) == [("sft", "ev2"), ("ual", "ev3")]
    assert not has_scores(store, "ev1")
    write_scores(store, "low", "ls", "ck4", "ev4", rows)
    df = read_scores(store)
    gsm = df[df.benchmark == "gsm8k_local"].iloc[0]
    assert math.isnan(gsm.stderr) and gsm.n == 4
    assert json.loads(df[df.method == "sft"].iloc[0].details) == {"n_unjudged": 1}


def _report_profile(**experiment):
    from ual_dagster.config import load_profile

    base = load_profile("tiny").model_dump(mode="json")
    base["methods"] = {
        "sft": {"kind": "sft"},
        "ls_matched": {"kind": "ls", "match": "ual"},
        "ual": {"kind": "ual"},
    }
    base["experiment"] = {"seeds": [0, 1], "bootstrap_iters": 500, **experiment}
    from ual_dagster.config.profile import Profile

    return Profile.model_validate(base)


def test_report_leads_with_paired_comparisons_and_states_what_excludes_zero(tmp_path) -> None:
    from ual_dagster.evaluation.comparisons import compute_comparisons, read_comparisons, write_comparisons
    from ual_dagster.evaluation.scores import read_items

    profile = _report_profile()
    store = DuckDBStore(tmp_path / "db.duckdb")

    class Item:
        def __init__(self, item_id, value):
            self.benchmark, self.item_id, self.metric, self.value = "testbed", item_id, "valid_logprob", value

    # mixed: ual is 0.5 better than both baselines on every item; low_entropy: no difference
    for scen, gain in (("mixed", 0.5), ("low_entropy", 0.0)):
        for seed in (0, 1):
            for method, delta in (("sft", 0.0), ("ls_matched", 0.0), ("ual", gain)):
                items = [Item(f"i{k}", -2.0 + 0.1 * (k % 5) + delta + 0.01 * seed) for k in range(20)]
                mean = sum(i.value for i in items) / len(items)
                write_scores(
                    store,
                    scen,
                    method,
                    f"ck-{scen}-{method}-{seed}",
                    f"ev-{scen}-{method}-{seed}",
                    [ScoreRow("testbed", "valid_logprob", mean, 0.05, 20)],
                    seed=seed,
                    items=items,
                )
    items = read_items(store)
    assert len(items) == 2 * 2 * 3 * 20
    cmp = compute_comparisons(items, list(profile.methods), profile.baselines(), iters=500)
    write_comparisons(store, cmp, "v1")
    stored = read_comparisons(store)
    ual_sft = stored[(stored.scenario == "mixed") & (stored.method == "ual") & (stored.baseline == "sft")].iloc[0]
    assert ual_sft.estimate == pytest.approx(0.5) and (ual_sft.n_seeds, ual_sft.n_items) == (2, 20)
    with store.connect() as con:  # an elicitor that ranks perfectly: rho 1, AUC 1
        con.execute(
            "CREATE TABLE samples (dataset VARCHAR, sample_id VARCHAR, intrinsic_uncertainty DOUBLE, family VARCHAR)"
        )
        con.execute(
            "CREATE TABLE uncertainty (dataset VARCHAR, sample_id VARCHAR, elicitor VARCHAR, uncertainty DOUBLE, "
            "status VARCHAR)"
        )
        con.executemany(
            "INSERT INTO samples VALUES ('testbed_open', ?, ?, NULL)", [[f"s{i}", i / 10] for i in range(10)]
        )
        con.executemany(
            "INSERT INTO uncertainty VALUES ('testbed_open', ?, 'openai:m:p:verbalized:abc', ?, 'ok')",
            [[f"s{i}", i / 20] for i in range(10)],
        )
    result = comparison_report(store, tmp_path / "report", profile)
    text = result.markdown.read_text()
    assert "## Elicitor validity" in text and "| m (openai, verbalized) | overall | 10 | 1.000 |" in text
    assert text.startswith("# UAL against its baselines: paired comparisons")
    summary = text.split("## Summary")[1].split("## mixed")[0]
    # ual - sft and ual - ls_matched; with 3 contrasts and p >= 2/501 both survive Holm
    assert (
        "**mixed**: 2 of 3 differences have a 95% interval that excludes zero (2 seed(s)), 2 of them also after Holm"
        in summary
    )
    assert "**low_entropy**: none of the 3 differences" in summary
    assert "| valid_logprob | ual - sft | **+0.5 [+0.5, +0.5]** |" in text
    assert "paper" in text and "+10.62" in text and "not shown beside these scores" in text
    assert "nan" not in text.lower()
    names = [p.name for p in result.plots]
    assert sorted(names[:2]) == ["forest_low_entropy.png", "forest_mixed.png"]
    for p in result.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000


def test_clustering_scores_separable_above_random() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 30)
    centres = rng.normal(0, 10, size=(8, 16))
    separable = centres[labels] + rng.normal(0, 0.5, size=(len(labels), 16))
    random = rng.normal(0, 1, size=(len(labels), 16))
    good = cluster_quality(separable, labels, max_tokens=200, seed=0)
    bad = cluster_quality(random, labels, max_tokens=200, seed=0)
    assert good["silhouette"] > 0.8 > 0.1 > bad["silhouette"]
    assert good["davies_bouldin"] < bad["davies_bouldin"]
    assert good["n_tokens"] == 200
    with pytest.raises(ValueError, match="at least 2 token ids"):
        cluster_quality(random[:5], np.arange(5), max_tokens=100, seed=0)  # every id seen once


def _samples_db(tmp_path):
    from ual_dagster.evaluation.eval_data import HeldoutItem  # noqa: F401 - the shape the rows take

    store = DuckDBStore(tmp_path / "db.duckdb")
    with store.connect() as con:
        con.execute(
            "CREATE TABLE samples (dataset VARCHAR, sample_id VARCHAR, instruction VARCHAR, input VARCHAR, "
            "output VARCHAR, source VARCHAR, split VARCHAR, family VARCHAR, intrinsic_uncertainty DOUBLE, "
            "valid_answers VARCHAR, loaded_at TIMESTAMP)"
        )
        rows = [
            [
                "testbed_exact",
                f"e{i}",
                f"Add {i} and 2.",
                "",
                f"the sum is {i + 2}",
                "t",
                "heldout",
                "add",
                0.0,
                json.dumps([f"the sum is {i + 2}"]),
            ]
            for i in range(6)
        ]
        rows += [
            [
                "testbed_open",
                f"o{i}",
                f"Name a fruit ({i}).",
                "",
                "apple",
                "t",
                "heldout",
                "fruit",
                1.0,
                json.dumps(["apple", "pear"]),
            ]
            for i in range(6)
        ]
        rows += [["testbed_open", "train1", "Name a fruit.", "", "pear", "t", "train", "fruit", 1.0, "[]"]]
        con.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)", rows)
    return store


def test_evaluate_checkpoint_end_to_end_then_cached(tiny_checkpoint, tmp_path) -> None:
    store = _samples_db(tmp_path)
    cfg = EvaluationConfig(
        device="cpu",
        generation=GenerationConfig(max_new_tokens=6, batch_size=8, stop_strings=["\n"]),
        lm_eval=[LmEvalTaskConfig(name="testbed_exact_heldout")],
        alpaca_eval=AlpacaEvalConfig(),
        answer_likelihood=AnswerLikelihoodConfig(),
        clustering=ClusteringConfig(probe_samples=12, max_tokens=200),
    )
    data = load_eval_data(store, ["testbed_exact", "testbed_open"])
    assert len(data.dataset("testbed_open")) == 6  # held-out rows only
    work = tmp_path / "evaluation"
    res = evaluate_checkpoint(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "ck1", cfg, data, work)
    metrics = {(r.benchmark, r.metric): r for r in res.rows}
    assert metrics[("testbed_exact_heldout", "exact_match,none")].n == 6
    wr = metrics[("alpaca_eval", "win_rate")]
    # The random model never says a fruit and every reference is valid: it loses every judged item.
    assert wr.value == 0.0 and wr.n + wr.details["n_unjudged"] == 6
    assert res.metadata["model_loaded"] is True
    assert "discrete_win_rate" not in {m for _, m in metrics}
    write_scores(store, "mixed", "ual", "ck1", res.fingerprint, res.rows)
    assert has_scores(store, res.fingerprint)
    # Every row is the mean of its items (unjudged items are None and left out), and every row has a stderr.
    for (benchmark, metric), row in metrics.items():
        values = [i.value for i in res.items if (i.benchmark, i.metric) == (benchmark, metric) and i.value is not None]
        assert row.n == len(values) and row.value == pytest.approx(sum(values) / len(values)), (benchmark, metric)
        assert row.stderr is not None or len(set(values)) == 1, (benchmark, metric)
    assert {(b, m) for b, m in metrics} == {
        ("testbed_exact_heldout", "exact_match,none"),
        ("alpaca_eval", "win_rate"),
        ("testbed_likelihood", "log_p_answer"),
        ("testbed_likelihood", "log_p_valid_set"),
        ("testbed_likelihood", "valid_set_entropy"),
    }
    held_ids = {it.sample_id for it in data.all_items()}
    assert {i.item_id for i in res.items} == held_ids

    again = evaluate_checkpoint(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "ck1", cfg, data, work)
    assert again.fingerprint == res.fingerprint and again.metadata["model_loaded"] is False
    assert [r.as_json() for r in again.rows] == [r.as_json() for r in res.rows]
    assert again.items == res.items  # a reused evaluation still yields its items

    clus = cluster_checkpoint(
        tiny_checkpoint.base_path,
        tiny_checkpoint.adapter_path,
        "ck1",
        cfg.clustering,
        data,
        tmp_path / "clustering",
        device="cpu",
    )
    assert {r.metric for r in clus.rows} == {"silhouette@L-1", "davies_bouldin@L-1"}
    assert all(r.benchmark == "token_clustering" and -1 <= clus.rows[0].value <= 1 for r in clus.rows)
    assert clus.plots[0].stat().st_size > 1000
