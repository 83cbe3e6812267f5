"""The bundled `sweep` profile end to end from an empty state folder (target: <= 45 min on 2 cores).

    .venv/bin/python benchmarks/bench_sweep.py                 # run it, then print the dose-response
    .venv/bin/python benchmarks/bench_sweep.py --numbers-only  # only the dose-response, from the last run's state

Runs the README's main command with UAL_PROFILE=sweep as a user would (a subprocess, the
profile's own DAGSTER_HOME), then prints the wall time against the target, the slowest
steps, and per scenario the dose-response the report plots: each sweep point's difference
from SFT, estimate [CI], on the main metrics, then each ual point against its own matched LS
(the allocation at that amount of smoothing), with the date and the commit.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_noop import run_main_command, step_seconds  # noqa: E402
from bench_study import commit_label  # noqa: E402

from ual_dagster.config import load_profile  # noqa: E402
from ual_dagster.evaluation.comparisons import read_comparisons  # noqa: E402
from ual_dagster.evaluation.report import dose_response_rows, scenario_sentence, sft_baseline  # noqa: E402
from ual_dagster.storage import DuckDBStore, StatePaths  # noqa: E402

TARGET_S = 2700
# The metrics the dose-response is printed for (all of them are in the report's plots).
MAIN_METRICS = [
    ("testbed_likelihood", "log_p_valid_set"),
    ("testbed_likelihood", "log_p_answer"),
    ("alpaca_eval", "win_rate"),
    ("testbed_exact_heldout", "exact_match,none"),
]


def _signed(x: float) -> str:
    return f"{x:+.3f}" if abs(x) < 10 else f"{x:+.1f}"


def print_dose_response(profile, paths: StatePaths) -> None:
    store = DuckDBStore(paths.duckdb)
    cmp = read_comparisons(store)
    baseline = sft_baseline(profile)
    matched_ls = {name for name, m in profile.methods.items() if m.kind == "ls" and m.match is not None}
    mtime = datetime.datetime.fromtimestamp(paths.duckdb.stat().st_mtime, datetime.timezone.utc)
    print(
        f"dose-response of the state in {paths.state_dir} (DuckDB written {mtime:%Y-%m-%d %H:%M} UTC), "
        f"code at {commit_label()}; each point - {baseline}, estimate [CI], Holm p over the scenario's contrasts"
    )
    for scenario in profile.scenarios:
        print(" ", scenario_sentence(scenario, cmp))
        rows = dose_response_rows(cmp, scenario, profile.sweep_points(), baseline)
        holm = cmp[(cmp["scenario"] == scenario) & (cmp["baseline"] == baseline)].set_index(
            ["benchmark", "metric", "method"]
        )["p_adjusted"]
        for bench, metric in MAIN_METRICS:
            part = rows[(rows["benchmark"] == bench) & (rows["metric"] == metric)]
            if part.empty:
                continue
            print(f"  {scenario} {bench}/{metric} ({rows.attrs.get('dose_field')}: one line per family and mapping)")
            for r in part.sort_values(["line", "dose"]).itertuples():
                p = holm.get((bench, metric, r.method), float("nan"))
                print(
                    f"    {r.line:22s} {r.dose:5.2f}  {_signed(r.estimate)} [{_signed(r.ci_low)}, "
                    f"{_signed(r.ci_high)}]  Holm p {p:.3f}"
                )
        # the allocation at each amount of smoothing: each ual point against its own matched LS
        matched = cmp[(cmp["scenario"] == scenario) & cmp["baseline"].isin(matched_ls)]
        for bench, metric in MAIN_METRICS:
            part = matched[(matched["benchmark"] == bench) & (matched["metric"] == metric)]
            if part.empty:
                continue
            print(f"  {scenario} {bench}/{metric}: each ual point - its matched LS")
            for r in part.sort_values("method").itertuples():
                print(
                    f"    {r.method:22s} {_signed(r.estimate)} [{_signed(r.ci_low)}, {_signed(r.ci_high)}]  "
                    f"Holm p {r.p_adjusted:.3f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--numbers-only", action="store_true", help="print the dose-response of the existing state; run nothing"
    )
    args = parser.parse_args()
    profile = load_profile("sweep")
    paths = StatePaths.for_profile(profile)
    if args.numbers_only:
        if not paths.duckdb.exists():
            raise SystemExit(f"no sweep state at {paths.duckdb}: run this script without --numbers-only first")
        print_dose_response(profile, paths)
        return
    if paths.state_dir.exists():
        shutil.rmtree(paths.state_dir)
    paths.ensure()
    env = {**os.environ, "UAL_PROFILE": "sweep", "DAGSTER_HOME": str(paths.dagster_home)}
    n_variants = len(profile.scenarios) * len(profile.methods)
    print(
        f"profile 'sweep': {n_variants} variants ({len(profile.sweep_points())} methods from experiment.sweep) x "
        f"{len(profile.experiment.seeds)} seeds, {os.cpu_count()} cores; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, code at {commit_label()}"
    )
    elapsed, log = run_main_command(env)
    steps = step_seconds(log)
    print(
        f"sweep first run: {elapsed:.1f} s = {elapsed / 60:.1f} min (target <= {TARGET_S / 60:.0f} min); "
        f"ratio to target {elapsed / TARGET_S:.2f}"
    )
    for name, sec in sorted(steps.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {name:45s} {sec:8.2f} s")
    print_dose_response(profile, paths)


if __name__ == "__main__":
    main()
