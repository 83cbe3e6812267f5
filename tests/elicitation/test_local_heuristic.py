"""The tiny profile's elicitor: the real openai client against the bundled loopback server."""

from __future__ import annotations

import pytest

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.samples_table import Sample, numbered_samples, write_samples
from ual_dagster.config import load_profile
from ual_dagster.elicitation import current_scores, dataset_checks, elicit_dataset
from ual_dagster.elicitation.heuristic import estimate_open_endedness
from ual_dagster.elicitation.prompt import TaskText

CLOSED = [
    ("What is 17 + 25?", "", "42"),
    ("Sort these numbers: 9 2 5", "", "2 5 9"),
    ("Reverse the word: stone", "", "enots"),
    ("What is the capital of France?", "", "Paris"),
    ("Calculate the area of a 3 by 4 rectangle.", "", "12"),
    ("How many letters are in banana?", "", "6"),
    ("Convert 2 km to metres.", "", "2000"),
    ("Janet has 3 apples and buys 4 more. How many apples does she have?", "", "3 + 4 = 7\n#### 7"),
]
OPEN = [
    ("Write a short poem about autumn.", "", "Leaves fall softly,\ngolden light,\nthe year exhales."),
    ("Suggest a name for a coffee shop.", "", "The Daily Grind"),
    ("Give an example of a healthy breakfast.", "", "Oatmeal with berries"),
    ("Brainstorm some ideas for a birthday party.", "", "A picnic, a karaoke night, a treasure hunt."),
    ("Describe a beautiful sunset in a few sentences.", "", "The sky burned orange and pink as the sun slipped away."),
    ("Name a fruit.", "", "mango"),
    ("Give some tips for staying productive at home.", "", "Keep a routine, take breaks, and set up a desk."),
    ("Tell me a story about a brave mouse.", "", "Once upon a time a mouse named Pip faced the cat."),
]


def task_samples() -> list[Sample]:
    return [Sample(i, x, o, intrinsic_uncertainty=0.0) for i, x, o in CLOSED] + [
        Sample(i, x, o, intrinsic_uncertainty=1.0) for i, x, o in OPEN
    ]


def test_tiny_profile_elicitation_ranks_open_tasks_above_closed_ones(store):
    cfg = load_profile("tiny").elicitation
    samples = task_samples()
    write_samples(store, "mix", samples)
    result = elicit_dataset("mix", cfg, store)

    md = result.metadata
    assert md["rows_by_status"] == {"ok": 16, "unparseable": 0, "failed": 0} and md["calls"] == 16
    assert md["spearman_vs_intrinsic"] > 0.7
    assert sum(md["score_histogram"].values()) == 16
    assert md["latency_p50_s"] is not None and md["prompt_tokens"] > 0
    scores = current_scores(store, "mix", cfg)
    closed = [scores[s.sample_id] for s in samples[:8]]
    opened = [scores[s.sample_id] for s in samples[8:]]
    assert sum(opened) / 8 > sum(closed) / 8 + 0.3
    assert all(check.passed for check in dataset_checks(store, "mix", cfg))


def test_logprobs_method_equals_the_expected_score_of_the_served_distribution(store):
    cfg = load_profile("tiny").elicitation.model_copy(update={"method": "logprobs"})
    samples = task_samples()
    write_samples(store, "lp", samples)
    result = elicit_dataset("lp", cfg, store)
    assert result.metadata["logprobs_fallbacks"] == 0
    scores = current_scores(store, "lp", cfg)
    for s in samples:
        probs = estimate_open_endedness(TaskText(s.instruction, s.input, s.output, 10)).probabilities
        assert scores[s.sample_id] == pytest.approx(sum(k * p for k, p in enumerate(probs)) / 10, abs=1e-9)


def test_consistency_method_makes_k_calls_per_sample_and_disperses(store):
    cfg = load_profile("tiny").elicitation.model_copy(
        update={"method": "consistency", "temperature": 1.0, "consistency_k": 4}
    )
    write_samples(store, "cons", task_samples())
    result = elicit_dataset("cons", cfg, store)
    assert result.metadata["calls"] == 16 * 4
    scores = list(current_scores(store, "cons", cfg).values())
    assert len(scores) == 16 and all(0.0 <= u <= 1.0 for u in scores) and max(scores) > 0


def test_logprobs_falls_back_to_the_written_score_when_the_server_sends_none(store, fault_server):
    server, url = fault_server
    write_samples(store, "fb", numbered_samples(5))
    result = elicit_dataset("fb", openai_cfg(url, method="logprobs"), store)
    assert result.metadata["rows_by_status"]["ok"] == 5
    assert result.metadata["logprobs_fallbacks"] == 5
