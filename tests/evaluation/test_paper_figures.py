"""The paper's +1.81 is the abstract's mean over MetaMath and GSM8K: never set beside GSM8K alone."""

import pandas as pd

from ual_dagster.evaluation.report import PAPER_LOW_ENTROPY_NOTE, _scores_section, paper_figure


def test_181_is_labelled_as_the_mean_and_shown_only_beside_that_mean():
    for bench, metric in (("gsm8k_ual", "exact_match,strict-match"), ("gsm8k", "exact_match,flexible-extract")):
        assert paper_figure("mixed", bench, metric, comparable=True) is None, bench
    fig = paper_figure("mixed", "mean(metamath, gsm8k)", "exact_match,strict-match", comparable=True)
    assert fig["value"] == 1.81 and "mean over MetaMath and GSM8K" in fig["scale"]
    assert paper_figure("mixed", "alpaca_eval", "win_rate", comparable=True)["value"] == 10.62
    assert "mean over MetaMath and GSM8K" in PAPER_LOW_ENTROPY_NOTE


def test_the_scores_table_shows_no_181_beside_gsm8k():
    rows = [
        {
            "scenario": "mixed",
            "benchmark": "gsm8k_ual",
            "metric": "exact_match,strict-match",
            "method": m,
            "value": v,
            "stderr": 0.01,
            "seed": 0,
        }
        for m, v in (("sft", 0.30), ("ual", 0.32))
    ]
    text = "\n".join(_scores_section(pd.DataFrame(rows), ["sft", "ual"], comparable=True))
    assert "gsm8k_ual" in text and "1.81" not in text
