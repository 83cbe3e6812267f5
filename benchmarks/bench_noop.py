"""The README's main command, twice: the first run, then a run with nothing changed.

    .venv/bin/python benchmarks/bench_noop.py [--fresh]

Runs `dagster asset materialize -m assets.definitions --select '*eval_scores+'` as a user
would (a subprocess, the active profile, its DAGSTER_HOME). With --fresh, or when the
profile's state folder has no finished run yet, the first run starts from an empty state
folder (target for the tiny profile: under 15 minutes on 2 cores). The second run must
train, evaluate and elicit nothing (target: well under a minute); its breakdown shows
where the seconds go: interpreter + definitions start-up, then each step.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ual_dagster.config import active_profile  # noqa: E402
from ual_dagster.storage import StatePaths  # noqa: E402

STEP = re.compile(r' - (\S+) - STEP_SUCCESS - Finished execution of step "[^"]+" in ([0-9.]+)(ms|s|m)')
FIRST_STEP = re.compile(r"STEP_START")
REUSED = re.compile(r"already (trained|built)|nothing to evaluate|reusing|cache_hits")


def run_main_command(env: dict[str, str]) -> tuple[float, str]:
    cmd = [
        str(ROOT / ".venv/bin/dagster"),
        "asset",
        "materialize",
        "-m",
        "assets.definitions",
        "--select",
        "*eval_scores+",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"main command failed with exit code {proc.returncode}")
    return elapsed, proc.stdout + proc.stderr


def step_seconds(log: str) -> dict[str, float]:
    out = {}
    for name, value, unit in STEP.findall(log):
        v = float(value)
        out[name] = v / 1000 if unit == "ms" else v * 60 if unit == "m" else v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="start from an empty state folder")
    args = parser.parse_args()
    profile = active_profile()
    paths = StatePaths.for_profile(profile)
    if args.fresh and paths.state_dir.exists():
        shutil.rmtree(paths.state_dir)
    paths.ensure()
    env = {**os.environ, "DAGSTER_HOME": str(paths.dagster_home)}
    print(f"profile {profile.name!r}, state {paths.state_dir}, {os.cpu_count()} cores")

    first = None
    if not (paths.artifacts / "report").exists():
        first, log = run_main_command(env)
        steps = step_seconds(log)
        print(f"first run: {first:.1f} s ({len(steps)} steps; target for tiny: < 900 s)")
        for name, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {name:45s} {sec:8.2f} s")

    second, log = run_main_command(env)
    steps = step_seconds(log)
    in_steps = sum(steps.values())
    print(
        f"no-op run: {second:.1f} s (target: well under 60 s) = {second - in_steps:.1f} s start-up "
        f"(interpreter, imports, definitions, run set-up) + {in_steps:.1f} s in {len(steps)} steps"
    )
    for name, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name:45s} {sec:8.2f} s")
    if first:
        print(f"ratio no-op / first run: {second / first:.3f}")


if __name__ == "__main__":
    main()
