"""The bundled `study` profile end to end from an empty state folder (target: <= 30 min on 2 cores).

    .venv/bin/python benchmarks/bench_study.py                 # run it, then print what it found
    .venv/bin/python benchmarks/bench_study.py --numbers-only  # only the findings, from the last run's state

Runs the README's main command with UAL_PROFILE=study as a user would (a subprocess, the
profile's own DAGSTER_HOME), then prints the wall time against the target, the slowest
steps, and what the study found: the `comparisons` rows whose interval excludes zero, the
report's one sentence per scenario, and every number the README's "What it found"
paragraph quotes, read from `comparisons` and the elicitor-validity table, with the date
and the commit they were measured on, so the paragraph can be refreshed from one command.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_noop import run_main_command, step_seconds  # noqa: E402

from ual_dagster.config import load_profile  # noqa: E402
from ual_dagster.elicitation.validity import elicitor_validity  # noqa: E402
from ual_dagster.evaluation.comparisons import read_comparisons  # noqa: E402
from ual_dagster.evaluation.report import scenario_sentence  # noqa: E402
from ual_dagster.storage import DuckDBStore, StatePaths  # noqa: E402

TARGET_S = 1800

# The contrasts the README paragraph quotes, by (method, baseline); each is printed for
# every benchmark and metric the run has, so a new metric shows up without editing this.
PARAGRAPH_CONTRASTS = [
    ("ual", "sft"),
    ("ls", "sft"),
    ("ls_matched", "sft"),
    ("ual_oracle", "sft"),
    ("ual", "ls_matched"),
    ("ual_shuffled", "ls_matched"),
    ("ual_oracle", "ls_matched"),
]


def _signed(x: float) -> str:
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
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("torch", "transformers", "peft", "accelerate", "tokenizers", "numpy"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} -")
    return ", ".join(parts)


def print_findings(profile, paths: StatePaths) -> None:
    store = DuckDBStore(paths.duckdb)
    cmp = read_comparisons(store)
    excl = cmp[(cmp["ci_low"] > 0) | (cmp["ci_high"] < 0)]
    mtime = datetime.datetime.fromtimestamp(paths.duckdb.stat().st_mtime, datetime.timezone.utc)
    print(
        f"findings of the state in {paths.state_dir} (DuckDB written {mtime:%Y-%m-%d %H:%M} UTC), code at {commit_label()}"
    )
    print(f"packages: {environment_label()}")
    print(f"comparisons: {len(cmp)} rows, {len(excl)} exclude zero")
    for scenario in profile.scenarios:
        print(" ", scenario_sentence(scenario, cmp))
    print("the paragraph's numbers (estimate [CI], Holm-adjusted p; nats for log_p_*, points for win_rate):")
    for scenario in profile.scenarios:
        rows = cmp[cmp["scenario"] == scenario]
        for method, baseline in PARAGRAPH_CONTRASTS:
            pair = rows[(rows["method"] == method) & (rows["baseline"] == baseline)]
            for r in pair.sort_values(["benchmark", "metric"]).itertuples():
                print(
                    f"  {scenario:12s} {method + ' - ' + baseline:26s} {r.benchmark + '/' + r.metric:45s} "
                    f"{_signed(r.estimate)} [{_signed(r.ci_low)}, {_signed(r.ci_high)}]  Holm p {r.p_adjusted:.3f}"
                )
    validity = elicitor_validity(store, list(profile.datasets))
    for r in validity.itertuples(index=False):
        rho = "-" if r.spearman is None else f"{r.spearman:+.2f}"
        auc = "-" if r.auc is None else f"{r.auc:.2f}"
        print(f"  elicitor {r.elicitor_name} ({r.scope}, n={r.n}): Spearman {rho}, AUC {auc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--numbers-only", action="store_true", help="print the findings of the existing state; run nothing"
    )
    args = parser.parse_args()
    profile = load_profile("study")
    paths = StatePaths.for_profile(profile)
    if args.numbers_only:
        if not paths.duckdb.exists():
            raise SystemExit(f"no study state at {paths.duckdb}: run this script without --numbers-only first")
        print_findings(profile, paths)
        return
    if paths.state_dir.exists():
        shutil.rmtree(paths.state_dir)
    paths.ensure()
    env = {**os.environ, "UAL_PROFILE": "study", "DAGSTER_HOME": str(paths.dagster_home)}
    n_variants = len(profile.scenarios) * len(profile.methods)
    print(
        f"profile 'study': {n_variants} variants x {len(profile.experiment.seeds)} seeds, {os.cpu_count()} cores; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, code at {commit_label()}"
    )
    elapsed, log = run_main_command(env)
    steps = step_seconds(log)
    print(
        f"study first run: {elapsed:.1f} s = {elapsed / 60:.1f} min (target <= {TARGET_S / 60:.0f} min); "
        f"ratio to target {elapsed / TARGET_S:.2f}"
    )
    for name, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {name:45s} {sec:8.2f} s")
    print_findings(profile, paths)


if __name__ == "__main__":
    main()
