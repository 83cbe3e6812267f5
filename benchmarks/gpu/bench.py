"""GPU figures in one run (issue 24): the loss, a LoRA training step, generation.

Run it through `bash benchmarks/gpu/run.sh [--quick | --cpu-dry-run]`, which installs the
wheels of benchmarks/gpu/wheels.txt (Liger-Kernel, Cut Cross-Entropy) first; docs/performance.md
says what each figure means and which targets they are held to.

It needs only torch, transformers, peft and accelerate (as on the GPU machine's image: torch
>= 2.11, transformers >= 5.17) and the project's torch-level modules: the loss
(ual_dagster.train.loss), the trainer's micro-batch loss (lm_loss) and its optimizer step
(step). Never dagster, duckdb, lm-eval, openai or pydantic: results.json lists any of them
found loaded at the end (`forbidden_imports`, a test checks it is empty). The project is not
installed: the repository root goes on sys.path.

Sections, side by side in one run (each in a fresh process, so that a sticky CUDA error or a
crash in one costs only its own rows, and each starts with the GPU's memory free):

a. loss: forward + backward of the lm_head's cross-entropy from hidden states (N, H) and a
   frozen (V, H) weight, bf16: ours (uncertainty_smoothed_linear_loss, per-sample eps),
   Liger-Kernel's fused linear cross-entropy (scalar label smoothing), Cut Cross-Entropy
   (no label smoothing: it has none) and torch (F.linear, logits upcast to fp32 as
   transformers does, F.cross_entropy(label_smoothing=)). Median time, peak memory above the
   inputs, and on a small case each one's relative error against float64.
b. train: one LoRA step (r 16 on q/k/v/o) of random tokens on a Llama-3.2-1B and a
   Llama-3.1-8B shape with random weights in bf16, through the trainer's own step
   (MicroBatchLoss + optimizer_step under accelerate) and through transformers' Trainer
   (label_smoothing_factor), with and without gradient checkpointing: tokens/s, model-FLOPs
   utilisation, peak memory.
c. generate: greedy generation of the 1B shape, tokens/s.

Every row is guarded: one that cannot run (no CUDA for Liger, a wheel missing, out of
memory, the time budget spent) says `"skipped": "<reason>"` and the run goes on.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ual_dagster.train.batch import IGNORE_INDEX, Batch  # noqa: E402
from ual_dagster.train.lm_loss import MicroBatchLoss  # noqa: E402
from ual_dagster.train.loss import uncertainty_smoothed_linear_loss  # noqa: E402
from ual_dagster.train.step import optimizer_step  # noqa: E402

# Never loaded by this benchmark (the GPU image lacks them); checked at the end of the run.
FORBIDDEN = ("dagster", "duckdb", "lm_eval", "openai", "alpaca_eval", "pydantic")

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' datasheets, by a
# substring of torch.cuda.get_device_name(), first match wins: H100 SXM and H200 989, H100
# NVL 835, H100 PCIe 756, A100 312. MFU divides by these. (An H200 of this workplace ran an
# 8k bf16 matmul at 770-800 TFLOP/s, about 80% of 989: read MFU against that ceiling too.)
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
LABEL_SMOOTHING = 0.1  # the scalar eps of Liger, torch and the Trainer; ours draws per sample around it

# Llama shapes (hidden sizes, layers, heads, vocabulary) with random weights; rope settings
# are left at their defaults (they do not change the cost).
SHAPES = {
    "llama-3.2-1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "llama-3.1-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),
}
# The dry run's stand-ins: the same code paths (tied and untied lm_head) at toy size.
TINY_SHAPES = {
    "tiny-tied": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=512,
        tie_word_embeddings=True,
    ),
    "tiny-untied": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=512,
        tie_word_embeddings=False,
    ),
}


@dataclass(frozen=True)
class Plan:
    mode: str  # full | quick | cpu-dry-run
    device: str
    budget_s: float  # rows starting after this many seconds are skipped
    loss_tokens: tuple[int, ...]
    loss_hidden: int
    loss_vocab: int
    loss_check_tokens: int  # the float64 exactness case (same H, V)
    loss_sample_tokens: int  # tokens per sample: ours gets one eps per sample
    loss_warmup: int
    loss_iters: int
    shapes: dict = field(default_factory=dict)
    train_batch: int = 8
    train_seq: int = 1024
    train_warmup: int = 2
    train_steps: int = 5
    train_ckpt: tuple[bool, ...] = (False, True)
    gen_shape: str = "llama-3.2-1b"
    gen_batch: int = 32
    gen_prompt: int = 128
    gen_new_tokens: int = 256


def make_plan(mode: str) -> Plan:
    if mode == "cpu-dry-run":
        return Plan(
            mode=mode,
            device="cpu",
            budget_s=600.0,
            loss_tokens=(256, 512),
            loss_hidden=64,
            loss_vocab=1000,
            loss_check_tokens=96,
            loss_sample_tokens=32,
            loss_warmup=1,
            loss_iters=2,
            shapes=TINY_SHAPES,
            train_batch=2,
            train_seq=32,
            train_warmup=1,
            train_steps=2,
            gen_shape="tiny-tied",
            gen_batch=2,
            gen_prompt=8,
            gen_new_tokens=8,
        )
    quick = mode == "quick"
    return Plan(
        mode=mode,
        device="cuda",
        # 8 minutes (3 for --quick) in all: rows that would start later are skipped.
        budget_s=150.0 if quick else 420.0,
        loss_tokens=(8192,) if quick else (8192, 32768),
        loss_hidden=4096,
        loss_vocab=128256,
        loss_check_tokens=1024,
        loss_sample_tokens=1024,
        loss_warmup=2,
        loss_iters=3 if quick else 5,
        shapes=SHAPES,
        train_warmup=2,
        train_steps=3 if quick else 5,
        train_ckpt=(False,) if quick else (False, True),
        gen_new_tokens=64 if quick else 256,
    )


# ---------------------------------------------------------------------------- output


class Reporter:
    """Prints one line per figure and, with `heartbeat`, a line whenever 5 s passed without one;
    keeps results.json current after every row (a killed run leaves what it had). Each section
    runs in its own process (see main): its Reporter reads results.json as the sections before
    it left it and adds its rows. `started` is the run's start (time.time()), shared by all."""

    def __init__(self, out_dir: Path, plan: Plan, started: float, heartbeat: bool = True):
        self.out_dir = out_dir
        self.started = started
        self.last_print = time.time()
        self.current = "starting"
        path = out_dir / "results.json"
        self.results: dict = json.loads(path.read_text()) if path.is_file() else empty_results()
        self.plan = plan
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if heartbeat:
            threading.Thread(target=self._heartbeat, daemon=True).start()

    def elapsed(self) -> float:
        return time.time() - self.started

    def say(self, msg: str) -> None:
        with self._lock:
            print(f"[gpu-bench {self.elapsed():6.1f}s] {msg}", flush=True)
            self.last_print = time.time()

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            if time.time() - self.last_print >= 5.0:
                self.say(f"... still running: {self.current}")

    def add(self, section: str, row: dict) -> None:
        self.results[section].append(row)
        self.write()

    def write(self) -> None:
        self.results["meta"]["wall_s"] = round(self.elapsed(), 1)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / "results.json.tmp"
        tmp.write_text(json.dumps(_finite_or_none(self.results), indent=1, allow_nan=False) + "\n")
        tmp.replace(self.out_dir / "results.json")

    def over_budget(self) -> str | None:
        if self.elapsed() > self.plan.budget_s:
            return f"time budget spent ({self.elapsed():.0f} s > {self.plan.budget_s:.0f} s for rows to start)"
        return None

    def close(self) -> None:
        self._stop.set()


