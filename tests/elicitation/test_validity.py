"""elicitor_validity against hand-computed Spearman, p-value and AUC on a made-up uncertainty table."""

from __future__ import annotations

import math

import pytest

from tests.elicitation.samples_table import Sample, write_samples
from ual_dagster.elicitation.table import ensure_table
from ual_dagster.elicitation.validity import elicitor_name, elicitor_validity, format_validity

A = "openai:model-a:uncertainty_v1:verbalized:aaaaaaaa"
B = "hf_local:model-b:uncertainty_v1:expected_score:bbbbbbbb"

# (family, intrinsic uncertainty, u from elicitor A)
SINGLE = [("add", 0.0, 0.0), ("capital", 0.0, 0.2), (None, 0.0, 0.6)]  # family None: kind from intrinsic == 0
MANY = [
    ("name_member", 0.2, 0.1),
    ("even_below", 0.4, 0.5),
    ("sum_pair", 0.6, 0.3),
    ("multiple_of", 0.8, 0.9),
    ("name_member", 0.95, 0.7),
]


def _samples():
    return [
        Sample(f"task {i}", output=str(i), family=f, intrinsic_uncertainty=x)
        for i, (f, x, _) in enumerate(SINGLE + MANY)
    ]


def _write(store, rows):
    with store.connect() as con:
        ensure_table(con)
        con.executemany(
            "INSERT INTO uncertainty VALUES (?, ?, ?, ?, ?, NULL, NULL, 0, 0, 0.0, 1, current_timestamp)", rows
        )


@pytest.fixture
def table(store):
    samples = _samples()
    write_samples(store, "tb", samples)
    other = [Sample("free text", output="x")]  # no intrinsic uncertainty: never counted
    write_samples(store, "alpaca", other)
    extra = Sample("task 99", output="99", family="add", intrinsic_uncertainty=0.0)
    write_samples(store, "tb", [extra], replace=False)
    rows = [[s.sample_id, "tb", A, u, "ok"] for s, (_, _, u) in zip(samples, SINGLE + MANY)]
    rows.append([extra.sample_id, "tb", A, None, "unparseable"])  # not ok: left out
    rows += [[s.sample_id, "tb", B, 0.5, "ok"] for s in samples]  # constant u
    rows.append([other[0].sample_id, "alpaca", A, 0.9, "ok"])
    _write(store, rows)
    return elicitor_validity(store, ["tb", "alpaca"]).set_index(["elicitor", "scope"])


def _ranks(values):
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def test_within_many_answers_matches_the_hand_computed_rank_correlation_and_p(table):
    row = table.loc[(A, "many_answers")]
    # ranks of u: 1 3 2 5 4 against 1 2 3 4 5: sum d^2 = 4, rho = 1 - 6*4 / (5 * 24) = 0.8
    assert row["n"] == 5 and row["spearman"] == pytest.approx(0.8)
    # two-sided p from Student's t with n - 2 = 3 df, whose CDF has a closed form
    t = 0.8 * math.sqrt(3 / (1 - 0.8**2))
    cdf = 0.5 + (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3))) / math.pi
    assert row["spearman_p"] == pytest.approx(2 * (1 - cdf), rel=1e-6)
    assert row["auc"] is None and "one kind only" in row["note"]


def test_overall_uses_tied_ranks_and_the_auc_counts_pairs(table):
    row = table.loc[(A, "overall")]
    intrinsic = [x for _, x, _ in SINGLE + MANY]
    u = [v for _, _, v in SINGLE + MANY]
    assert row["n"] == 8
    assert row["spearman"] == pytest.approx(_pearson(_ranks(u), _ranks(intrinsic)))
    # many-answer u (0.1 0.5 0.3 0.9 0.7) above single-answer u (0 0.2 0.6): 1+2+2+3+3 of 15 pairs
    assert row["auc"] == pytest.approx(11 / 15)
    assert row["elicitor_name"] == "model-a (openai, verbalized)"


def test_constant_intrinsic_or_constant_u_gives_none_with_a_reason(table):
    single = table.loc[(A, "single_answer")]
    assert single["n"] == 3 and single["spearman"] is None and single["auc"] is None
    assert "intrinsic uncertainty is constant" in single["note"] and "one kind only" in single["note"]
    flat = table.loc[(B, "overall")]
    assert flat["spearman"] is None and "same u" in flat["note"]
    assert flat["auc"] == pytest.approx(0.5)  # all pairs tied


def test_only_the_named_datasets_count_and_the_table_formats(store, table):
    assert elicitor_validity(store, ["alpaca"]).empty  # no intrinsic uncertainty there
    assert set(table.index.get_level_values("scope")) == {"overall", "single_answer", "many_answers"}
    text = format_validity(table.reset_index())
    assert "| model-a (openai, verbalized) | many_answers | 5 | 0.800 |" in text
    assert elicitor_name("oracle:intrinsic:intrinsic-v1:12345678") == "oracle (intrinsic uncertainty)"


def test_missing_tables_are_named(store):
    with pytest.raises(RuntimeError, match="missing"):
        elicitor_validity(store, ["tb"])
