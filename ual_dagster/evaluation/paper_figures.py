"""The UAL paper's (ACL 2024) reported gains, each with the scale it is on and the metrics
of ours it may be shown beside. One place, so the report never puts a figure beside a
number on another scale.

AlpacaEval: the paper reports +10.62 for UAL over SFT in the mixed scenario without saying
which AlpacaEval, reference or judge. It cannot be AlpacaEval 2 points: there alpaca-7b
(a Llama-7B SFT on Alpaca) scores 2.59% (5.88% length-controlled), so a 10.6-point gain
would quadruple it. It is most likely AlpacaEval 1 (reference text-davinci-003, judge
alpaca_eval_gpt4) points, or a relative gain. Our AlpacaEval rows are judged against the
AlpacaEval 2 references by a different judge, so no figure is comparable with them;
`comparable_with` is empty until a profile evaluates on the AlpacaEval 1 set
(alpaca_eval.hub_file: alpaca_eval.json with the alpaca_eval_gpt4 annotator), whose rows
would then be the ones to compare.

GSM8K: +1.81 is accuracy in percentage points; our exact_match is a fraction, so the
figure in our units is 0.0181.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperFigure:
    scenario: str
    benchmark: str  # the paper's benchmark
    ual_minus_sft: float  # as printed in the paper
    scale: str  # what that number measures
    to_our_units: float  # multiply to compare with `comparable_with` rows
    comparable_with: tuple[tuple[str, str], ...]  # (our benchmark, our metric) on the same scale
    note: str = ""


PAPER_FIGURES: tuple[PaperFigure, ...] = (
    PaperFigure(
        scenario="mixed",
        benchmark="AlpacaEval",
        ual_minus_sft=10.62,
        scale="AlpacaEval win rate, version/reference/judge not stated: most likely AlpacaEval 1 points "
        "(vs text-davinci-003, alpaca_eval_gpt4 judge) or a relative gain; not AlpacaEval 2 points",
        to_our_units=1.0,
        comparable_with=(),
        note="on AlpacaEval 2, alpaca-7b scores 2.59% (5.88% LC): a +10.62-point gain there is implausible",
    ),
    PaperFigure(
        scenario="mixed",
        benchmark="GSM8K (MetaMath)",
        ual_minus_sft=1.81,
        scale="accuracy, percentage points",
        to_our_units=0.01,
        comparable_with=(
            ("gsm8k_ual", "exact_match,strict-match"),
            ("gsm8k", "exact_match,strict-match"),
            ("gsm8k", "exact_match,flexible-extract"),
            ("gsm8k_ual", "exact_match,flexible-extract"),
            ("gsm8k_local", "exact_match,strict-match"),
            ("gsm8k_local", "exact_match,flexible-extract"),
        ),
    ),
)


def comparable_figure(scenario: str, benchmark: str, metric: str) -> PaperFigure | None:
    """The paper figure that may be shown beside this row of ours, or None."""
    for fig in PAPER_FIGURES:
        if fig.scenario == scenario and (benchmark, metric) in fig.comparable_with:
            return fig
    return None


def comparable_gain(scenario: str, benchmark: str, metric: str) -> float | None:
    """The paper's UAL - SFT in our row's units, where the scales match; else None."""
    fig = comparable_figure(scenario, benchmark, metric)
    return None if fig is None else round(fig.ual_minus_sft * fig.to_our_units, 6)
