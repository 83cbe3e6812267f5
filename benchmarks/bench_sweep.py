"""The bundled `sweep` profile end to end from an empty state folder (target: <= 45 min on 2 cores).

    .venv/bin/python benchmarks/bench_sweep.py                 # run it, then print the dose-response
    .venv/bin/python benchmarks/bench_sweep.py --numbers-only  # only the dose-response, from the last run's state

Runs the README's main command with UAL_PROFILE=sweep as a user would (a subprocess, the
profile's own DAGSTER_HOME), then prints the wall time against the target, the slowest
steps, and per scenario the dose-response the report plots: each sweep point's difference
from SFT, estimate [CI], on the main metrics, then each ual point against its own matched LS
(the allocation at that amount of smoothing), with the date, the commit and the packages.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profile_bench import profile_benchmark, signed, state_label  # noqa: E402

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


def print_dose_response(profile, paths: StatePaths) -> None:
    store = DuckDBStore(paths.duckdb)
    cmp = read_comparisons(store)
    baseline = sft_baseline(profile)
    matched_ls = {name for name, m in profile.methods.items() if m.kind == "ls" and m.match is not None}
    print(f"dose-response of {state_label(paths)}")
    print(f"each point - {baseline}, estimate [CI], Holm p over the scenario's contrasts")
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
                    f"    {r.line:22s} {r.dose:5.2f}  {signed(r.estimate)} [{signed(r.ci_low)}, "
                    f"{signed(r.ci_high)}]  Holm p {p:.3f}"
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
                    f"    {r.method:22s} {signed(r.estimate)} [{signed(r.ci_low)}, {signed(r.ci_high)}]  "
                    f"Holm p {r.p_adjusted:.3f}"
                )


def main() -> None:
    profile_benchmark(
        "sweep",
        TARGET_S,
        lambda p: (
            f"{len(p.scenarios) * len(p.methods)} variants ({len(p.sweep_points())} methods from experiment.sweep)"
        ),
        print_dose_response,
        __doc__,
    )


if __name__ == "__main__":
    main()
