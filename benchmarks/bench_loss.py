"""The UAL loss through the logits against straight from the hidden states, side by side.

Setting (default, CPU): hidden (N, H) = (2048, 512), lm_head weight (V, H) with
V = 128,256, fp32, every token a target, a different eps per token. Methods:

- logits:   F.linear(hidden, weight) + uncertainty_smoothed_loss: the baseline of every ratio
- linear:   uncertainty_smoothed_linear_loss (no (N, V) tensor)
- torch_ls: F.linear + F.cross_entropy(label_smoothing=0.1): torch's own, one global eps
- liger:    Liger-Kernel's LigerFusedLinearCrossEntropyLoss(label_smoothing=0.1), one global
            eps; CUDA only, reported as "not installed" / "needs CUDA" otherwise

Sections, all in this one run:

1. exactness: both UAL paths against a float64 reference (log_softmax of float64
   logits) on a small case with bias, per-token eps and 30% ignored positions: the
   largest relative error of the value and of the hidden / weight / bias gradients.
2. extra peak memory: each method in its own fresh subprocess allocates its inputs,
   touches them, resets and reads its high-water mark (CPU: VmHWM, reset through
   /proc/self/clear_refs; CUDA: torch.cuda.max_memory_allocated), runs forward +
   backward once and reads it again.
   Reported in units of the (N, V) fp32 logits. Targets: linear <= 0.10, logits >= 2.0.
3. time: one subprocess runs the methods in interleaved rounds after a warm-up each;
   median and min per method of the wall time and (CPU) of the process CPU time, as a
   ratio to `logits` (target: linear <= 1.3). `--time-repeats` such subprocesses run
   one after another, to show how stable the ratios are on a busy machine. On CPU the
   children run with `--threads` (default 1) threads so that CPU time is compute time.
4. trainer (CPU, unless --skip-trainer): train_lora with loss_impl linear and logits,
   each in a fresh subprocess, on (a) a tiny Llama with a 128,256 vocabulary (LoRA on
   the attention projections, 2 steps of 8 Alpaca samples up to 256 tokens): peak RSS
   of the process; (b) the tiny profile's model (V = 2,048, H = 128, 2 layers) with the
   profile's training settings on 128 Alpaca samples: CPU seconds of train_lora, and
   what loss_impl `auto` picks for it.

The weight does not require grad by default (LoRA leaves the lm_head frozen);
--weight-grad adds its gradient (an fp32 (V, H) accumulator in the linear path, V x H
gradients in every path) to every method.

Usage:
  python benchmarks/bench_loss.py                                  # the CPU setting above
  python benchmarks/bench_loss.py --device cuda --dtype bfloat16 --tokens 16384 \\
      --hidden 4096 --vocab 128256 --skip-trainer                  # the paper-scale GPU setting
  python benchmarks/bench_loss.py --suite logits                   # the logits-only suite (below)

--suite logits is the earlier benchmark of `uncertainty_smoothed_loss` alone against
F.cross_entropy (plain and label_smoothing=0.1) and transformers' LabelSmoother on fp32
logits (4, 1024, 32000): time relative to cross_entropy and extra peak memory in units
of the logits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script (and as its own subprocess): make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The shared data folder beside the checkout (read by path, never copied): the first
# ancestor folder holding shared/data/alpaca, so a git worktree deeper down finds it too.
ALPACA = next(
    (
        d / "shared" / "data" / "alpaca" / "alpaca_5000.json"
        for d in Path(__file__).resolve().parents
        if (d / "shared" / "data" / "alpaca" / "alpaca_5000.json").is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca" / "alpaca_5000.json",
)
METHODS = ["logits", "linear", "torch_ls", "liger"]
LOGITS_SUITE_METHODS = ["ce", "ual_per_sample", "ce_ls", "label_smoother"]


# ---------------------------------------------------------------- linear suite: inputs and methods


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _make_inputs(a):
    import torch

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(a.tokens, a.hidden, generator=g)
    weight = torch.randn(a.vocab, a.hidden, generator=g) / a.hidden**0.5 * 2
    labels = torch.randint(0, a.vocab, (a.tokens,), generator=g)
    eps = torch.rand(a.tokens, generator=g) * 0.2
    dt = _dtype(a.dtype)
    hidden = hidden.to(a.device, dt).requires_grad_()
    weight = weight.to(a.device, dt).requires_grad_(a.weight_grad)
    return hidden, weight, labels.to(a.device), eps.to(a.device)


def _liger_unavailable(device: str) -> str | None:
    try:
        import liger_kernel.transformers  # noqa: F401
    except ImportError:
        return "not installed"
    return None if device == "cuda" else "needs CUDA"


def _loss_fn(method: str, a):
    import torch.nn.functional as F

    from ual_dagster.config.training import TrainingConfig
    from ual_dagster.train.loss import uncertainty_smoothed_linear_loss, uncertainty_smoothed_loss

    logits_chunk = TrainingConfig().loss_chunk_tokens
    if method == "logits":
        return lambda h, w, y, e: uncertainty_smoothed_loss(F.linear(h, w), y, e, chunk_tokens=logits_chunk)
    if method == "linear":
        return lambda h, w, y, e: uncertainty_smoothed_linear_loss(h, w, y, e, chunk_tokens=a.chunk_tokens)
    if method == "torch_ls":
        return lambda h, w, y, e: F.cross_entropy(F.linear(h, w), y, label_smoothing=0.1)
    if method == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        liger = LigerFusedLinearCrossEntropyLoss(label_smoothing=0.1)
        return lambda h, w, y, e: liger(w, h, y)
    raise ValueError(method)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _step(fn, hidden, weight, labels, eps, device) -> tuple[float, float]:
    hidden.grad = weight.grad = None
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn(hidden, weight, labels, eps).backward()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _methods(a) -> list[str]:
    return [m for m in METHODS if not (m == "liger" and _liger_unavailable(a.device))]


# ---------------------------------------------------------------- linear suite: children


def child_exactness() -> None:
    """Small case, both UAL paths against float64: largest relative error per output."""
    import torch

    from ual_dagster.train.loss import uncertainty_smoothed_linear_loss, uncertainty_smoothed_loss

    g = torch.Generator().manual_seed(1)
    N, H, V = 300, 64, 1000
    hidden, weight, bias = (
        torch.randn(N, H, generator=g),
        torch.randn(V, H, generator=g) / 4,
        torch.randn(V, generator=g),
    )
    labels = torch.randint(0, V, (N,), generator=g)
    labels[torch.rand(N, generator=g) < 0.3] = -100
    eps = torch.rand(N, generator=g) * 0.3

    def run(fn, dtype):
        leaves = [t.to(dtype).clone().requires_grad_() for t in (hidden, weight, bias)]
        value = fn(*leaves)
        value.backward()
        return [value.detach().double()] + [t.grad.double() for t in leaves]

    def reference(h, w, b):
        logp = (h @ w.T + b).log_softmax(-1)
        mask = labels != -100
        nll = -logp.gather(-1, labels.clamp(min=0)[:, None]).squeeze(-1)
        e = eps.double()
        return (((1 - e) * nll + e * (-logp.mean(-1))) * mask).sum() / mask.sum()

    want = run(reference, torch.float64)
    paths = {
        "logits": lambda h, w, b: uncertainty_smoothed_loss(h @ w.T + b, labels, eps),
        "linear": lambda h, w, b: uncertainty_smoothed_linear_loss(h, w, labels, eps, bias=b, chunk_tokens=37),
    }
    out = {}
    for name, fn in paths.items():
        got = run(fn, torch.float32)
        out[name] = [float((x - y).abs().max() / y.abs().max()) for x, y in zip(got, want)]
    print(json.dumps(out))


def child_memory(method: str, a) -> None:
    import torch

    fn = _loss_fn(method, a)
    hidden, weight, labels, eps = _make_inputs(a)
    with torch.no_grad():
        hidden.add_(0.0)  # touch every page so it counts in the baseline
        weight.add_(0.0)
    if a.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        # Making the inputs passed through temporaries as large as the weight: reset the
        # high-water mark to the current RSS so that they do not hide the loss's own peak.
        _reset_peak_rss()
        before = _peak_rss()
    fn(hidden, weight, labels, eps).backward()
    if a.device == "cuda":
        torch.cuda.synchronize()
        after = torch.cuda.max_memory_allocated()
    else:
        after = _peak_rss()
    print(json.dumps({"extra_bytes": after - before}))


def _reset_peak_rss() -> None:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss() -> int:
    """VmHWM of this process in bytes (not getrusage: its maximum cannot be reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_time(a) -> None:
    import torch

    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    methods = _methods(a)
    fns = {m: _loss_fn(m, a) for m in methods}
    inputs = _make_inputs(a)
    for m in methods:
        _step(fns[m], *inputs, a.device)
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(a.rounds):
        for m in methods:
            w, c = _step(fns[m], *inputs, a.device)
            wall[m].append(w)
            cpu[m].append(c)
    print(json.dumps({"wall": wall, "cpu": cpu}))


# ---------------------------------------------------------------- trainer section


def _alpaca_examples(n: int):
    from ual_dagster.train.records import TrainExample

    if not ALPACA.is_file():
        raise SystemExit(f"trainer section: {ALPACA} not found (use --skip-trainer)")
    rows = json.loads(ALPACA.read_text())[:n]
    return [TrainExample(instruction=r["instruction"], input=r["input"], output=r["output"], epsilon=0.1) for r in rows]


def build_trainer_bases(tmp: Path, examples) -> dict[str, str]:
    """The tiny profile's architecture (random weights, a tokenizer trained on the data),
    and the same with its (tied) embedding grown to a 128,256-row vocabulary."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ual_dagster.config.loader import load_profile
    from ual_dagster.storage.artifacts import ArtifactStore
    from ual_dagster.train.base_model import build_base_model
    from ual_dagster.train.prompts import render_text

    profile = load_profile("tiny")
    tiny_cfg = profile.base_model.model_copy(
        update={"tiny": profile.base_model.tiny.model_copy(update={"pretrain_steps": 0})}
    )
    texts = [render_text(e.instruction, e.input, e.output, "alpaca") for e in examples]
    tiny = build_base_model(tiny_cfg, texts, ArtifactStore(tmp / "artifacts")).path
    big = tmp / "vocab128k"
    model = AutoModelForCausalLM.from_pretrained(tiny)
    model.resize_token_embeddings(128256, mean_resizing=False)
    model.save_pretrained(big)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(big)
    return {"tiny": tiny, "vocab128k": str(big)}


def _trainer_cfg(kind: str, impl: str):
    from ual_dagster.config.loader import load_profile
    from ual_dagster.config.training import LoraConfig

    update = {"loss_impl": impl, "precision": "fp32", "save_every_steps": 10_000, "epochs": 1}
    if kind == "vocab128k":
        lora = LoraConfig(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        update |= {"lora": lora, "batch_size": 8, "max_length": 256}
    return load_profile("tiny").training.model_copy(update=update)


def child_trainer(kind: str, impl: str, base: str, n_examples: int) -> None:
    import torch

    from ual_dagster.train.trainer import train_lora

    torch.set_num_threads(1)
    examples = _alpaca_examples(n_examples)
    cfg = _trainer_cfg(kind, impl)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as out:
        result = train_lora(base, examples, cfg, Path(out))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(
        json.dumps(
            {
                "impl": result.metadata["loss_impl"],
                "peak_rss": after.ru_maxrss * 1024,
                "rss_before": before.ru_maxrss * 1024,
                "cpu_s": cpu,
                "loop_s": result.metadata["train_seconds_this_run"],
                "steps": result.steps,
            }
        )
    )


# ---------------------------------------------------------------- driver


def _run_child(args: list[str], env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _shape_args(a) -> list[str]:
    out = ["--tokens", str(a.tokens), "--hidden", str(a.hidden), "--vocab", str(a.vocab)]
    out += ["--dtype", a.dtype, "--device", a.device, "--threads", str(a.threads), "--rounds", str(a.rounds)]
    if a.chunk_tokens is not None:
        out += ["--chunk-tokens", str(a.chunk_tokens)]
    return out + (["--weight-grad"] if a.weight_grad else [])


def linear_suite(a) -> None:
    import torch

    from ual_dagster.train.loss import linear_chunk_tokens

    logits_bytes = a.tokens * a.vocab * 4
    chunk = a.chunk_tokens or linear_chunk_tokens(a.vocab, torch.device(a.device))
    print(
        f"N={a.tokens} H={a.hidden} V={a.vocab} {a.dtype} on {a.device}, weight requires grad: {a.weight_grad}; "
        f"(N, V) fp32 logits = {logits_bytes / 2**20:.0f} MiB; linear chunk_tokens={chunk}"
    )
    if a.device == "cuda" and not _liger_unavailable("cuda"):
        print("liger: installed")
    else:
        print(f"liger: {_liger_unavailable(a.device)}")

    if "1" in a.sections:
        exact = _run_child(["--child", "exactness"])
        print("\n1. exactness vs float64 (largest relative error: value, d hidden, d weight, d bias)")
        for name, errs in exact.items():
            print(f"   {name:8s} " + "  ".join(f"{e:.1e}" for e in errs))

    if "2" in a.sections:
        print("\n2. extra peak memory of forward + backward (fresh subprocess each)")
        for m in METHODS:
            why = _liger_unavailable(a.device) if m == "liger" else None
            if why:
                print(f"   {m:8s} {why}")
                continue
            extra = _run_child(["--child", "memory", "--method", m, *_shape_args(a)])["extra_bytes"]
            target = {"linear": "  (target <= 0.10)", "logits": "  (expected >= 2.0)"}.get(m, "")
            print(f"   {m:8s} {extra / 2**20:8.0f} MiB = {extra / logits_bytes:5.2f}x the (N, V) fp32 logits{target}")

    if "3" in a.sections:
        print(f"\n3. forward + backward time, {a.rounds} interleaved rounds, ratio to `logits` (target linear <= 1.3)")
        for rep in range(a.time_repeats):
            t = _run_child(["--child", "time", *_shape_args(a)])
            base_wall = statistics.median(t["wall"]["logits"])
            base_cpu = statistics.median(t["cpu"]["logits"])
            print(f"   run {rep + 1}:")
            for m in t["wall"]:
                wall, cpu = t["wall"][m], t["cpu"][m]
                line = (
                    f"     {m:8s} wall median {statistics.median(wall) * 1000:8.0f} ms ({statistics.median(wall) / base_wall:4.2f}x)"
                    f", min {min(wall) * 1000:8.0f} ms ({min(wall) / min(t['wall']['logits']):4.2f}x)"
                )
                if a.device == "cpu":
                    line += f"; cpu median {statistics.median(cpu) * 1000:8.0f} ms ({statistics.median(cpu) / base_cpu:4.2f}x)"
                print(line)

    if a.skip_trainer or a.device != "cpu" or "4" not in a.sections:
        return
    print("\n4. train_lora, each loss_impl in a fresh subprocess (1 thread)")
    with tempfile.TemporaryDirectory() as tmp:
        bases = build_trainer_bases(Path(tmp), _alpaca_examples(128))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        peaks = {}
        for impl in ("logits", "linear"):
            peaks[impl] = _run_child(
                [
                    "--child",
                    "trainer",
                    "--kind",
                    "vocab128k",
                    "--impl",
                    impl,
                    "--base",
                    bases["vocab128k"],
                    "--examples",
                    "16",
                ],
                env,
            )
        biggest = 8 * 256 * 128256 * 4
        print(f"   (a) V=128,256, LoRA q/k/v/o, batch 8 x up to 256 tokens (logits up to {biggest / 2**20:.0f} MiB):")
        for impl, r in peaks.items():
            print(
                f"       {impl:7s} peak RSS {r['peak_rss'] / 2**20:7.0f} MiB "
                f"(+{(r['peak_rss'] - r['rss_before']) / 2**20:6.0f} MiB over the process before train_lora)"
            )
        saved = peaks["logits"]["peak_rss"] - peaks["linear"]["peak_rss"]
        print(f"       linear saves {saved / 2**20:.0f} MiB of peak RSS")
        runs: dict[str, list[dict]] = {"logits": [], "linear": [], "auto": []}
        for _ in range(a.trainer_rounds):
            for impl in runs:
                runs[impl].append(
                    _run_child(
                        [
                            "--child",
                            "trainer",
                            "--kind",
                            "tiny",
                            "--impl",
                            impl,
                            "--base",
                            bases["tiny"],
                            "--examples",
                            "128",
                        ],
                        env,
                    )
                )
        print("   (b) the tiny profile's model (V=2,048), its training settings, 128 samples, 1 epoch:")
        base_cpu = statistics.median(r["cpu_s"] for r in runs["logits"])
        for impl, rs in runs.items():
            cpu = [r["cpu_s"] for r in rs]
            print(
                f"       {impl:7s} (-> {rs[0]['impl']:6s}) CPU s {', '.join(f'{c:.1f}' for c in cpu)}; "
                f"median {statistics.median(cpu) / base_cpu:4.2f}x logits; loop wall s "
                + ", ".join(f"{r['loop_s']:.1f}" for r in rs)
            )


# ---------------------------------------------------------------- logits suite (uncertainty_smoothed_loss alone)


def _logits_suite_inputs(rows: int, tokens: int, vocab: int):
    import torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, tokens, vocab, generator=g).requires_grad_()
    labels = torch.randint(0, vocab, (rows, tokens), generator=g)
    eps = torch.linspace(0.0, 0.2, rows)
    return logits, labels, eps


def _logits_suite_fn(method: str, chunk_tokens: int):
    import torch.nn.functional as F

    from ual_dagster.train.loss import uncertainty_smoothed_loss

    if method == "ce":
        return lambda z, y, eps: F.cross_entropy(z.view(-1, z.shape[-1]), y.view(-1))
    if method == "ce_ls":
        return lambda z, y, eps: F.cross_entropy(z.view(-1, z.shape[-1]), y.view(-1), label_smoothing=0.1)
    if method == "label_smoother":
        from transformers.trainer_pt_utils import LabelSmoother

        smoother = LabelSmoother(epsilon=0.1)
        return lambda z, y, eps: smoother({"logits": z}, y)
    if method == "ual_per_sample":
        return lambda z, y, eps: uncertainty_smoothed_loss(z, y, eps, chunk_tokens=chunk_tokens)
    raise ValueError(method)


def _logits_suite_step(fn, logits, labels, eps) -> float:
    logits.grad = None
    t0 = time.perf_counter()
    fn(logits, labels, eps).backward()
    return time.perf_counter() - t0


def child_logits_suite_memory(method: str, a) -> None:
    fn = _logits_suite_fn(method, a.logits_chunk_tokens)
    logits, labels, eps = _logits_suite_inputs(a.rows, a.tokens_per_row, a.logits_vocab)
    logits.data.add_(0.0)  # touch every page so it counts in the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _logits_suite_step(fn, logits, labels, eps)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_bytes": (after - before) * 1024, "logits_bytes": logits.numel() * 4}))


def child_logits_suite_time(a) -> None:
    logits, labels, eps = _logits_suite_inputs(a.rows, a.tokens_per_row, a.logits_vocab)
    fns = {m: _logits_suite_fn(m, a.logits_chunk_tokens) for m in LOGITS_SUITE_METHODS}
    times: dict[str, list[float]] = {m: [] for m in LOGITS_SUITE_METHODS}
    for m in LOGITS_SUITE_METHODS:
        _logits_suite_step(fns[m], logits, labels, eps)
    for _ in range(a.rounds):
        for m in LOGITS_SUITE_METHODS:
            times[m].append(_logits_suite_step(fns[m], logits, labels, eps))
    print(json.dumps({m: statistics.median(t) for m, t in times.items()}))


def logits_suite(a) -> None:
    shape = ["--rows", str(a.rows), "--tokens-per-row", str(a.tokens_per_row), "--logits-vocab", str(a.logits_vocab)]
    shape += ["--logits-chunk-tokens", str(a.logits_chunk_tokens), "--rounds", str(a.rounds), "--suite", "logits"]
    print(
        f"logits fp32 ({a.rows}, {a.tokens_per_row}, {a.logits_vocab}), chunk_tokens={a.logits_chunk_tokens}, rounds={a.rounds}"
    )
    times = _run_child(["--child", "time", *shape])
    mem = {m: _run_child(["--child", "memory", "--method", m, *shape]) for m in LOGITS_SUITE_METHODS}
    base = times["ce"]
    for m in LOGITS_SUITE_METHODS:
        extra = mem[m]["extra_bytes"] / mem[m]["logits_bytes"]
        print(
            f"{m:15s} fwd+bwd {times[m] * 1000:8.1f} ms  time/ce {times[m] / base:5.2f}x  "
            f"extra peak {mem[m]['extra_bytes'] / 2**20:7.0f} MiB = {extra:4.2f}x logits"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", choices=["linear", "logits"], default="linear")
    p.add_argument("--tokens", type=int, default=2048, help="N")
    p.add_argument("--hidden", type=int, default=512, help="H")
    p.add_argument("--vocab", type=int, default=128256, help="V")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--weight-grad", action="store_true", help="the lm_head weight requires grad too")
    p.add_argument(
        "--chunk-tokens", type=int, default=None, help="linear path; default: linear_chunk_tokens(V, device)"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--time-repeats", type=int, default=2, help="time subprocesses, one after another")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the CPU time child")
    p.add_argument("--skip-trainer", action="store_true")
    p.add_argument("--sections", default="1234", help="which sections to run, e.g. 23")
    p.add_argument("--trainer-rounds", type=int, default=2)
    # --suite logits
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--tokens-per-row", type=int, default=1024)
    p.add_argument("--logits-vocab", type=int, default=32000)
    p.add_argument("--logits-chunk-tokens", type=int, default=None, help="default: TrainingConfig.loss_chunk_tokens")
    # children
    p.add_argument("--child", choices=["exactness", "memory", "time", "trainer"])
    p.add_argument("--method")
    p.add_argument("--kind", choices=["tiny", "vocab128k"])
    p.add_argument("--impl", choices=["auto", "logits", "linear"])
    p.add_argument("--base")
    p.add_argument("--examples", type=int)
    a = p.parse_args()
    if a.logits_chunk_tokens is None:
        from ual_dagster.config.training import TrainingConfig

        a.logits_chunk_tokens = TrainingConfig().loss_chunk_tokens

    if a.suite == "logits":
        if a.child == "memory":
            return child_logits_suite_memory(a.method, a)
        if a.child == "time":
            return child_logits_suite_time(a)
        return logits_suite(a)
    if a.child == "exactness":
        return child_exactness()
    if a.child == "memory":
        return child_memory(a.method, a)
    if a.child == "time":
        return child_time(a)
    if a.child == "trainer":
        return child_trainer(a.kind, a.impl, a.base, a.examples)
    linear_suite(a)


if __name__ == "__main__":
    main()
