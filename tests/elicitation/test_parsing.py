from __future__ import annotations

import math
import statistics

import pytest

from ual_dagster.elicitation.parsing import dispersion, expected_score, parse_verbalized


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ('{"uncertainty": 7}', 10, 0.7),
        ('Sure! {"uncertainty": "4", "why": "few answers"}', 10, 0.4),
        ("Uncertainty: 7/10", 10, 0.7),
        ("uncertainty score = 3", 10, 0.3),
        ("I'd say 8 out of 10.", 10, 0.8),
        ("Score: 45/100", 10, 0.45),
        ("70%", 10, 0.7),
        ("**9**", 10, 0.9),
        ('{"uncertainty": 63}', 100, 0.63),
        ("0", 10, 0.0),
    ],
)
def test_parse_verbalized_reads_common_forms(text, scale, expected):
    assert parse_verbalized(text, scale) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", None, "no idea", '{"uncertainty": 70}', "Uncertainty: 12/10", '{"other": 3}'])
def test_parse_verbalized_rejects_missing_or_out_of_range(text):
    assert parse_verbalized(text, 10) is None


def test_expected_score_renormalises_over_score_tokens():
    candidates = [("7", math.log(0.5)), (" 8", math.log(0.3)), ("x", math.log(0.2))]
    assert expected_score(candidates, 10) == pytest.approx((7 * 0.5 + 8 * 0.3) / 0.8 / 10)
    assert expected_score([("x", 0.0)], 10) is None


def test_dispersion_std_and_entropy_against_direct_formulas():
    scores = [0.1, 0.5, 0.5, 0.9]
    assert dispersion(scores, "std", 10) == pytest.approx(statistics.pstdev(scores) / 0.5)
    # histogram {1: 1, 5: 2, 9: 1}: entropy of (1/4, 1/2, 1/4) over log(4)
    h = -(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5))
    assert dispersion(scores, "entropy", 10) == pytest.approx(h / math.log(4))
    assert dispersion([0.3] * 5, "std", 10) == 0.0 and dispersion([0.3] * 5, "entropy", 10) == 0.0
    assert dispersion([0.0, 1.0], "std", 10) == pytest.approx(1.0)