def empty_results() -> dict:
    return {"meta": {}, "loss": [], "train": [], "generate": [], "forbidden_imports": []}


def _finite_or_none(value):
    """JSON has no NaN / inf: a figure that came out non-finite is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _round(x: float | None, digits: int = 4):
    if x is None:
        return None
    return float(f"{x:.{digits}g}")


def guarded(rep: Reporter, label: str, row: dict, fn: Callable[[], dict]) -> dict:
    """Run one row: its figures, or `skipped` with the reason (budget, OOM, any error)."""
    rep.current = label
    reason = rep.over_budget()
    if reason is None:
        try:
            return {**row, **fn()}
        except torch.cuda.OutOfMemoryError as exc:
            reason = f"out of memory: {str(exc).splitlines()[0]}"
        except Exception as exc:  # one broken row must not end the run; the traceback goes to stderr
            traceback.print_exc()
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            release_memory()
    rep.say(f"{label}: skipped ({reason})")
    return {**row, "skipped": reason}


# ---------------------------------------------------------------------------- device helpers


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak(device: str) -> int:
    """Reset the peak counter; return the bytes allocated now (the row's baseline)."""
    if device != "cuda":
        return 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def peak_mib(device: str, baseline: int = 0) -> float | None:
    """Peak bytes allocated since reset_peak, above `baseline`, in MiB (None on a CPU: no allocator peak)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return round((torch.cuda.max_memory_allocated() - baseline) / 2**20, 1)


def peak_for_name(name: str) -> float | None:
    """The dense bf16 peak (TFLOP/s) of a device named `name`, or None when the table lacks it."""
    for key, tflops in BF16_PEAK_TFLOPS:
        if key in name:
            return tflops
    return None


def bf16_peak_tflops(device: str) -> tuple[float | None, str]:
    """(peak TFLOP/s or None, device name) of the device the run uses."""
    if device != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(0)
    return peak_for_name(name), name


# ---------------------------------------------------------------------------- a. the loss


def loss_impls(device: str) -> dict[str, tuple[Callable | None, str | None, str]]:
    """impl -> (fn(h, w, labels, eps_tokens) -> loss, why it cannot run, the smoothing it applies)."""
    import torch.nn.functional as F

    impls: dict[str, tuple[Callable | None, str | None, str]] = {
        "ual_linear": (
            lambda h, w, y, e: uncertainty_smoothed_linear_loss(h, w, y, e),
            None,
            "per-sample eps",
        ),
        "torch": (
            lambda h, w, y, e: F.cross_entropy(F.linear(h, w).float(), y, label_smoothing=LABEL_SMOOTHING),
            None,
            f"scalar {LABEL_SMOOTHING}",
        ),
    }
    liger_fn, liger_why = None, None
    cce_fn, cce_why = None, None
    if device != "cuda":
        liger_why = cce_why = "needs CUDA (Triton kernels)"
    else:
        try:
            from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

            liger = LigerFusedLinearCrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
            liger_fn = lambda h, w, y, e: liger(w, h, y)  # noqa: E731
        except Exception as exc:  # ImportError, or a Triton / torch mismatch at import
            liger_why = f"liger-kernel not importable ({type(exc).__name__}: {exc}); see benchmarks/gpu/wheels.txt"
        try:
            from cut_cross_entropy import linear_cross_entropy

            cce_fn = lambda h, w, y, e: linear_cross_entropy(h, w, y)  # noqa: E731
        except Exception as exc:
            cce_why = f"cut-cross-entropy not importable ({type(exc).__name__}: {exc}); see benchmarks/gpu/wheels.txt"
    impls["liger"] = (liger_fn, liger_why, f"scalar {LABEL_SMOOTHING}")
    impls["cce"] = (cce_fn, cce_why, "none (CCE has no label smoothing)")
    return {k: impls[k] for k in ("ual_linear", "liger", "cce", "torch")}


def loss_inputs(plan: Plan, n: int, seed: int, ignored_fraction: float = 0.0):
    """hidden (n, H) ~ N(0, 1), weight (V, H) ~ N(0, 0.02) (logits of std about 0.02 sqrt(H)),
    random labels, a fraction of them ignore_index; eps per sample of loss_sample_tokens
    tokens, uniform in [0, 2 * LABEL_SMOOTHING], repeated per token."""
    dev = plan.device  # drawn where they are used: half a billion weights are seconds on a CPU
    g = torch.Generator(device=dev).manual_seed(seed)
    h = torch.randn(n, plan.loss_hidden, generator=g, device=dev).to(torch.bfloat16)
    w = (0.02 * torch.randn(plan.loss_vocab, plan.loss_hidden, generator=g, device=dev)).to(torch.bfloat16)
    y = torch.randint(0, plan.loss_vocab, (n,), generator=g, device=dev)
    if ignored_fraction:
        y[torch.rand(n, generator=g, device=dev) < ignored_fraction] = IGNORE_INDEX
    samples = math.ceil(n / plan.loss_sample_tokens)
    eps = 2 * LABEL_SMOOTHING * torch.rand(samples, generator=g, device=dev)
    return h, w, y, eps.repeat_interleave(plan.loss_sample_tokens)[:n]


def reference_loss(h, w, y, eps):
    """float64 mean over targets of (1 - eps) (-log p_y) + eps mean_v(-log p_v), and d/dh."""
    h64 = h.detach().double().requires_grad_(True)
    logp = torch.log_softmax(h64 @ w.detach().double().t(), dim=-1)
    keep = y != IGNORE_INDEX
    lp = logp[keep]
    e = eps[keep].double()
    loss = ((1 - e) * -lp.gather(1, y[keep][:, None]).squeeze(1) + e * -lp.mean(dim=1)).mean()
    loss.backward()
    return float(loss.detach()), h64.grad


def loss_exactness(fn: Callable, smoothing: str, plan: Plan) -> dict:
    h, w, y, eps = loss_inputs(plan, plan.loss_check_tokens, seed=1, ignored_fraction=0.1)
    if smoothing.startswith("scalar"):
        eps = torch.full_like(eps, LABEL_SMOOTHING)
    elif smoothing.startswith("none"):
        eps = torch.zeros_like(eps)
    want, want_grad = reference_loss(h, w, y, eps)
    h = h.detach().requires_grad_(True)
    got = fn(h, w, y, eps)
    got.backward()
    rel = abs(float(got) - want) / abs(want)
    grad_rel = float((h.grad.double() - want_grad).norm() / want_grad.norm())
    return {"rel_err": _round(rel, 3), "grad_rel_err": _round(grad_rel, 3)}


def loss_timing(fn: Callable, plan: Plan, n: int) -> dict:
    h, w, y, eps = loss_inputs(plan, n, seed=2)
    h.requires_grad_(True)

    def once() -> float:
        h.grad = None
        sync(plan.device)
        t0 = time.perf_counter()
        fn(h, w, y, eps).backward()
        sync(plan.device)
        return time.perf_counter() - t0

    for _ in range(plan.loss_warmup):  # kernel compilation / autotuning stay out of the figures
        once()
    h.grad = None
    base = reset_peak(plan.device)
    times = [once() for _ in range(plan.loss_iters)]
    peak = peak_mib(plan.device, base)
    return {"ms": _round(1000 * statistics.median(times), 4), "peak_mib": peak, "iters": plan.loss_iters}


def run_loss(rep: Reporter, plan: Plan) -> None:
    impls = loss_impls(plan.device)
    rep.say(
        f"a. loss: H={plan.loss_hidden} V={plan.loss_vocab} bf16, lm_head frozen, every token a target; "
        f"rel_err on N={plan.loss_check_tokens} (10% ignored) against float64"
    )
    errors: dict[str, dict] = {}
    for impl, (fn, why, smoothing) in impls.items():
        if fn is not None:
            label = f"loss {impl} exactness"
            errors[impl] = guarded(rep, label, {}, lambda fn=fn, s=smoothing: loss_exactness(fn, s, plan))
            if "skipped" not in errors[impl]:
                rep.say(
                    f"{label}: rel_err {errors[impl]['rel_err']:.2e} (loss), "
                    f"{errors[impl]['grad_rel_err']:.2e} (d hidden), smoothing {smoothing}"
                )
    for n in plan.loss_tokens:
        for impl, (fn, why, smoothing) in impls.items():
            row = {
                "impl": impl,
                "tokens": n,
                "hidden": plan.loss_hidden,
                "vocab": plan.loss_vocab,
                "smoothing": smoothing,
            }
            label = f"loss {impl} N={n}"
            if fn is None:
                rep.say(f"{label}: skipped ({why})")
                rep.add("loss", {**row, "skipped": why})
                continue
            if "skipped" in errors.get(impl, {}):
                rep.say(f"{label}: skipped (its exactness check failed)")
                rep.add("loss", {**row, "skipped": f"exactness check: {errors[impl]['skipped']}"})
                continue
            out = guarded(rep, label, row, lambda fn=fn, n=n: loss_timing(fn, plan, n))
            if "skipped" not in out:
                out.update(errors.get(impl, {}))
                peak = "n/a on CPU" if out["peak_mib"] is None else f"{out['peak_mib']:.0f} MiB"
                rep.say(f"{label}: {out['ms']:.2f} ms fwd+bwd, peak {peak} above inputs, rel_err {out['rel_err']:.2e}")
            rep.add("loss", out)


# ---------------------------------------------------------------------------- b. training


def build_model(plan: Plan, shape: str):
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**plan.shapes[shape], pad_token_id=0, bos_token_id=1, eos_token_id=2)
    # bf16 weights as the trainer loads them on a GPU; the dry run too, so that it takes the
    # GPU's dtype paths (CPU autocast does bf16)
    dtype = torch.bfloat16
    torch.manual_seed(0)
    with torch.device(plan.device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model


def build_lora_model(plan: Plan, shape: str, grad_ckpt: bool):
    """The trainer's _load_model on a random-weight model: checkpointing, then LoRA r 16 on q/k/v/o."""
    from peft import LoraConfig, get_peft_model

    model = build_model(plan, shape)
    if grad_ckpt:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    torch.manual_seed(0)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def train_flops_per_token(model, seq: int) -> float:
    """Model FLOPs per token of a LoRA step (forward + backward, no recomputation counted).

    Frozen matmul weights P (every nn.Linear outside the adapters, the lm_head included, the
    embedding lookup not): forward 2P, backward only the input gradients 2P, so 4P. The
    trainable LoRA weights: 6 per parameter. Attention scores and values, which have no
    weights: 12 L d T (forward 4 L d T, backward twice that), counted over the full T x T
    matrix as in PaLM's MFU (causal masking would halve it).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    frozen = sum(
        m.weight.numel()
        for name, m in base.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in name and not m.weight.requires_grad
    )
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cfg = base.config
    attention = 12 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * seq
    return 4.0 * frozen + 6.0 * lora + attention


def train_batches(plan: Plan, vocab: int, steps: int) -> list[Batch]:
    """Random tokens, no padding, every next token a target, one eps per sample around 0.1."""
    g = torch.Generator(device="cpu").manual_seed(3)
    out = []
    for _ in range(steps):
        ids = torch.randint(3, vocab, (plan.train_batch, plan.train_seq), generator=g)
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, :-1] = ids[:, 1:]
        eps = 2 * LABEL_SMOOTHING * torch.rand(plan.train_batch, generator=g)
        out.append(Batch(ids, torch.ones_like(ids), labels, eps).to(plan.device))
    return out


def reset_accelerate_state() -> None:
    """accelerate keeps one process-wide state; each row makes its own Accelerator."""
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    except (ImportError, AttributeError):
        pass


def train_ours(plan: Plan, shape: str, grad_ckpt: bool) -> dict:
    """The trainer's loop: MicroBatchLoss (loss_impl auto) and optimizer_step under accelerate."""
    from accelerate import Accelerator
    from transformers import get_scheduler

    reset_accelerate_state()
    model = build_lora_model(plan, shape, grad_ckpt)
    flops = train_flops_per_token(model, plan.train_seq)
    accelerator = Accelerator(mixed_precision="bf16", cpu=plan.device != "cuda")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, weight_decay=0.0)
    total = plan.train_warmup + plan.train_steps
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=0, num_training_steps=total)
    model, optimizer = accelerator.prepare(model, optimizer)
    batches = train_batches(plan, plan.shapes[shape]["vocab_size"], total)
    probe = batches[0].input_ids[:1, :64]
    loss_fn = MicroBatchLoss.for_model(model, accelerator.unwrap_model(model), "auto", 1024, probe)
    model.train()
    base = reset_peak(plan.device)
    times, losses = [], []
    for i, batch in enumerate(batches):
        sync(plan.device)
        t0 = time.perf_counter()
        totals = optimizer_step(model, loss_fn, [batch], accelerator, optimizer, scheduler, trainable, 1.0)
        sync(plan.device)
        if i >= plan.train_warmup:
            times.append(time.perf_counter() - t0)
            losses.append(totals.mean_loss)
    row = _train_figures(plan, flops, times, peak_mib(plan.device, 0), base)
    return {**row, "loss_impl": loss_fn.impl, "final_loss": _round(losses[-1], 5)}  # loss_impl: linear or logits


