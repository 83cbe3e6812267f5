"""What bench_study.py and bench_sweep.py share: a bundled profile's main command from an
empty state folder, timed against a target, then the profile's own printout of its results,
with the date, commit and package versions they were measured with; `--numbers-only`
reprints the results of the last run's state.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench_noop import run_main_command, step_seconds

from ual_dagster.config import Profile, load_profile
from ual_dagster.storage import StatePaths

ROOT = Path(__file__).resolve().parents[1]


def signed(x: float) -> str:
    return f"{x:+.3f}" if abs(x) < 10 else f"{x:+.1f}"


def commit_label() -> str:
    """The commit the run measured, with '+dirty' when the working tree had uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return sha + ("+dirty" if dirty else "")


def environment_label() -> str:
    """The packages that compute the numbers; pyproject gives ranges, so a run records what it had."""
    parts = []
    for name in ("torch", "transformers", "peft", "accelerate", "tokenizers", "numpy"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} -")
    return ", ".join(parts)


def state_label(paths: StatePaths) -> str:
    mtime = datetime.datetime.fromtimestamp(paths.duckdb.stat().st_mtime, datetime.timezone.utc)
    return (
        f"the state in {paths.state_dir} (DuckDB written {mtime:%Y-%m-%d %H:%M} UTC), printed at commit {commit_label()}\n"
        f"packages: {environment_label()}"
    )


def profile_benchmark(
    name: str,
    target_s: float,
    describe: Callable[[Profile], str],
    print_results: Callable[[Profile, StatePaths], None],
    doc: str,
) -> None:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--numbers-only", action="store_true", help="print the results of the existing state; run nothing"
    )
    args = parser.parse_args()
    profile = load_profile(name)
    paths = StatePaths.for_profile(profile)
    if args.numbers_only:
        if not paths.duckdb.exists():
            raise SystemExit(f"no {name} state at {paths.duckdb}: run this script without --numbers-only first")
        print_results(profile, paths)
        return
    if paths.state_dir.exists():
        shutil.rmtree(paths.state_dir)
    paths.ensure()
    env = {**os.environ, "UAL_PROFILE": name, "DAGSTER_HOME": str(paths.dagster_home)}
    print(
        f"profile '{name}': {describe(profile)} x {len(profile.experiment.seeds)} seeds, {os.cpu_count()} cores; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, code at {commit_label()}"
    )
    elapsed, log = run_main_command(env)
    steps = step_seconds(log)
    print(
        f"{name} first run: {elapsed:.1f} s = {elapsed / 60:.1f} min (target <= {target_s / 60:.0f} min); "
        f"ratio to target {elapsed / target_s:.2f}"
    )
    for step, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {step:45s} {sec:8.2f} s")
    print_results(profile, paths)
