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

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profile_bench import profile_benchmark, signed, state_label  # noqa: E402

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


def print_findings(profile, paths: StatePaths) -> None:
    store = DuckDBStore(paths.duckdb)
    cmp = read_comparisons(store)
    excl = cmp[(cmp["ci_low"] > 0) | (cmp["ci_high"] < 0)]
    print(f"findings of {state_label(paths)}")
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
                    f"{signed(r.estimate)} [{signed(r.ci_low)}, {signed(r.ci_high)}]  Holm p {r.p_adjusted:.3f}"
                )
    validity = elicitor_validity(store, list(profile.datasets))
    for r in validity.itertuples(index=False):
        rho = "-" if r.spearman is None else f"{r.spearman:+.2f}"
        auc = "-" if r.auc is None else f"{r.auc:.2f}"
        print(f"  elicitor {r.elicitor_name} ({r.scope}, n={r.n}): Spearman {rho}, AUC {auc}")


def main() -> None:
    profile_benchmark(
        "study", TARGET_S, lambda p: f"{len(p.scenarios) * len(p.methods)} variants", print_findings, __doc__
    )


if __name__ == "__main__":
    main()
