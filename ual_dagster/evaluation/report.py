"""The comparison report: UAL vs SFT vs LS per scenario and benchmark, with deltas.

Reads eval_scores, plus the training_curves and uncertainty tables when they exist,
and writes `report.md` with PNG plots into an output dir. A delta's standard error
combines the two scores' errors as sqrt(a^2 + b^2) (independent evaluations); it is
left empty when either score has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ual_dagster.config.training import MethodConfig
from ual_dagster.evaluation.scores import read_scores
from ual_dagster.fingerprint import stable_hash
from ual_dagster.storage import DuckDBStore
from ual_dagster.train.epsilon import epsilons_for

REPORT_CODE_VERSION = "comparison-report-v1"
def _paper_gain(scenario: str, benchmark: str, metric: str) -> float | None:
    """The paper's gain in this row's units, only where the scales match (paper_figures.py)."""
    from ual_dagster.evaluation.paper_figures import comparable_gain

    return comparable_gain(scenario, benchmark, metric)


def combined_stderr(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return None
    return math.sqrt(a * a + b * b)


def compare_methods(scores: pd.DataFrame, method_kinds: Mapping[str, str]) -> pd.DataFrame:
    """One row per (scenario, benchmark, metric): sft/ls/ual values and the deltas against sft."""
    by_kind = {kind: name for name, kind in method_kinds.items()}
    out = []
    for (scenario, benchmark, metric), grp in scores.groupby(["scenario", "benchmark", "metric"], sort=True):
        vals = {r.method: (r.value, None if pd.isna(r.stderr) else float(r.stderr)) for r in grp.itertuples()}
        row: dict[str, Any] = {"scenario": scenario, "benchmark": benchmark, "metric": metric}
        for kind in ("sft", "ls", "ual"):
            v = vals.get(by_kind.get(kind, kind))
            row[kind] = None if v is None or pd.isna(v[0]) else float(v[0])
            row[f"{kind}_se"] = None if v is None else v[1]
        for kind in ("ual", "ls"):
            ok = row[kind] is not None and row["sft"] is not None
            row[f"{kind}_minus_sft"] = row[kind] - row["sft"] if ok else None
            row[f"{kind}_minus_sft_se"] = combined_stderr(row[f"{kind}_se"], row["sft_se"]) if ok else None
        row["paper_ual_minus_sft"] = _paper_gain(scenario, benchmark, metric)
        out.append(row)
    return pd.DataFrame(out)


def _fmt(x: Any, se: Any = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.4g} ± {se:.2g}" if se is not None and not (isinstance(se, float) and math.isnan(se)) else f"{x:.4g}"


def _table_exists(store: DuckDBStore, name: str) -> bool:
    with store.connect() as con:
        return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0] > 0


def _read(store: DuckDBStore, sql: str) -> pd.DataFrame:
    with store.connect() as con:
        return con.execute(sql).fetchdf()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_deltas(cmp: pd.DataFrame, path: Path) -> Path:
    plt = _plt()
    d = cmp.dropna(subset=["ual_minus_sft"], how="all")
    labels = [f"{r.scenario}\n{r.benchmark}\n{r.metric}" for r in d.itertuples()]
    x = np.arange(len(d))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(d)), 4.5))
    for off, kind, color in ((-0.2, "ual", "tab:blue"), (0.2, "ls", "tab:orange")):
        vals = d[f"{kind}_minus_sft"].astype(float).fillna(0).to_numpy()
        err = d[f"{kind}_minus_sft_se"].astype(float).fillna(0).to_numpy()
        ax.bar(x + off, vals, width=0.4, yerr=err, color=color, label=f"{kind.upper()} - SFT", capsize=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("delta vs SFT (metric units)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curves(curves: pd.DataFrame, path: Path) -> Path:
    plt = _plt()
    scenarios = sorted(curves["scenario"].unique())
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    for ax, scen in zip(axes[0], scenarios):
        for method, grp in curves[curves["scenario"] == scen].groupby("method"):
            g = grp.sort_values("step")
            ax.plot(g["step"], g["loss"], label=method)
        ax.set_title(scen)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_uncertainty(unc: pd.DataFrame, methods: Mapping[str, MethodConfig], path: Path) -> Path:
    plt = _plt()
    datasets = sorted(unc["dataset"].unique())
    ual = [(n, m) for n, m in methods.items() if m.kind == "ual"]
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.5 * len(datasets), 7), squeeze=False)
    for j, ds in enumerate(datasets):
        u = unc.loc[unc["dataset"] == ds, "uncertainty"].dropna().astype(float).to_numpy()
        axes[0][j].hist(u, bins=20, range=(0, 1), color="tab:purple")
        axes[0][j].set_title(f"{ds}: uncertainty u (n={len(u)})")
        for name, m in ual:
            axes[1][j].hist(epsilons_for(m, list(u)), bins=20, alpha=0.6, label=name)
        axes[1][j].set_title(f"{ds}: UAL epsilon")
        if ual:
            axes[1][j].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class ReportResult:
    fingerprint: str
    markdown: Path
    plots: list[Path]
    comparison: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)


def comparison_report(
    store: DuckDBStore, out_dir: str | Path, methods: Mapping[str, MethodConfig] | None = None
) -> ReportResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = dict(methods or {})
    scores = read_scores(store)
    if scores.empty:
        raise ValueError("comparison_report: eval_scores is empty; materialise eval_scores first")
    kinds = {name: m.kind for name, m in methods.items()} or {k: k for k in ("sft", "ls", "ual")}
    cmp = compare_methods(scores, kinds)
    plots = [plot_deltas(cmp, out_dir / "deltas.png")]
    lines = [
        "# UAL vs SFT vs LS", "",
        f"Scores from {scores['scenario'].nunique()} scenario(s), {scores['method'].nunique()} method(s). "
        "Deltas are in the metric's own units (win rate in %, exact match as a fraction); "
        "± is one standard error, sqrt(a^2 + b^2) for a delta. The paper column is the UAL paper's "
        "reported gain over SFT in the mixed scenario, converted to the row's units and shown only beside "
        "metrics on the same scale (its AlpacaEval +10.62 is on an unstated, not AlpacaEval 2, scale; "
        "see ual_dagster/evaluation/paper_figures.py).", "",
        "| scenario | benchmark | metric | SFT | LS | UAL | UAL - SFT | LS - SFT | paper UAL - SFT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cmp.itertuples():
        paper = f"+{r.paper_ual_minus_sft}" if pd.notna(r.paper_ual_minus_sft) else ""  # NaN once in a frame
        lines.append(
            f"| {r.scenario} | {r.benchmark} | {r.metric} | {_fmt(r.sft, r.sft_se)} | {_fmt(r.ls, r.ls_se)} | "
            f"{_fmt(r.ual, r.ual_se)} | {_fmt(r.ual_minus_sft, r.ual_minus_sft_se)} | "
            f"{_fmt(r.ls_minus_sft, r.ls_minus_sft_se)} | {paper} |"
        )
    lines += ["", "![deltas](deltas.png)", ""]
    n_curves = n_unc = 0
    if _table_exists(store, "training_curves"):
        curves = _read(store, "SELECT scenario, method, step, loss FROM training_curves")
        n_curves = len(curves)
        if n_curves:
            plots.append(plot_training_curves(curves, out_dir / "training_curves.png"))
            lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    if _table_exists(store, "uncertainty"):
        cols = set(_read(store, "SELECT * FROM uncertainty LIMIT 0").columns)
        where = " WHERE status = 'ok'" if "status" in cols else ""
        unc = _read(store, f"SELECT dataset, uncertainty FROM uncertainty{where}")
        n_unc = len(unc)
        if n_unc:
            plots.append(plot_uncertainty(unc, methods, out_dir / "uncertainty.png"))
            summary = unc.groupby("dataset")["uncertainty"].agg(["count", "mean", "std"]).reset_index()
            lines += ["## Elicited uncertainty and UAL epsilon", "", "| dataset | n | mean u | sd u |", "|---|---|---|---|"]
            lines += [f"| {s.dataset} | {s.count} | {s.mean:.3f} | {_fmt(s.std)} |" for s in summary.itertuples()]
            lines += ["", "![uncertainty](uncertainty.png)", ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fp = stable_hash(REPORT_CODE_VERSION, scores.drop(columns=["created_at"]).to_json(orient="records"),
                     {n: m.model_dump(mode="json") for n, m in methods.items()}, n_curves, n_unc)
    metadata = {"report": str(md), "plots": [str(p) for p in plots], "rows_compared": len(cmp),
                "training_curve_points": n_curves, "uncertainty_rows": n_unc}
    return ReportResult(fp, md, plots, cmp, metadata)
