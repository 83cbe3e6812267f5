"""The bundled `study` profile end to end from an empty state folder (target: <= 30 min on 2 cores).

    .venv/bin/python benchmarks/bench_study.py

Runs the README's main command with UAL_PROFILE=study as a user would (a subprocess, the
profile's own DAGSTER_HOME), then prints the wall time against the target, the slowest
steps, and what the study found: the `comparisons` rows whose interval excludes zero and
the report's one sentence per scenario.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_noop import run_main_command, step_seconds  # noqa: E402

from ual_dagster.config import load_profile  # noqa: E402
from ual_dagster.evaluation.comparisons import read_comparisons  # noqa: E402
from ual_dagster.evaluation.report import scenario_sentence  # noqa: E402
from ual_dagster.storage import DuckDBStore, StatePaths  # noqa: E402

TARGET_S = 1800


def main() -> None:
    profile = load_profile("study")
    paths = StatePaths.for_profile(profile)
    if paths.state_dir.exists():
        shutil.rmtree(paths.state_dir)
    paths.ensure()
    env = {**os.environ, "UAL_PROFILE": "study", "DAGSTER_HOME": str(paths.dagster_home)}
    n_variants = len(profile.scenarios) * len(profile.methods)
    print(f"profile 'study': {n_variants} variants x {len(profile.experiment.seeds)} seeds, {os.cpu_count()} cores")
    elapsed, log = run_main_command(env)
    steps = step_seconds(log)
    print(
        f"study first run: {elapsed:.1f} s = {elapsed / 60:.1f} min (target <= {TARGET_S / 60:.0f} min); "
        f"ratio to target {elapsed / TARGET_S:.2f}"
    )
    for name, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {name:45s} {sec:8.2f} s")
    cmp = read_comparisons(DuckDBStore(paths.duckdb))
    excl = cmp[(cmp["ci_low"] > 0) | (cmp["ci_high"] < 0)]
    print(f"comparisons: {len(cmp)} rows, {len(excl)} exclude zero")
    for scenario in profile.scenarios:
        print(" ", scenario_sentence(scenario, cmp))


if __name__ == "__main__":
    main()
