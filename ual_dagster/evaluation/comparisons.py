"""The `comparisons` table: every method against every baseline, paired over seeds and items.

Built from `eval_items` (see scores.py): for one scenario, benchmark and metric, the
method's and the baseline's per-item values of the same seed are subtracted item by
item, giving a (seeds x items) matrix whose mean, hierarchical-bootstrap interval and
p-value come from `stats.paired_bootstrap`. Holm's adjustment runs over all contrasts of
one scenario. Only seeds and items present for both methods enter a contrast; the table
says how many (n_seeds, n_items).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ual_dagster.config.training import MethodConfig
from ual_dagster.evaluation.stats import holm, paired_bootstrap
from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import replace_rows

COMPARISONS_DDL = """
CREATE TABLE IF NOT EXISTS comparisons (
    scenario VARCHAR NOT NULL,
    benchmark VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    baseline VARCHAR NOT NULL,
    estimate DOUBLE,            -- mean over seeds of the per-seed paired difference, method - baseline
    ci_low DOUBLE,
    ci_high DOUBLE,
    p_value DOUBLE,             -- two-sided, hierarchical bootstrap over seeds and items
    p_adjusted DOUBLE,          -- Holm, over the contrasts of the scenario
    n_seeds INTEGER,
    n_items INTEGER,
    level DOUBLE,               -- confidence level of [ci_low, ci_high]
    eval_scores VARCHAR         -- data version of the eval_scores roll-up they were computed for
)
"""

COLUMNS = [
    "scenario",
    "benchmark",
    "metric",
    "method",
    "baseline",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "n_seeds",
    "n_items",
    "level",
]


def contrasts(methods: Sequence[str], baselines: Sequence[str]) -> list[tuple[str, str]]:
    """(method, baseline) pairs: every non-baseline method against every baseline, and each
    baseline against the baselines listed before it (e.g. matched LS against SFT)."""
    out = []
    for b_idx, base in enumerate(baselines):
        for m in methods:
            if m == base:
                continue
            if m in baselines and list(baselines).index(m) < b_idx:
                continue
            out.append((m, base))
    return out


def matched_contrasts(methods: Mapping[str, MethodConfig], baselines: Sequence[str]) -> list[tuple[str, str]]:
    """(ual method, its matched LS) for every `ls` method with `match` that the baselines do not
    already pair: "does the allocation help at this amount of smoothing" for each point of a
    sweep, whose matched LS copies are not baselines (that would compare every point with every
    copy and spend Holm's adjustment on contrasts nobody asked for)."""
    covered = set(contrasts(list(methods), baselines))
    return [
        (m.match, name)
        for name, m in methods.items()
        if m.kind == "ls" and m.match is not None and (m.match, name) not in covered
    ]


def paired_matrix(items: pd.DataFrame, method: str, baseline: str) -> np.ndarray:
    """(seeds x items) differences method - baseline over the seeds and items both have."""
    a = items[items["method"] == method].pivot_table(index="seed", columns="item_id", values="value", aggfunc="mean")
    b = items[items["method"] == baseline].pivot_table(index="seed", columns="item_id", values="value", aggfunc="mean")
    seeds = a.index.intersection(b.index)
    cols = a.columns.intersection(b.columns)
    diff = a.loc[seeds, cols] - b.loc[seeds, cols]
    return diff.dropna(axis=1, how="any").to_numpy(dtype=float)


def compute_comparisons(
    items: pd.DataFrame,
    methods: Sequence[str],
    baselines: Sequence[str],
    *,
    extra: Sequence[tuple[str, str]] = (),
    level: float = 0.95,
    iters: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (scenario, benchmark, metric, method, baseline) with a paired estimate:
    every method against the baselines, then the `extra` (method, baseline) pairs."""
    rows = []
    pairs = contrasts(methods, baselines)
    pairs += [p for p in extra if p not in pairs]
    for (scenario, benchmark, metric), grp in items.groupby(["scenario", "benchmark", "metric"], sort=True):
        for method, baseline in pairs:
            d = paired_matrix(grp, method, baseline)
            if d.size == 0:
                continue
            est = paired_bootstrap(d, level=level, iters=iters, seed=seed)
            rows.append(
                {
                    "scenario": scenario,
                    "benchmark": benchmark,
                    "metric": metric,
                    "method": method,
                    "baseline": baseline,
                    "estimate": est.estimate,
                    "ci_low": est.ci_low,
                    "ci_high": est.ci_high,
                    "p_value": est.p_value,
                    "n_seeds": est.n_seeds,
                    "n_items": est.n_items,
                    "level": level,
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_adjusted"])
    frame["p_adjusted"] = np.nan
    for scenario, idx in frame.groupby("scenario").groups.items():
        frame.loc[idx, "p_adjusted"] = holm(frame.loc[idx, "p_value"].to_numpy())
    return frame[COLUMNS]


def write_comparisons(store: DuckDBStore, frame: pd.DataFrame, eval_scores_version: str) -> int:
    """Replace the table with the current profile's contrasts (one transaction)."""
    out = frame.assign(eval_scores=eval_scores_version)
    with store.connect() as con:
        con.execute(COMPARISONS_DDL)
        return replace_rows(con, "comparisons", "TRUE", [], out)


def read_comparisons(store: DuckDBStore) -> pd.DataFrame:
    with store.connect() as con:
        con.execute(COMPARISONS_DDL)
        return con.execute("SELECT * FROM comparisons ORDER BY scenario, benchmark, metric, baseline, method").fetchdf()
