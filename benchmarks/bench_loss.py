"""Forward+backward time and extra peak memory of the UAL loss against plain torch losses.

Setting: fp32 logits (B, T, V) = (4, 1024, 32000) (B*T = 4,096 tokens, 524 MB of
logits), every token a target. Compared, all side by side in this one run:

- ual_per_sample: `uncertainty_smoothed_loss` with a different eps per sample
- ce:             F.cross_entropy (no smoothing), the baseline of every ratio
- ce_ls:          F.cross_entropy(label_smoothing=0.1)
- label_smoother: transformers.trainer_pt_utils.LabelSmoother(epsilon=0.1)

Time: one subprocess runs the methods in interleaved rounds (after one warm-up each)
and reports the median forward+backward wall time per method.

Memory: tracemalloc does not see torch's allocations, so each method runs once in
its own fresh subprocess, which allocates the logits and labels, touches them, reads
its resident-set high-water mark (getrusage ru_maxrss), runs forward+backward once
and reads the high-water mark again. The difference is the extra peak memory of the
loss, including the logits' gradient (1.0x the logits by construction). The ratio is
reported in units of the logits' size.

Usage: python benchmarks/bench_loss.py [--tokens-per-row 1024] [--rows 4] [--vocab 32000]
       [--rounds 5] [--chunk-tokens N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Run as a script (and as its own subprocess): make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ["ce", "ual_per_sample", "ce_ls", "label_smoother"]


def _make_inputs(rows: int, tokens: int, vocab: int):
    import torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, tokens, vocab, generator=g).requires_grad_()
    labels = torch.randint(0, vocab, (rows, tokens), generator=g)
    eps = torch.linspace(0.0, 0.2, rows)
    return logits, labels, eps


def _loss_fn(method: str, chunk_tokens: int):
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


def _step(fn, logits, labels, eps) -> float:
    logits.grad = None
    t0 = time.perf_counter()
    fn(logits, labels, eps).backward()
    return time.perf_counter() - t0


def child_memory(method: str, rows: int, tokens: int, vocab: int, chunk_tokens: int) -> None:
    fn = _loss_fn(method, chunk_tokens)
    logits, labels, eps = _make_inputs(rows, tokens, vocab)
    logits.data.add_(0.0)  # touch every page so it counts in the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _step(fn, logits, labels, eps)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_bytes": (after - before) * 1024, "logits_bytes": logits.numel() * 4}))


def child_time(rows: int, tokens: int, vocab: int, chunk_tokens: int, rounds: int) -> None:
    logits, labels, eps = _make_inputs(rows, tokens, vocab)
    fns = {m: _loss_fn(m, chunk_tokens) for m in METHODS}
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for m in METHODS:
        _step(fns[m], logits, labels, eps)
    for _ in range(rounds):
        for m in METHODS:
            times[m].append(_step(fns[m], logits, labels, eps))
    print(json.dumps({m: statistics.median(t) for m, t in times.items()}))


def _run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--tokens-per-row", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--chunk-tokens", type=int, default=None, help="default: TrainingConfig.loss_chunk_tokens")
    p.add_argument("--child", choices=["memory", "time"])
    p.add_argument("--method", choices=METHODS)
    a = p.parse_args()
    if a.chunk_tokens is None:
        from ual_dagster.config.training import TrainingConfig

        a.chunk_tokens = TrainingConfig().loss_chunk_tokens
    shape = ["--rows", str(a.rows), "--tokens-per-row", str(a.tokens_per_row), "--vocab", str(a.vocab)]
    shape += ["--chunk-tokens", str(a.chunk_tokens)]
    if a.child == "memory":
        child_memory(a.method, a.rows, a.tokens_per_row, a.vocab, a.chunk_tokens)
        return
    if a.child == "time":
        child_time(a.rows, a.tokens_per_row, a.vocab, a.chunk_tokens, a.rounds)
        return

    print(f"logits fp32 ({a.rows}, {a.tokens_per_row}, {a.vocab}), chunk_tokens={a.chunk_tokens}, rounds={a.rounds}")
    times = _run_child(["--child", "time", "--rounds", str(a.rounds), *shape])
    mem = {m: _run_child(["--child", "memory", "--method", m, *shape]) for m in METHODS}
    base = times["ce"]
    for m in METHODS:
        extra = mem[m]["extra_bytes"] / mem[m]["logits_bytes"]
        print(
            f"{m:15s} fwd+bwd {times[m] * 1000:8.1f} ms  time/ce {times[m] / base:5.2f}x  "
            f"extra peak {mem[m]['extra_bytes'] / 2**20:7.0f} MiB = {extra:4.2f}x logits"
        )


if __name__ == "__main__":
    main()
