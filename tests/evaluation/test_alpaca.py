"""AlpacaEval through the real alpaca_eval path with the deterministic testbed judge on a loopback server."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ual_dagster.config.evaluation import JudgeConfig
from ual_dagster.evaluation.alpaca import JudgeError, _cached_item_scores, judge_outputs
from ual_dagster.evaluation.judges.loopback_server import ReplyWithStatus
from ual_dagster.evaluation.judges.testbed_judge import TestbedJudge, parse_judge_prompt

VALID = ["apple", "pear", "plum"]
INSTRUCTIONS = [f"Name a fruit (case {i})." for i in range(10)]
# (model output, reference output): valid/invalid patterns chosen by hand.
PAIRS = [
    ("pear", "apple"),  # both valid: draw
    ("rock", "apple"),  # model invalid: reference wins
    ("Plum.", "stone"),  # model valid (case, full stop ignored), reference invalid: model wins
    ("apple", "apple"),  # identical: draw, decided by alpaca_eval without a judge call
    ("sand", "pear"),  # reference wins
    ("pear", "gravel"),  # model wins
    ("rock", "stone"),  # both invalid: draw
    ("dirt", "plum"),  # reference wins
    ("apple", "pear"),  # draw
    ("pebble", "apple"),  # reference wins
]
JUDGE = JudgeConfig(kind="testbed", max_retries=4, timeout_s=10, concurrency=4)


def outputs(pairs=PAIRS, instructions=INSTRUCTIONS):
    model = [{"instruction": s, "output": m, "generator": "ckpt"} for s, (m, _) in zip(instructions, pairs)]
    refs = [{"instruction": s, "output": r, "generator": "reference"} for s, (_, r) in zip(instructions, pairs)]
    return model, refs, {s: VALID for s in instructions}


def expected_winrate(pairs) -> tuple[float, float]:
    """Independent reference: score 1 for a model win, 0.5 for a draw, 0 for a loss; SE = sd / sqrt(n)."""
    valid = {v.lower() for v in VALID}
    ok = lambda s: s.strip().rstrip(".").lower() in valid  # noqa: E731
    scores = np.array([0.5 if ok(m) == ok(r) else (1.0 if ok(m) else 0.0) for m, r in pairs])
    return 100 * scores.mean(), 100 * scores.std(ddof=1) / np.sqrt(len(scores))


def test_parse_judge_prompt_roundtrip() -> None:
    text = "[INSTRUCTION]\nName a fruit.\n[/INSTRUCTION]\n[OUTPUT_A]\npear\n[/OUTPUT_A]\n[OUTPUT_B]\n\n[/OUTPUT_B]"
    assert parse_judge_prompt(text) == ("Name a fruit.", "pear", "")
    assert TestbedJudge({"Name a fruit.": VALID}).verdict("Name a fruit.", "rock", "Pear") == "Output (b)"


def test_win_rate_and_standard_error_match_hand_computation(tmp_path) -> None:
    model, refs, valid = outputs()
    result = judge_outputs(model, refs, JUDGE, tmp_path, valid_answers=valid)
    win, se = expected_winrate(PAIRS)
    assert (win, round(se, 6)) == (
        40.0,
        round(100 * np.std([0.5, 0, 1, 0.5, 0, 1, 0.5, 0, 0.5, 0], ddof=1) / np.sqrt(10), 6),
    )
    assert result.win_rate == pytest.approx(win)
    assert result.standard_error == pytest.approx(se)
    assert (result.n_wins, result.n_wins_base, result.n_draws, result.n_judged, result.n_unjudged) == (2, 4, 4, 10, 0)
    assert result.n_annotated == 9  # the identical pair needs no judge call
    assert result.annotations_path.is_file()
    # Per item on the win-rate scale: 100 model win, 50 draw, 0 reference win; their mean is the win rate.
    assert [result.item_scores[s] for s in INSTRUCTIONS] == [50, 0, 100, 50, 0, 100, 50, 0, 50, 0]
    # An artifact finished before per-item scores were stored gives them back from its annotations.
    assert _cached_item_scores(tmp_path, {"rows": []}) == result.item_scores

    # Annotations are cached in the artifact dir: the second run asks the judge nothing.
    again = judge_outputs(model, refs, JUDGE, tmp_path, valid_answers=valid)
    assert again.n_annotated == 0 and again.win_rate == pytest.approx(win)


def test_length_controlled_offline_is_reported_not_computed(tmp_path) -> None:
    model, refs, valid = outputs()
    result = judge_outputs(
        model, refs, JUDGE.model_copy(update={"length_controlled": True}), tmp_path, valid_answers=valid
    )
    assert result.length_controlled is None
    assert result.length_controlled_reason  # e.g. LocalEntryNotFoundError: the hub is unreachable
    lc = [r for r in result.rows() if r.metric == "length_controlled_winrate"][0]
    assert lc.value is None and "not_computed" in lc.details


class FlakyJudge:
    """500 on the first call for some instructions (retried by the client), garbage for others."""

    def __init__(self, garbage: set[str], fail_once: set[str]):
        self.inner = TestbedJudge({s: VALID for s in INSTRUCTIONS})
        self.garbage, self.fail_once = garbage, set(fail_once)
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def __call__(self, messages):
        instruction, _, _ = parse_judge_prompt(messages[-1]["content"])
        with self.lock:
            self.calls[instruction] = self.calls.get(instruction, 0) + 1
            first = self.calls[instruction] == 1
        if instruction in self.fail_once and first:
            raise ReplyWithStatus(500)
        if instruction in self.garbage:
            return "Both answers have merit; I cannot say."
        return self.inner.respond(messages)


def test_faulty_judge_items_are_retried_or_counted_unjudged(tmp_path) -> None:
    model, refs, valid = outputs()
    garbage = {INSTRUCTIONS[1], INSTRUCTIONS[2]}  # a reference win and a model win go unjudged
    fail_once = {INSTRUCTIONS[0], INSTRUCTIONS[5]}
    flaky = FlakyJudge(garbage, fail_once)
    result = judge_outputs(model, refs, JUDGE, tmp_path, valid_answers=valid, testbed_responder=flaky)
    kept = [p for s, p in zip(INSTRUCTIONS, PAIRS) if s not in garbage]
    win, se = expected_winrate(kept)
    assert (result.n_unjudged, result.n_judged) == (2, 8)
    assert result.win_rate == pytest.approx(win) and result.standard_error == pytest.approx(se)
    assert all(flaky.calls[s] == 2 for s in fail_once)  # the 500 was retried, then judged
    assert result.n_wins + result.n_wins_base + result.n_draws == 8
    judged = [v for v in result.item_scores.values() if v is not None]
    assert {s for s, v in result.item_scores.items() if v is None} == garbage
    assert sum(judged) / len(judged) == pytest.approx(result.win_rate)

    # Unjudged items are not cached as verdicts: the next run asks the judge about them only.
    fixed = FlakyJudge(set(), set())
    again = judge_outputs(model, refs, JUDGE, tmp_path, valid_answers=valid, testbed_responder=fixed)
    assert set(fixed.calls) == garbage
    assert again.n_unjudged == 0 and again.win_rate == pytest.approx(expected_winrate(PAIRS)[0])


def test_judge_that_never_answers_raises(tmp_path) -> None:
    model, refs, valid = outputs(PAIRS[:3], INSTRUCTIONS[:3])
    with pytest.raises(JudgeError, match="no usable verdict for any of the 3 items"):
        judge_outputs(model, refs, JUDGE, tmp_path, valid_answers=valid, testbed_responder=lambda messages: "???")
