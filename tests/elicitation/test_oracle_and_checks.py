from __future__ import annotations

import pytest
from scipy.stats import spearmanr

from tests.elicitation.samples_table import Sample, write_samples
from ual_dagster.config.elicitation import OracleElicitation
from ual_dagster.elicitation import coverage_check, current_scores, elicit_dataset, range_check
from ual_dagster.elicitation.metrics import histogram, percentile, spearman


def test_oracle_copies_intrinsic_and_fails_rows_without_it(store):
    samples = [Sample(f"task {i}", output="x", intrinsic_uncertainty=i / 10) for i in range(5)]
    samples.append(Sample("an alpaca row", output="y"))
    write_samples(store, "tb", samples)
    cfg = OracleElicitation(min_coverage=0.8)
    result = elicit_dataset("tb", cfg, store)

    assert current_scores(store, "tb", cfg) == {s.sample_id: s.intrinsic_uncertainty for s in samples[:5]}
    with store.connect() as con:
        status, error = con.execute(
            "SELECT status, error FROM uncertainty WHERE sample_id = ?", [samples[5].sample_id]
        ).fetchone()
    assert status == "failed" and "no intrinsic_uncertainty" in error
    assert result.metadata["spearman_vs_intrinsic"] == pytest.approx(1.0)
    assert result.metadata["coverage"] == pytest.approx(5 / 6) and result.metadata["coverage_ok"]


def test_only_configured_splits_are_elicited(store):
    write_samples(
        store,
        "sp",
        [
            Sample("a", output="1", intrinsic_uncertainty=0.1),
            Sample("b", output="2", split="heldout", intrinsic_uncertainty=0.2),
        ],
    )
    result = elicit_dataset("sp", OracleElicitation(), store)
    assert result.metadata["samples"] == 1


def test_fingerprint_is_a_function_of_the_scores(store):
    write_samples(store, "v", [Sample(f"t{i}", output="o", intrinsic_uncertainty=0.5) for i in range(3)])
    cfg = OracleElicitation()
    first = elicit_dataset("v", cfg, store).fingerprint
    assert elicit_dataset("v", cfg, store).fingerprint == first
    write_samples(store, "v", [Sample(f"t{i}", output="o", intrinsic_uncertainty=0.5) for i in range(4)])
    assert elicit_dataset("v", cfg, store).fingerprint != first


def test_metric_helpers_against_references():
    xs, ys = [0.1, 0.4, 0.35, 0.8, 0.9], [1, 3, 2, 5, 4]
    assert spearman(xs, ys) == pytest.approx(spearmanr(xs, ys).statistic)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([5.0], 95) == 5.0 and percentile([], 50) is None
    h = histogram([0.0, 0.05, 0.1, 0.99, 1.0])
    assert h["[0.0,0.1)"] == 2 and h["[0.1,0.2)"] == 1 and h["[0.9,1.0]"] == 2 and sum(h.values()) == 5


def test_pure_checks():
    assert coverage_check(98, 100, 0.98).passed and not coverage_check(97, 100, 0.98).passed
    assert not coverage_check(0, 0, 0.5).passed
    assert range_check([0.0, 0.5, 1.0]).passed
    bad = range_check([0.2, 1.5, None])
    assert not bad.passed and bad.metadata["out_of_range"] == 2
