"""lm-eval on the tiny checkpoint with a hand-checked exact match, and GSM8K answer extraction."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from lm_eval import tasks as lm_tasks
from lm_eval.tasks._yaml_loader import load_yaml

from ual_dagster.config.evaluation import GenerationConfig, LmEvalTaskConfig
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.lm_eval_runner import render_task_yaml, run_lm_eval, validate_gsm8k_jsonl
from ual_dagster.evaluation.models import CheckpointHandle, generate
from ual_dagster.train.prompts import render_prompt

GEN = GenerationConfig(max_new_tokens=8, batch_size=4, stop_strings=["\n"])


GSM8K_FILE = Path("/work/shared/data/gsm8k/test.jsonl")


def resolved_task(task: str, out_dir: Path, data_file: Path = GSM8K_FILE) -> dict:
    """The shipped task's config as lm-eval reads it: rendered, with its `include:` merged in."""
    return load_yaml(render_task_yaml(task, data_file, out_dir))


def upstream_gsm8k() -> dict:
    return load_yaml(Path(lm_tasks.__file__).parent / "gsm8k" / "gsm8k.yaml")


def gsm8k_extract_and_score(response: str, target: str) -> dict[str, float]:
    """Apply the shipped gsm8k_local filters and metric (as lm-eval resolves them) to one response."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    with tempfile.TemporaryDirectory() as tmp:
        spec = resolved_task("gsm8k_local", Path(tmp))
    metric = {
        k: v
        for k, v in spec["metric_list"][0].items()
        if k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation")
    }
    scores = {}
    for pipeline in spec["filter_list"]:
        regex = pipeline["filter"][0]
        f = RegexFilter(regex_pattern=regex["regex_pattern"], group_select=regex.get("group_select", 0))
        extracted = list(f.apply([[response]], [{}]))[0][0]
        scores[pipeline["name"]] = exact_match_hf_evaluate([extracted], [target], **metric)["exact_match"]
    return scores


@pytest.mark.parametrize(
    "response, strict, flexible",
    [
        (" Tom has 3 + 4 = 7 apples.\n#### 7", 1.0, 1.0),  # the canonical form
        (" 3 + 4 = 7, so the answer is 7.", 0.0, 1.0),  # no '#### N': only the last number counts
        (" #### 1,000", 0.0, 0.0),  # wrong number, the comma is ignored on both sides
        (" The answer is 8.\n#### 8", 0.0, 0.0),
        (" $7", 0.0, 1.0),  # '$' is ignored by the metric
    ],
)
def test_gsm8k_answer_extraction(response: str, strict: float, flexible: float) -> None:
    scores = gsm8k_extract_and_score(response, "Tom buys 4 more: 3 + 4 = 7\n#### 7")
    assert scores == {"strict-match": strict, "flexible-extract": flexible}


def test_gsm8k_thousands_separator_target() -> None:
    assert gsm8k_extract_and_score("#### 1,000", "so 1000\n#### 1000") == {"strict-match": 1.0, "flexible-extract": 1.0}


def test_gsm8k_local_is_upstream_gsm8k_on_a_local_file(tmp_path) -> None:
    """gsm8k_local includes lm-eval's gsm8k: prompt, stop strings, filters and metric are upstream's;
    only the data (one local file, which also serves few-shot examples) and the shot count differ."""
    local, upstream = resolved_task("gsm8k_local", tmp_path), upstream_gsm8k()
    for key in ("output_type", "doc_to_text", "doc_to_target", "generation_kwargs", "filter_list", "metric_list"):
        assert local[key] == upstream[key], key
    assert local["task"] == "gsm8k_local" and local["tag"] == []
    assert (local["dataset_path"], local["dataset_name"]) == ("json", None)
    assert local["dataset_kwargs"] == {"data_files": {"test": str(GSM8K_FILE.resolve())}}
    assert (local["test_split"], local["training_split"], local["fewshot_split"]) == ("test", None, "test")
    assert local["num_fewshot"] == 0 and upstream["num_fewshot"] == 5


def test_gsm8k_jsonl_errors_name_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        validate_gsm8k_jsonl(bad)
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*'answer'"):
        validate_gsm8k_jsonl(bad)


def test_lm_eval_exact_match_matches_greedy_generation(tiny_checkpoint, tmp_path) -> None:
    """Targets equal to the model's own greedy output for items 0, 2, 4 and not for 1, 3, 5: exact_match = 0.5."""
    items = [HeldoutItem(f"s{i}", "testbed_exact", f"Add {i} and {i + 1}.", "", "", ()) for i in range(6)]
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        greedy = generate(handle.get(), [render_prompt(it.instruction, "", "alpaca") for it in items], GEN)
        assert all(g.strip() for g in greedy)
        answers = [g if i % 2 == 0 else "not what the model says" for i, g in enumerate(greedy)]
        items = [HeldoutItem(it.sample_id, it.dataset, it.instruction, "", a, (a,)) for it, a in zip(items, answers)]
        data = EvalData({"testbed_exact": items})
        task = LmEvalTaskConfig(name="testbed_exact_heldout")
        result = run_lm_eval(handle, tiny_checkpoint.fingerprint, [task], data, GEN, tmp_path)
    [row] = result.rows
    assert (row.benchmark, row.metric, row.value, row.n) == ("testbed_exact_heldout", "exact_match,none", 0.5, 6)
    # bootstrap_iters=0: lm-eval says 'N/A'; the stderr is the items' sd/sqrt(n): sd of [1,0]*3 (ddof 1) = sqrt(0.3)
    assert (
        row.stderr == pytest.approx(math.sqrt(0.3) / math.sqrt(6)) and row.details["stderr"] == "sd/sqrt(n) over items"
    )
    samples = [
        json.loads(line) for line in (result.tasks[0].artifact_dir / "samples_testbed_exact_heldout.jsonl").open()
    ]
    assert [s["exact_match"] for s in sorted(samples, key=lambda s: s["doc_id"])] == [1.0, 0.0] * 3
    # Items carry the held-out sample ids, so they pair up across checkpoints; their mean is the row.
    assert sorted((i.item_id, i.metric, i.value) for i in result.items) == [
        (f"s{k}", "exact_match,none", 1.0 if k % 2 == 0 else 0.0) for k in range(6)
    ]
    assert sum(i.value for i in result.items) / 6 == row.value

    # A second run is served from the artifact dir: the model is never loaded, the items come back.
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        again = run_lm_eval(handle, tiny_checkpoint.fingerprint, [task], data, GEN, tmp_path)
        assert not handle.is_loaded
    assert again.tasks[0].cache_hit and again.rows == result.rows and again.items == result.items


def test_gsm8k_local_runs_on_real_gsm8k_file(tiny_checkpoint, tmp_path) -> None:
    """The shipped gsm8k_local task reads the public GSM8K JSONL by absolute path (untrained model: ~0)."""
    task = LmEvalTaskConfig(name="gsm8k_local", data_path="/work/shared/data/gsm8k/test.jsonl", limit=4)
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        result = run_lm_eval(handle, "ck", [task], EvalData(), GEN, tmp_path)
    metrics = {r.metric: r for r in result.rows}
    assert set(metrics) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert all(r.n == 4 and 0.0 <= r.value <= 1.0 for r in metrics.values())
    # GSM8K rows have no sample_id: items are named by a hash of the question and answer, one per filter.
    ids = {m: sorted(i.item_id for i in result.items if i.metric == m) for m in metrics}
    assert (
        ids["exact_match,strict-match"] == ids["exact_match,flexible-extract"]
        and len(set(ids["exact_match,strict-match"])) == 4
    )
    for m, r in metrics.items():
        assert sum(i.value for i in result.items if i.metric == m) / 4 == pytest.approx(r.value)