def _train_figures(plan: Plan, flops_per_token: float, times: list[float], peak: float | None, base: int) -> dict:
    tokens = plan.train_batch * plan.train_seq
    tps = tokens * len(times) / sum(times)
    tflops, _ = bf16_peak_tflops(plan.device)
    mfu = None if tflops is None else tps * flops_per_token / (tflops * 1e12)
    return {
        "tokens_per_s": _round(tps, 5),
        "mfu": _round(mfu, 4),
        "peak_mib": peak,
        "step_ms": _round(1000 * statistics.median(times), 4),
        "flops_per_token": _round(flops_per_token, 6),
        "steps_timed": len(times),
        # allocated when the timed steps start (weights, adapters): the same in every row of a
        # shape unless an earlier row leaked
        "start_mib": None if plan.device != "cuda" else round(base / 2**20, 1),
    }


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def train_hf(plan: Plan, shape: str, grad_ckpt: bool) -> dict:
    """The same step through transformers' Trainer: bf16, AdamW, cosine, clip 1.0, label_smoothing_factor."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    reset_accelerate_state()
    model = build_lora_model(plan, shape, grad_ckpt)
    flops = train_flops_per_token(model, plan.train_seq)
    total = plan.train_warmup + plan.train_steps
    batches = train_batches(plan, plan.shapes[shape]["vocab_size"], total)
    rows = [
        {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
        for b in batches
        for ids in b.input_ids.cpu()
    ]
    times: list[float] = []
    device = plan.device

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            sync(device)
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=plan.train_batch,
            max_steps=total,
            learning_rate=2e-4,
            lr_scheduler_type="cosine",
            weight_decay=0.0,
            max_grad_norm=1.0,
            label_smoothing_factor=LABEL_SMOOTHING,
            bf16=True,
            use_cpu=device != "cuda",
            gradient_checkpointing=grad_ckpt,
            optim="adamw_torch",
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=ListDataset(rows), callbacks=[StepTimer()])
        base = reset_peak(device)
        trainer.train()
    if len(times) != total:
        raise RuntimeError(f"the Trainer ran {len(times)} steps, expected {total}")
    return _train_figures(plan, flops, times[plan.train_warmup :], peak_mib(device, 0), base)


def run_train(rep: Reporter, plan: Plan) -> None:
    tokens = plan.train_batch * plan.train_seq
    rep.say(
        f"b. train: LoRA r16 q/k/v/o, batch x seq = {plan.train_batch} x {plan.train_seq} ({tokens} tokens), "
        f"{plan.train_warmup} warm-up + {plan.train_steps} timed steps"
    )
    for shape in plan.shapes:
        for grad_ckpt in plan.train_ckpt:
            for impl, fn in (("ual", train_ours), ("hf_trainer", train_hf)):
                row = {
                    "shape": shape,
                    "impl": impl,
                    "grad_ckpt": grad_ckpt,
                    "batch": plan.train_batch,
                    "seq": plan.train_seq,
                }
                label = f"train {shape} {impl} grad_ckpt={grad_ckpt}"
                out = guarded(rep, label, row, lambda fn=fn, s=shape, c=grad_ckpt: fn(plan, s, c))
                if "skipped" not in out:
                    mfu = "n/a (no peak for this device)" if out["mfu"] is None else f"{100 * out['mfu']:.1f}%"
                    peak = "n/a on CPU" if out["peak_mib"] is None else f"{out['peak_mib']:.0f} MiB"
                    rep.say(f"{label}: {out['tokens_per_s']:.0f} tokens/s, MFU {mfu}, peak {peak}")
                rep.add("train", out)


# ---------------------------------------------------------------------------- c. generation


def generate(plan: Plan) -> dict:
    model = build_model(plan, plan.gen_shape).eval()
    vocab = plan.shapes[plan.gen_shape]["vocab_size"]
    g = torch.Generator(device="cpu").manual_seed(4)
    ids = torch.randint(3, vocab, (plan.gen_batch, plan.gen_prompt), generator=g).to(plan.device)
    mask = torch.ones_like(ids)

    def run(new: int) -> float:
        sync(plan.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=new,
                min_new_tokens=new,  # random weights may pick eos: every sequence runs to the end
                pad_token_id=0,
            )
        sync(plan.device)
        if out.shape != (plan.gen_batch, plan.gen_prompt + new):
            raise RuntimeError(f"generate returned shape {tuple(out.shape)}")
        return time.perf_counter() - t0

    run(4)  # warm-up
    base = reset_peak(plan.device)
    seconds = run(plan.gen_new_tokens)
    return {
        "tokens_per_s": _round(plan.gen_batch * plan.gen_new_tokens / seconds, 5),
        "seconds": _round(seconds, 4),
        "peak_mib": peak_mib(plan.device, 0),
        "weights_mib": None if plan.device != "cuda" else round(base / 2**20, 1),
    }


def run_generate(rep: Reporter, plan: Plan) -> None:
    rep.say(
        f"c. generate: {plan.gen_shape} greedy, batch {plan.gen_batch}, prompt {plan.gen_prompt}, "
        f"{plan.gen_new_tokens} new tokens (dynamic cache)"
    )
    row = {
        "shape": plan.gen_shape,
        "batch": plan.gen_batch,
        "prompt_tokens": plan.gen_prompt,
        "new_tokens": plan.gen_new_tokens,
    }
    label = f"generate {plan.gen_shape}"
    out = guarded(rep, label, row, lambda: generate(plan))
    if "skipped" not in out:
        rep.say(f"{label}: {out['tokens_per_s']:.0f} new tokens/s ({out['seconds']:.2f} s)")
    rep.add("generate", out)


# ---------------------------------------------------------------------------- main


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("transformers", "peft", "accelerate", "triton", "liger_kernel", "cut_cross_entropy"):
        try:
            from importlib.metadata import version

            out[name] = version(name.replace("_", "-"))
        except Exception:
            out[name] = None
    return out


def forbidden_imports() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)


SECTIONS = {"loss": run_loss, "train": run_train, "generate": run_generate}


def run_section(section: str, plan: Plan, out_dir: Path, started: float) -> int:
    """One section in this process: its rows into results.json, and the modules it loaded."""
    if plan.device == "cpu":
        torch.set_num_threads(min(4, os.cpu_count() or 1))
    rep = Reporter(out_dir, plan, started)
    tflops, device_name = bf16_peak_tflops(plan.device)
    rep.results["meta"].update({"device": device_name, "bf16_peak_tflops": tflops})
    try:
        SECTIONS[section](rep, plan)
    finally:
        rep.results["forbidden_imports"] = sorted(set(rep.results["forbidden_imports"]) | set(forbidden_imports()))
        rep.write()
        rep.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer sizes and steps: at most 3 minutes on an H100/H200")
    mode.add_argument("--cpu-dry-run", action="store_true", help="tiny shapes on the CPU: every code path, no figures")
    parser.add_argument("--out", default=os.environ.get("GPU_BENCH_OUT", "gpu_bench_out"), help="results folder")
    parser.add_argument("--section", choices=sorted(SECTIONS), help=argparse.SUPPRESS)  # internal: one section
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)  # internal: the run's start
    args = parser.parse_args(argv)
    flag = ["--cpu-dry-run"] if args.cpu_dry_run else ["--quick"] if args.quick else []
    plan = make_plan("cpu-dry-run" if args.cpu_dry_run else "quick" if args.quick else "full")
    out_dir = Path(args.out)
    # transformers >= 5.2x renames gradient_checkpointing to activation_checkpointing with a
    # FutureWarning per call; 5.17 (the GPU image) knows only the old name, which both accept.
    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.section:
        return run_section(args.section, plan, out_dir, args.started or time.time())

    if plan.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --cpu-dry-run to check the code paths on the CPU", file=sys.stderr)
        return 2
    started = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").unlink(missing_ok=True)
    rep = Reporter(out_dir, plan, started, heartbeat=False)
    rep.results["meta"] = {
        "mode": plan.mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "versions": _versions(),
        "budget_s": plan.budget_s,
        "section_errors": {},
    }
    rep.write()
    rep.say(f"mode {plan.mode}; results in {out_dir / 'results.json'}")
    # Each section in a fresh process: a sticky CUDA error (a third-party kernel's illegal
    # access, say) or a crash costs only that section's remaining rows, and each section
    # starts with the GPU's memory free.
    errors = {}
    for section in SECTIONS:
        cmd = [sys.executable, str(Path(__file__).resolve()), *flag, "--out", str(out_dir)]
        rc = subprocess.call([*cmd, "--section", section, "--started", repr(started)])
        if rc != 0:
            errors[section] = f"its process ended with exit code {rc}; rows it had not written are missing"
            rep.say(f"section {section}: {errors[section]}")
    rep = Reporter(out_dir, plan, started, heartbeat=False)  # what the sections wrote
    rep.results["meta"]["section_errors"] = errors
    rep.results["forbidden_imports"] = sorted(set(rep.results["forbidden_imports"]) | set(forbidden_imports()))
    rep.write()
    skipped = sum("skipped" in r for s in SECTIONS for r in rep.results[s])
    rep.say(f"done in {rep.elapsed():.0f} s; {skipped} rows skipped; {out_dir / 'results.json'}")
    if rep.results["forbidden_imports"]:
        rep.say(f"WARNING: loaded modules this benchmark must not need: {rep.results['forbidden_imports']}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
