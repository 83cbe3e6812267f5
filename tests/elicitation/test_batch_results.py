"""Batch results: a result file's lines, and a row's outcome from its collected requests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation.batch_results import decide, parse_result_file
from ual_dagster.elicitation.table import utc_now

CFG = OpenAIElicitation(
    backend="openai", model="m", base_url="http://127.0.0.1:1/v1", max_retries=1, max_parse_retries=1
)


def request(part, result, *, status=None, text=None, score=None, error=None, tokens=(10, 2), age_s=5.0):
    """One collected request as BatchTables.unsettled returns it."""
    return (part, result, status, text, score, error, tokens[0], tokens[1], utc_now() - timedelta(seconds=age_s))


def test_a_result_line_that_is_not_json_or_lacks_a_custom_id_is_named_by_file_and_line():
    assert parse_result_file("f1", '{"custom_id": "a"}\n\n{"custom_id": "b"}\n') == [
        {"custom_id": "a"},
        {"custom_id": "b"},
    ]
    with pytest.raises(ValueError, match=r"batch result file f1:2: not valid JSON"):
        parse_result_file("f1", '{"custom_id": "a"}\n{oops\n')
    with pytest.raises(ValueError, match=r"batch result file f2:1: no custom_id"):
        parse_result_file("f2", '{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"batch result file f3:1: expected a JSON object, got list"):
        parse_result_file("f3", '["custom_id"]\n')


def test_an_answered_score_decides_the_row_with_its_tokens_and_attempts():
    outcome, todo = decide([request(0, "not_run"), request(0, "answered", status=200, text="7", score=0.7)], CFG, 1)
    assert todo == []
    assert (outcome.status, outcome.uncertainty, outcome.raw_answer) == ("ok", 0.7, "7")
    # the not-run request costs no attempt, but its (zero or reported) tokens count
    assert (outcome.attempts, outcome.prompt_tokens, outcome.completion_tokens) == (1, 20, 4)
    assert outcome.latency_s >= 5.0


def test_retryable_errors_are_asked_again_until_max_retries_then_fail():
    once = [request(0, "http_error", status=429, error="HTTP 429: slow down")]
    assert decide(once, CFG, 1) == (None, [0])
    outcome, todo = decide(once * 2, CFG, 1)
    assert todo == [] and outcome.status == "failed"
    assert outcome.error == "HTTP 429: slow down (gave up after 2 attempts)"
    outcome, _ = decide([request(0, "http_error", status=400, error="HTTP 400: bad")], CFG, 1)
    assert (outcome.status, outcome.error) == ("failed", "HTTP 400: bad")


def test_unparseable_answers_are_asked_again_up_to_max_parse_retries():
    bad = request(0, "answered", status=200, text="no number")
    assert decide([bad], CFG, 1) == (None, [0])
    outcome, todo = decide([bad, bad], CFG, 1)
    assert todo == [] and (outcome.status, outcome.uncertainty, outcome.raw_answer) == (
        "unparseable",
        None,
        "no number",
    )


def test_consistency_asks_only_the_parts_without_a_score():
    cfg = CFG.model_copy(update={"method": "consistency", "consistency_k": 3})
    got = [request(0, "answered", status=200, text="2", score=0.2), request(2, "answered", status=200, text="x")]
    assert decide(got, cfg, 3) == (None, [1, 2])
