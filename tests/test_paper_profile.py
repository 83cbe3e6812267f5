"""Issue 10: the paper setting at scale, checked offline (patched clients, local copies)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ual_dagster.config import ProfileError, load_profile
from ual_dagster.evaluation.eval_data import EvalData
from ual_dagster.preflight import RETIRED_MODELS, annotator_model, run_preflight

ROOT = Path(__file__).resolve().parents[1]
SHA = re.compile(r"^[0-9a-f]{40}$")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ual_dagster", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


# -- item 1: AlpacaEval references without the data set's loading script -------------------


def test_hub_references_come_from_the_json_file_not_the_loading_script(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    from ual_dagster.evaluation.alpaca import build_eval_set

    refs = [{"instruction": f"q{i}", "output": f"a{i}", "generator": "gpt4_1106_preview"} for i in range(3)]
    local = tmp_path / "alpaca_eval_gpt4_baseline.json"
    local.write_text(json.dumps(refs))
    calls = []

    def fake_download(repo_id, filename, repo_type=None, revision=None, **_):
        calls.append((repo_id, filename, repo_type, revision))
        return str(local)

    def no_script(*a, **k):
        raise RuntimeError("Dataset scripts are no longer supported, but found alpaca_eval.py")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(datasets, "load_dataset", no_script)
    cfg = load_profile("paper").evaluation.alpaca_eval
    items, n_dup = build_eval_set(cfg, EvalData({}), "alpaca")
    assert [it.instruction for it in items] == ["q0", "q1", "q2"] and [it.reference for it in items][0] == "a0"
    assert calls == [("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline.json", "dataset", cfg.hub_revision)]


# -- item 2: a judge that exists ----------------------------------------------------------


def _variant(tmp_path: Path, text: str):
    path = tmp_path / "variant.yaml"
    path.write_text("extends: paper\n" + text)
    return load_profile(str(path))


def test_paper_judge_is_not_a_retired_model_and_the_historic_one_is_flagged(tmp_path):
    judge = load_profile("paper").evaluation.alpaca_eval.judge
    model = judge.model or annotator_model(judge.annotator)
    assert model and model not in RETIRED_MODELS
    # the annotator the profile used to call as is: its model is retired, and preflight says so
    assert annotator_model("weighted_alpaca_eval_gpt4_turbo") == "gpt-4-1106-preview"
    historic = _variant(tmp_path, "evaluation: {alpaca_eval: {judge: {model: null}}}\n")
    checks = {
        c.name: c
        for c in run_preflight(historic, get=_models_listing({"gpt-4o-2024-08-06"}), hub=_hub_ok, cuda=lambda: True)
    }
    assert not checks["judge model"].ok and "retired" in checks["judge model"].detail


# -- item 3: cluster evaluation on GPU pods -----------------------------------------------


def test_cluster_evaluation_steps_run_in_gpu_pods():
    """Evaluation pods are started through Pipes from the run worker, not as k8s_job_executor step pods."""
    from assets.definitions import build_definitions
    from assets.evaluation import evaluation_launcher, evaluation_pod_spec
    from ual_dagster.storage import StatePaths

    profile = load_profile("cluster")
    graph = build_definitions(profile).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert "dagster-k8s/config" not in graph.get(key).assets_def.op.tags, key
    spec = evaluation_pod_spec(evaluation_launcher(profile), StatePaths.for_profile(profile).state_dir)
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == profile.training.launcher.image


def test_the_k8s_executor_is_gone_and_the_error_says_what_replaced_it(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("extends: cluster\norchestration: {executor: k8s}\n")
    with pytest.raises(ProfileError, match=r"executor 'k8s' is gone: .*evaluation.launcher \{kind: k8s"):
        load_profile(str(bad))
    old = tmp_path / "old.yaml"
    old.write_text("extends: cluster\nevaluation: {k8s_pod: {gpus: 1}}\n")
    with pytest.raises(ProfileError, match="evaluation.k8s_pod moved into evaluation.launcher"):
        load_profile(str(old))


# -- item 4: gsm8k in the training template, reading "The answer is" ---------------------


def test_gsm8k_ual_includes_upstream_and_changes_only_prompt_and_filters(tmp_path):
    import yaml
    from lm_eval import tasks as lm_tasks
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.tasks import TaskManager

    from ual_dagster.evaluation.lm_eval_runner import TASKS_DIR, render_include_task
    from ual_dagster.train.prompts import render_prompt

    data = tmp_path / "gsm.jsonl"
    data.write_text(json.dumps({"question": "What is 2+3?", "answer": "2+3=5\n#### 5"}) + "\n")
    path = render_include_task("gsm8k_ual", "alpaca", data, tmp_path / "tasks")
    ours = yaml.safe_load((TASKS_DIR / "gsm8k_ual.yaml").read_text())
    assert set(ours) - {"include", "task", "tag"} == {"num_fewshot", "doc_to_text", "filter_list"}
    tm = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    task = tm.load(["gsm8k_ual"])["tasks"]["gsm8k_ual"] if hasattr(tm, "load") else None
    if task is None:  # older TaskManager API
        from lm_eval.tasks import get_task_dict

        task = get_task_dict(["gsm8k_ual"], tm)["gsm8k_ual"]
    doc = next(iter(task.test_docs()))
    assert task.doc_to_text(doc) == render_prompt("What is 2+3?", "", "alpaca")
    upstream = yaml.safe_load((Path(lm_tasks.__file__).parent / "gsm8k" / "gsm8k.yaml").read_text())
    assert task.config.metric_list == upstream["metric_list"]
    assert yaml.safe_load(path.read_text())["include"].endswith("gsm8k/gsm8k.yaml")
    strict = ours["filter_list"][0]["filter"][0]["regex_pattern"]
    f = RegexFilter(regex_pattern=strict)
    outs = [["Step by step ... 18 apples.\nThe answer is: 1,234."], ["so\n#### 42"], ["no number here"]]
    assert [r[0] for r in f.apply(outs, [{}] * 3)] == ["1,234.", "42", "[invalid]"]
    # upstream's strict-match misses MetaMath's form, which is why ours exists
    up = upstream["filter_list"][0]["filter"][0]["regex_pattern"]
    assert RegexFilter(regex_pattern=up).apply([outs[0]], [{}])[0][0] == "[invalid]"


def test_paper_scores_gsm8k_both_ways_with_standard_errors():
    ev = load_profile("paper").evaluation
    assert [(t.name, t.num_fewshot) for t in ev.lm_eval] == [("gsm8k_ual", 0), ("gsm8k", 5)]
    assert ev.bootstrap_iters >= 100  # item 5: 0 reports no stderr at all


# -- item 8: preflight -------------------------------------------------------------------


def _models_listing(models: set[str]):
    def get(url, key):
        return 200, {"data": [{"id": m} for m in sorted(models)]}

    return get


def _hub_ok(repo_id, repo_type, revision, token):
    return None


def test_preflight_paper_offline_fails_naming_key_and_hub():
    env = {k: "" for k in ("OPENAI_API_KEY", "HF_TOKEN")}
    env.update(HF_HUB_OFFLINE="1")
    out = _cli("preflight", "paper", env=env)
    assert out.returncode != 0
    lines = out.stdout.splitlines()
    assert any("OPENAI_API_KEY" in line and "MISSING" in line for line in lines)
    assert any("meta-llama/Llama-2-7b-hf" in line and "unreachable" in line for line in lines)
    assert all(line.startswith("[") for line in lines[:-1])  # one line per check


def test_preflight_default_profile_passes():
    out = _cli("preflight")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("all checks passed")


def test_preflight_paper_all_present_with_patched_clients(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("HF_TOKEN", "hf-test")  # Llama-2 is gated (tests/test_preflight_gated.py)
    profile = load_profile("paper")
    listing = _models_listing({"gpt-4o-2024-08-06", "gpt-4.1-2025-04-14"})
    checks = run_preflight(profile, get=listing, hub=_hub_ok, cuda=lambda: True, free_gb=lambda p: 500.0)
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    names = {c.name for c in checks}
    assert {"elicitation API key", "judge endpoint", "base model on the hub", "disk space for checkpoints"} <= names

    class GatedRepoError(Exception):
        pass

    def gated(repo_id, repo_type, revision, token):
        if repo_id.startswith("meta-llama/"):
            raise GatedRepoError("Access to model meta-llama/Llama-2-7b-hf is restricted")

    no_gpu = run_preflight(profile, get=listing, hub=gated, cuda=lambda: False, free_gb=lambda p: 5.0)
    bad = {c.name: c.detail for c in no_gpu if not c.ok}
    assert "request access" in bad["base model on the hub"]
    assert "GPU for evaluation (evaluation.device: cuda)" in bad and "disk space for checkpoints" in bad
    unlisted = run_preflight(profile, get=_models_listing({"gpt-4o-2024-08-06"}), hub=_hub_ok, cuda=lambda: True)
    assert "not listed" in {c.name: c.detail for c in unlisted}["judge endpoint"]


# -- item 9: pinned revisions --------------------------------------------------------------


@pytest.mark.parametrize("name", ["paper", "cluster", str(ROOT / "examples/profiles/paper_mistral.yaml")])
def test_hub_revisions_are_pinned_commits(name):
    p = load_profile(name)
    assert SHA.match(p.base_model.revision or ""), p.base_model.revision
    for ds in p.datasets.values():
        assert ds.source != "hub" or SHA.match(ds.revision or ""), ds
    assert SHA.match(p.evaluation.alpaca_eval.hub_revision or "")


def test_preflight_refuses_an_unpinned_revision(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    p = _variant(tmp_path, "base_model: {revision: main}\n")
    checks = {c.name: c for c in run_preflight(p, get=_models_listing(set()), hub=_hub_ok, cuda=lambda: True)}
    assert not checks["base model on the hub"].ok and "pin" in checks["base model on the hub"].detail
