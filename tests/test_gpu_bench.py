"""benchmarks/gpu/ (issue 24): the GPU benchmark's every code path on the CPU, so it cannot rot
between GPU runs, and the import set it may use on the GPU machine's image.

The dry run goes through the entry point (`bash benchmarks/gpu/run.sh --cpu-dry-run`) with
this interpreter, and checks results.json: every row there, the rows that need CUDA skipped
with that reason, every other figure finite, the losses within bf16 rounding of float64.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "gpu"

pytestmark = pytest.mark.slow


def _bench():
    if "gpu_bench" not in sys.modules:  # dataclasses look their module up there
        spec = importlib.util.spec_from_file_location("gpu_bench", BENCH / "bench.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_bench"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpu_bench"]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_bench_out")
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BENCH_OUT": str(out)}
    proc = subprocess.run(
        ["bash", str(BENCH / "run.sh"), "--cpu-dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), proc.stdout


def test_dry_run_writes_every_row_with_finite_figures(dry_run):
    results, stdout = dry_run
    assert set(results) == {"meta", "loss", "train", "generate", "forbidden_imports"}
    assert results["meta"]["mode"] == "cpu-dry-run" and results["meta"]["device"] == "cpu"

    plan = _bench().make_plan("cpu-dry-run")
    loss = {(r["impl"], r["tokens"]): r for r in results["loss"]}
    assert set(loss) == {(i, n) for i in ("ual_linear", "liger", "cce", "torch") for n in plan.loss_tokens}
    for (impl, n), row in loss.items():
        if impl in ("liger", "cce"):
            assert row["skipped"] == "needs CUDA (Triton kernels)"
            continue
        assert "skipped" not in row, row
        assert _finite(row["ms"]) and row["ms"] > 0
        assert row["peak_mib"] is None  # no allocator peak on a CPU
        # bf16 inputs, fp32 accumulation: the loss within 1e-3 of float64, d hidden within bf16 rounding
        assert _finite(row["rel_err"]) and row["rel_err"] < 1e-3, row
        assert _finite(row["grad_rel_err"]) and row["grad_rel_err"] < 1e-2, row
        assert f"loss {impl} N={n}: " in stdout

    train = {(r["shape"], r["impl"], r["grad_ckpt"]): r for r in results["train"]}
    assert set(train) == {(s, i, c) for s in plan.shapes for i in ("ual", "hf_trainer") for c in (False, True)}
    for key, row in train.items():
        assert "skipped" not in row, row
        assert _finite(row["tokens_per_s"]) and row["tokens_per_s"] > 0
        assert row["mfu"] is None and row["peak_mib"] is None  # no bf16 peak / allocator on a CPU
        assert _finite(row["flops_per_token"]) and row["steps_timed"] == plan.train_steps
        if row["impl"] == "ual":
            assert row["loss_impl"] == "linear" and _finite(row["final_loss"])
    for shape in plan.shapes:
        # the step's FLOPs do not depend on who runs it
        assert len({row["flops_per_token"] for key, row in train.items() if key[0] == shape}) == 1
        # checkpointing recomputes activations (dropout RNG restored), it does not change the step
        plain, ckpt = train[(shape, "ual", False)]["final_loss"], train[(shape, "ual", True)]["final_loss"]
        assert abs(plain - ckpt) <= 1e-3 * abs(plain)

    (gen,) = results["generate"]
    assert gen["shape"] == plan.gen_shape and _finite(gen["tokens_per_s"]) and gen["tokens_per_s"] > 0

    # one line per figure, and nothing the GPU image lacks was loaded
    assert sum(line.startswith("[gpu-bench") for line in stdout.splitlines()) >= len(results["loss"]) + len(train) + 1
    assert results["forbidden_imports"] == []


def test_bench_imports_without_the_project_dependencies_the_gpu_image_lacks():
    """Import the driver with dagster, duckdb, lm-eval, openai, alpaca-eval and pydantic made
    unimportable (None in sys.modules), as on the GPU machine; only torch-level project modules load."""
    blocked = _bench().FORBIDDEN
    code = (
        "import sys, runpy\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        f"sys.argv = ['bench.py']\n"
        f"ns = runpy.run_path({str(BENCH / 'bench.py')!r}, run_name='bench')\n"
        "import transformers, peft, accelerate\n"
        "from transformers import Trainer, TrainingArguments, LlamaConfig\n"
        "print(sorted(m for m in sys.modules if m.startswith('ual_dagster')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = eval(proc.stdout.strip().splitlines()[-1])
    assert set(loaded) == {
        "ual_dagster",
        "ual_dagster.train",
        "ual_dagster.train.batch",
        "ual_dagster.train.loss",
        "ual_dagster.train.lm_loss",
        "ual_dagster.train.step",
    }


def test_flops_per_token_counts_frozen_matmuls_lora_and_attention():
    """4 per frozen matmul weight (lm_head included, embedding not), 6 per LoRA weight, 12 L d T."""
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    bench = _bench()
    kw = bench.TINY_SHAPES["tiny-untied"]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**kw))
    model = get_peft_model(model, LoraConfig(r=16, target_modules=list(bench.LORA_TARGETS), task_type="CAUSAL_LM"))
    h, f, v, layers = kw["hidden_size"], kw["intermediate_size"], kw["vocab_size"], kw["num_hidden_layers"]
    q = kw["num_attention_heads"] * kw["head_dim"]
    kv = kw["num_key_value_heads"] * kw["head_dim"]
    frozen = layers * (h * q + 2 * h * kv + q * h + 3 * h * f) + v * h
    lora = layers * 16 * ((h + q) + 2 * (h + kv) + (q + h))
    seq = 128
    want = 4 * frozen + 6 * lora + 12 * layers * q * seq
    assert bench.train_flops_per_token(model, seq) == want


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("Tesla T4", None),
    ],
)
def test_bf16_peak_by_device_name(name, tflops):
    assert _bench().peak_for_name(name) == tflops
