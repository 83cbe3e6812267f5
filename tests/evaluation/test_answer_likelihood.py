"""testbed_likelihood: teacher-forced log-probabilities against an unbatched reference, and hand-computed items."""

from __future__ import annotations

import math

import pytest
import torch

from ual_dagster.config.evaluation import AnswerLikelihoodConfig
from ual_dagster.evaluation.answer_likelihood import (
    BENCHMARK,
    answer_logprobs,
    item_scores,
    run_answer_likelihood,
)
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.models import CheckpointHandle
from ual_dagster.train.prompts import prompt_token_ids, render_prompt

ITEMS = {
    "testbed_exact": [
        HeldoutItem("e1", "testbed_exact", "Add 2 and 3.", "", "5", ("5",)),
        HeldoutItem("e2", "testbed_exact", "Sort the letters c a b.", "", "a b c", ("a b c",)),
    ],
    "testbed_open": [
        HeldoutItem("o1", "testbed_open", "Name a fruit.", "", "apple", ("apple", "pear", "plum", "kiwi")),
        HeldoutItem("o2", "testbed_open", "Name a colour other than red.", "", "blue", ("blue", "green", "red wine")),
        HeldoutItem("o3", "testbed_open", "Give a number between 1 and 3.", "", "2", ("1", "2", "3")),
    ],
}


def reference_logprob(loaded, prompt: str, answer: str) -> float:
    """One unpadded forward pass over bos + prompt + answer + eos, all logits, float64 log-softmax."""
    tok = loaded.tokenizer
    p = prompt_token_ids(tok, prompt)
    a = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([p + a])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[len(p) - 1 + t, a[t]] for t in range(len(a))))


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_batched_cached_logprobs_match_unbatched_reference(tiny_checkpoint, batch_size) -> None:
    """Left-padded prompts of different lengths, answers of different lengths sharing one prompt cache."""
    items = [it for name in sorted(ITEMS) for it in ITEMS[name]]
    prompts = [render_prompt(it.instruction, "", "alpaca") for it in items]
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        loaded = handle.get()
        tok = loaded.tokenizer
        pairs = [
            (n, tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
            for n, it in enumerate(items)
            for a in it.valid_answers
        ]
        got = answer_logprobs(loaded, [prompt_token_ids(tok, p) for p in prompts], pairs, batch_size)
        want = [reference_logprob(loaded, prompts[n], a) for n, it in enumerate(items) for a in it.valid_answers]
    assert len({len(p[1]) for p in pairs}) > 1 and len({len(prompt_token_ids(tok, p)) for p in prompts}) > 1
    assert got == pytest.approx(want, abs=1e-4)
    assert all(v < 0 for v in got)


def test_item_scores_hand_computed() -> None:
    [single] = item_scores("s", [math.log(0.3)])
    assert (single.metric, single.value) == ("log_p_answer", pytest.approx(math.log(0.3)))
    valid_set, entropy = item_scores("m", [math.log(0.2), math.log(0.1), math.log(0.1)])
    assert (valid_set.metric, valid_set.value) == ("log_p_valid_set", pytest.approx(math.log(0.4)))
    q = [0.5, 0.25, 0.25]  # the valid mass renormalised
    assert (entropy.metric, entropy.value) == (
        "valid_set_entropy",
        pytest.approx(-sum(x * math.log(x) for x in q) / math.log(3)),
    )
    assert item_scores("u", [math.log(0.01)] * 5)[1].value == pytest.approx(1.0)  # evenly spread: 1


def test_rows_are_the_means_of_items_and_a_rerun_loads_nothing(tiny_checkpoint, tmp_path) -> None:
    data = EvalData(ITEMS)
    cfg = AnswerLikelihoodConfig(batch_size=4)
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        res = run_answer_likelihood(handle, "ck", cfg, data, tmp_path)
        limited = run_answer_likelihood(
            handle, "ck", AnswerLikelihoodConfig(datasets=["testbed_open"], limit=2), data, tmp_path
        )
    assert {i.item_id for i in limited.items} == {"o1", "o2"} and not limited.cache_hit
    assert not res.cache_hit and res.metadata["sequences"] == 12
    by_metric = {r.metric: r for r in res.rows}
    assert set(by_metric) == {"log_p_answer", "log_p_valid_set", "valid_set_entropy"}
    assert {(i.metric, i.item_id) for i in res.items} == {
        ("log_p_answer", "e1"),
        ("log_p_answer", "e2"),
        *((m, o) for m in ("log_p_valid_set", "valid_set_entropy") for o in ("o1", "o2", "o3")),
    }
    for metric, row in by_metric.items():
        values = [i.value for i in res.items if i.metric == metric]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        assert row.benchmark == BENCHMARK and row.n == len(values)
        assert row.value == pytest.approx(mean) and row.stderr == pytest.approx(sd / math.sqrt(len(values)))
    assert all(0.0 <= i.value <= 1.0 for i in res.items if i.metric == "valid_set_entropy")

    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        again = run_answer_likelihood(handle, "ck", cfg.model_copy(update={"batch_size": 7}), data, tmp_path)
        assert not handle.is_loaded
    assert again.cache_hit and again.items == res.items and again.rows == res.rows
