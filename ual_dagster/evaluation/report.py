"""The comparison report: it leads with the paired `comparisons`, then the scores behind them.

Reads `comparisons` and `eval_scores` (the profile's variants and seeds), plus the
training_curves and uncertainty tables when they exist, and writes `report.md` with PNG
plots into an output dir:

1. one sentence per scenario naming the differences whose interval excludes zero;
2. per scenario and benchmark: each method against each baseline, estimate [CI] and the
   Holm-adjusted p, and a forest plot of the UAL methods against each baseline;
3. the scores (mean over seeds, with the spread between seeds);
4. token clustering, with its direction stated;
5. the paper's figures only beside metrics they are comparable with, scale named;
6. training curves and the elicited uncertainty of the current elicitor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.config.sweep import SweepPoint
from ual_dagster.config.training import MethodConfig
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.table import ok_scores, scores_and_samples_exist
from ual_dagster.elicitation.validity import elicitor_validity, format_validity
from ual_dagster.evaluation.comparisons import read_comparisons
from ual_dagster.evaluation.scores import current_rows, read_scores
from ual_dagster.fingerprint import stable_hash
from ual_dagster.storage import DuckDBStore
from ual_dagster.train.checkpoints import read_training_curves
from ual_dagster.train.epsilon import epsilons_for

CLUSTERING = "token_clustering"

# The UAL paper (ACL 2024), mixed scenario, UAL minus SFT. The paper does not name the
# AlpacaEval version; +10.62 points is implausible on AlpacaEval 2 (alpaca-7b scores 2.59%
# there), so it is most likely AlpacaEval 1 (judge alpaca_eval_gpt4 against text-davinci-003)
# or a relative gain. It is shown only beside a benchmark judged by an LLM on AlpacaEval's
# own instructions, never beside the testbed's stand-in metrics.
PAPER_FIGURES = (
    {
        "benchmark": "alpaca_eval",
        "metric": "win_rate",
        "scenario": "mixed",
        "value": 10.62,
        "scale": "win-rate points, most likely AlpacaEval 1 (vs text-davinci-003); not stated in the paper",
    },
    {
        # The abstract's +1.81 is "on complex low-entropy tasks (i.e., MetaMath and GSM)": the
        # mean gain over two benchmarks. It is shown only beside that same mean (a row with this
        # benchmark name), never beside GSM8K alone; this project evaluates no MetaMath test set,
        # so the report states it in a note instead (PAPER_LOW_ENTROPY_NOTE).
        "benchmark": "mean(metamath, gsm8k)",
        "metric_prefix": "exact_match",
        "scenario": "mixed",
        "value": 1.81,
        "scale": "accuracy points (%), the abstract's mean over MetaMath and GSM8K; x100 to compare",
    },
)
PAPER_LOW_ENTROPY_NOTE = (
    "The paper's +1.81 (mixed scenario, UAL - SFT) is the abstract's mean over MetaMath and GSM8K. This report "
    "evaluates GSM8K only, so that figure is not set beside the GSM8K rows: it is not the same metric."
)


def paper_figure(scenario: str, benchmark: str, metric: str, comparable: bool) -> dict[str, Any] | None:
    """The paper's reported UAL - SFT for this row, or None where it is not comparable."""
    if not comparable:
        return None
    for fig in PAPER_FIGURES:
        if fig["scenario"] != scenario:
            continue
        b_ok = benchmark == fig.get("benchmark") or benchmark.startswith(fig.get("benchmark_prefix", "\0"))
        m_ok = metric == fig.get("metric") or metric.startswith(fig.get("metric_prefix", "\0"))
        if b_ok and m_ok:
            return fig
    return None


def _is_nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _num(x: Any, digits: int = 3) -> str:
    return "n/a" if _is_nan(x) else f"{x:.{digits}g}"


def _signed(x: Any) -> str:
    return "n/a" if _is_nan(x) else f"{x:+.3g}"


def _p(x: Any) -> str:
    if _is_nan(x):
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def excludes_zero(row: Any) -> bool:
    return (row.ci_low > 0) or (row.ci_high < 0)


def significant(row: Any, level: float) -> bool:
    """The report's one significance mark (bold in the tables, red in the forest plots): the
    Holm-adjusted p below 1 - level. An unadjusted interval that excludes zero is not enough."""
    return not _is_nan(row.p_adjusted) and row.p_adjusted < 1 - level


def identical(row: Any) -> bool:
    """Method and baseline scored the same on every item of every seed (estimate and interval 0):
    as when both trained with the same eps on every sample, e.g. UAL with the oracle u = 0 of a
    single-answer task (eps = eps_min = 0) against SFT."""
    return row.estimate == 0 and row.ci_low == 0 and row.ci_high == 0


IDENTICAL_CELL = "0 on every item (identical)"


def scenario_sentence(scenario: str, cmp: pd.DataFrame) -> str:
    """One sentence: which differences of this scenario exclude zero, in which direction, and
    which of them survive Holm's adjustment (the intervals themselves are unadjusted)."""
    rows = cmp[cmp["scenario"] == scenario]
    if rows.empty:
        return f"**{scenario}**: no paired comparisons (per-item results missing)."
    level = float(rows["level"].iloc[0])
    pct = int(round(100 * level))
    n_seeds = int(rows["n_seeds"].max())
    hits = [r for r in rows.itertuples() if excludes_zero(r)]
    if not hits:
        return (
            f"**{scenario}**: none of the {len(rows)} differences has a {pct}% interval that excludes zero "
            f"({n_seeds} seed(s))."
        )
    held = [r for r in hits if r.p_adjusted < 1 - level]
    loose = [r for r in hits if r.p_adjusted >= 1 - level]
    sentence = (
        f"**{scenario}**: {len(hits)} of {len(rows)} differences have a {pct}% interval that excludes zero "
        f"({n_seeds} seed(s)), {len(held)} of them also after Holm's adjustment"
    )
    if held:
        sentence += ": " + "; ".join(
            f"{r.method} {'>' if r.estimate > 0 else '<'} {r.baseline} on {r.benchmark} {r.metric} "
            f"({_signed(r.estimate)} [{_signed(r.ci_low)}, {_signed(r.ci_high)}], Holm p {_p(r.p_adjusted)})"
            for r in held
        )
    if loose:
        sentence += "; not after adjustment: " + ", ".join(
            f"{r.method} - {r.baseline} on {r.metric} (Holm p {_p(r.p_adjusted)})" for r in loose
        )
    return sentence + "."


def plot_forest(
    cmp: pd.DataFrame, scenario: str, methods: Mapping[str, MethodConfig], path: Path, level: float = 0.95
) -> Path | None:
    """UAL methods against each baseline: one panel per (benchmark, metric), each with its
    own axis (metrics are on different scales), estimate and CI, zero marked; red where the
    Holm-adjusted p < 1 - level (the report's one significance mark), grey where identical."""
    ual = [n for n, m in methods.items() if m.kind == "ual"]
    d = cmp[(cmp["scenario"] == scenario) & cmp["method"].isin(ual)]
    if d.empty:
        return None
    plt = _plt()
    panels = list(d.groupby(["benchmark", "metric"], sort=True))
    height = sum(0.35 * len(g) + 0.9 for _, g in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, max(2.5, height)), squeeze=False)
    for ax, ((bench, metric), g) in zip(axes[:, 0], panels):
        g = g.sort_values(["baseline", "method"])
        y = np.arange(len(g))[::-1]
        est = g["estimate"].to_numpy(float)
        err = np.vstack([est - g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float) - est])
        for k, r in enumerate(g.itertuples()):
            color = "tab:gray" if identical(r) else "tab:red" if significant(r, level) else "tab:blue"
            ax.errorbar(est[k], y[k], xerr=err[:, k : k + 1], fmt="o", color=color, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        names = [f"{r.method} - {r.baseline}" + (" (identical)" if identical(r) else "") for r in g.itertuples()]
        ax.set_yticks(y, names, fontsize=8)
        ax.set_title(f"{bench} / {metric}", fontsize=9)
    alpha = round(1 - level, 3)
    fig.suptitle(
        f"{scenario}: UAL against each baseline (red: Holm-adjusted p < {alpha}; grey: identical on every item)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# The widest figure, in pixels at dpi 100: the UI's Markdown preview is about 900 px wide.
MAX_FIGURE_PX = 900

# The swept fields a dose-response plot can put on its x axis, first found first.
DOSE_FIELDS = ("eps_max", "epsilon", "eps_min")


def sft_baseline(profile: Profile) -> str | None:
    """The baseline a sweep's points are drawn against: the first sft method among the baselines."""
    return next((b for b in profile.baselines() if profile.methods[b].kind == "sft"), None)


def dose_response_rows(cmp: pd.DataFrame, scenario: str, points: Sequence[SweepPoint], baseline: str) -> pd.DataFrame:
    """One row per (benchmark, metric, sweep point) with its comparison against `baseline`:
    `dose` (the point's eps_max, or the first other numeric swept field), `line` (the method
    family and the other swept values, e.g. 'ual, sqrt'), estimate and CI. Empty when the
    sweep has no numeric field or `comparisons` has no row of these points."""
    cols = ["benchmark", "metric", "line", "family", "method", "dose", "estimate", "ci_low", "ci_high"]
    dose = next((f for f in DOSE_FIELDS if any(f in p.values for p in points)), None)
    if dose is None:
        return pd.DataFrame(columns=cols)
    by_name = {p.name: p for p in points if dose in p.values}
    d = cmp[(cmp["scenario"] == scenario) & (cmp["baseline"] == baseline) & cmp["method"].isin(list(by_name))]
    rows = []
    for r in d.itertuples():
        p = by_name[r.method]
        rest = [str(v) for k, v in p.values.items() if k != dose]
        rows.append(
            {
                "benchmark": r.benchmark,
                "metric": r.metric,
                "line": ", ".join([p.family, *rest]),
                "family": p.family,
                "method": r.method,
                "dose": float(p.values[dose]),
                "estimate": r.estimate,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
            }
        )
    families = list(dict.fromkeys(p.family for p in points))  # the sweep's order: the template first
    out = pd.DataFrame(rows, columns=cols)
    out = out.assign(_f=out["family"].map(families.index)).sort_values(["benchmark", "metric", "_f", "line", "dose"])
    out = out.drop(columns="_f").reset_index(drop=True)
    out.attrs["dose_field"] = dose
    return out


def plot_dose_response(rows: pd.DataFrame, scenario: str, baseline: str, path: Path) -> Path | None:
    """Per (benchmark, metric) a panel: each line's estimate and CI against the dose, the
    baseline (SFT) at (0, 0); one colour per method family, one line style per other value."""
    if rows.empty:
        return None
    plt = _plt()
    dose = rows.attrs.get("dose_field", "eps_max")
    panels = list(rows.groupby(["benchmark", "metric"], sort=True))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 2.6 * len(panels) + 0.6), squeeze=False)
    families = list(dict.fromkeys(rows["family"]))
    colors = {f: f"C{i % 10}" for i, f in enumerate(families)}
    lines = list(dict.fromkeys(rows["line"]))
    span = max(float(rows["dose"].max()), 1e-9)
    styles = ["-", "--", ":", "-."]
    for ax, ((bench, metric), g) in zip(axes[:, 0], panels):
        for k, (line, lg) in enumerate(g.groupby("line", sort=False)):
            lg = lg.sort_values("dose")
            x = lg["dose"].to_numpy(float) + span * 0.012 * (lines.index(line) - (len(lines) - 1) / 2)
            est = lg["estimate"].to_numpy(float)
            err = np.vstack([est - lg["ci_low"].to_numpy(float), lg["ci_high"].to_numpy(float) - est])
            family = lg["family"].iloc[0]
            style = styles[len([v for v in lines[: lines.index(line)] if v.startswith(family + ",")]) % len(styles)]
            ax.errorbar(x, est, yerr=err, fmt="o" + style, color=colors[family], capsize=2, ms=3, lw=1, label=line)
        ax.plot([0], [0], "s", color="black", ms=5, label=baseline)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{bench} / {metric}", fontsize=9)
        ax.set_xlabel(dose, fontsize=8)
        ax.set_ylabel(f"method - {baseline}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"{scenario}: dose-response against {baseline} (estimate and CI; {baseline} at 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_training_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Per scenario, each method's plain token NLL per step (the `nll` column): the same quantity
    for every method, unlike each method's own smoothed objective (`loss`), which puts LS and UAL
    above SFT by construction. A curve recorded before nll was logged is named in the legend."""
    plt = _plt()
    scenarios = sorted(curves["scenario"].unique())
    width = min(MAX_FIGURE_PX / 100, 3.2 * len(scenarios))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(width, 3.4), squeeze=False)
    has_nll = "nll" in curves.columns
    for ax, scen in zip(axes[0], scenarios):
        for method, grp in curves[curves["scenario"] == scen].groupby("method"):
            g = grp.sort_values("step")
            nll = pd.to_numeric(g["nll"], errors="coerce") if has_nll else pd.Series(dtype=float)
            if nll.notna().any():
                ax.plot(g["step"], nll, label=method)
            else:
                ax.plot([], [], label=f"{method} (no NLL recorded)")
        ax.set_title(scen, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("token NLL (no smoothing)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_uncertainty(unc: pd.DataFrame, methods: Mapping[str, MethodConfig], path: Path) -> Path:
    plt = _plt()
    datasets = sorted(unc["dataset"].unique())
    ual = [(n, m) for n, m in methods.items() if m.kind == "ual" and m.uncertainty == "elicited"]
    width = min(MAX_FIGURE_PX / 100, 4.5 * len(datasets))
    fig, axes = plt.subplots(2, len(datasets), figsize=(width, 7), squeeze=False)
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass
class ReportResult:
    fingerprint: str
    markdown: Path
    plots: list[Path]
    comparison: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)


def _comparable_with_paper(profile: Profile) -> bool:
    """The paper's AlpacaEval/GSM8K figures compare only with a real judge on real benchmarks."""
    ae = profile.evaluation.alpaca_eval
    return ae is not None and getattr(ae.judge, "kind", "testbed") != "testbed"


def _scores_section(scores: pd.DataFrame, methods: list[str], comparable: bool) -> list[str]:
    lines = [
        "## Scores",
        "",
        "Mean over seeds; in brackets the standard deviation between seeds (or, with one seed, the metric's "
        "own standard error).",
        "",
    ]
    agg = (
        scores.groupby(["scenario", "benchmark", "metric", "method"])
        .agg(value=("value", "mean"), sd=("value", "std"), se=("stderr", "mean"), seeds=("seed", "nunique"))
        .reset_index()
    )
    lines += ["| scenario | benchmark | metric | " + " | ".join(methods) + " | paper UAL - SFT |"]
    lines += ["|---" * (4 + len(methods)) + "|"]
    for (scen, bench, metric), g in agg.groupby(["scenario", "benchmark", "metric"], sort=True):
        cells = []
        by = g.set_index("method")
        for m in methods:
            if m not in by.index:
                cells.append("n/a")
                continue
            r = by.loc[m]
            spread = r.sd if r.seeds > 1 else r.se
            cells.append(_num(r.value, 4) + ("" if _is_nan(spread) else f" ({_num(spread, 2)})"))
        fig = paper_figure(scen, bench, metric, comparable)
        paper = f"+{fig['value']} ({fig['scale']})" if fig else ""
        lines.append(f"| {scen} | {bench} | {metric} | " + " | ".join(cells) + f" | {paper} |")
    lines.append("")
    return lines


def _clustering_section(scores: pd.DataFrame, methods: Mapping[str, MethodConfig]) -> list[str]:
    clu = scores[scores["benchmark"] == CLUSTERING]
    if clu.empty:
        return []
    lines = [
        "## Token clustering",
        "",
        f"Seed {int(clu['seed'].iloc[0])} only (descriptive). Higher silhouette and lower Davies-Bouldin mean "
        "tighter clusters of response-token hidden states by token identity; the paper reports that UAL tightens "
        "them. One checkpoint per variant, so there is no interval here.",
        "",
    ]
    sft = [n for n, m in methods.items() if m.kind == "sft"]
    ual = [n for n, m in methods.items() if m.kind == "ual" and m.uncertainty == "elicited"]
    for metric, g in clu.groupby("metric", sort=True):
        higher_better = "silhouette" in metric
        piv = g.pivot_table(index="scenario", columns="method", values="value")
        cols = [m for m in methods if m in piv.columns]
        lines += [f"**{metric}** ({'higher' if higher_better else 'lower'} is tighter)", ""]
        lines += ["| scenario | " + " | ".join(cols) + " | UAL vs SFT |", "|---" * (len(cols) + 2) + "|"]
        for scen, r in piv.iterrows():
            verdict = ""
            if sft and ual and sft[0] in r and ual[0] in r and not (_is_nan(r[sft[0]]) or _is_nan(r[ual[0]])):
                better = r[ual[0]] > r[sft[0]] if higher_better else r[ual[0]] < r[sft[0]]
                verdict = "UAL tighter" if better else "UAL looser (worse)"
            lines.append(f"| {scen} | " + " | ".join(_num(r.get(c), 4) for c in cols) + f" | {verdict} |")
        lines.append("")
    return lines


def _intro_lines(profile: Profile) -> list[str]:
    """The report's head: design, how to read an interval, the one significance mark."""
    exp = profile.experiment
    level = int(round(100 * exp.ci_level))
    return [
        "# UAL against its baselines: paired comparisons",
        "",
        f"Seeds {list(exp.seeds)}; methods "
        + ", ".join(f"`{n}` ({_describe(m)})" for n, m in profile.methods.items())
        + f"; baselines {profile.baselines()}.",
        "",
        f"Each difference is method minus baseline on the same items with the same training seed, averaged over "
        f"seeds; [{level}% CI] from a hierarchical bootstrap over seeds and items ({exp.bootstrap_iters} resamples), "
        "not adjusted for multiplicity; p is two-sided and Holm-adjusted over all contrasts of the scenario (with "
        f"{exp.bootstrap_iters} resamples the smallest unadjusted p is {2 / (exp.bootstrap_iters + 1):.4f}).",
        "",
        f"One significance mark throughout: **bold** in the tables and red in the forest plots mean a "
        f"Holm-adjusted p < {round(1 - exp.ci_level, 3)}. '{IDENTICAL_CELL}' marks a method that scored exactly "
        "as its baseline on every item and seed, as when both train with the same eps on every sample (e.g. "
        "`ual_oracle` on single-answer tasks: u = 0, so eps = eps_min).",
        "",
        "## Summary",
        "",
    ]


def _comparison_tables(sc: pd.DataFrame, ci_level: float) -> list[str]:
    """One table per benchmark of a scenario's comparisons."""
    level = int(round(100 * ci_level))
    lines: list[str] = []
    for bench, g in sc.groupby("benchmark", sort=True):
        lines += [
            f"### {bench}",
            "",
            f"| metric | difference | estimate [{level}% CI] | p (Holm) | seeds x items |",
            "|---|---|---|---|---|",
        ]
        for r in g.itertuples():
            cell = f"{_signed(r.estimate)} [{_signed(r.ci_low)}, {_signed(r.ci_high)}]"
            if identical(r):
                cell = IDENTICAL_CELL
            elif significant(r, ci_level):
                cell = f"**{cell}**"
            lines.append(
                f"| {r.metric} | {r.method} - {r.baseline} | {cell} | {_p(r.p_adjusted)} | {r.n_seeds} x {r.n_items} |"
            )
        lines.append("")
    return lines


def _curves_section(store: DuckDBStore, seeds: list[int], out_dir: Path) -> tuple[list[str], Path | None, int]:
    """The first seed's training curves (lines, plot, number of curve points)."""
    curves = read_training_curves(store)
    curves = curves[curves["seed"].isin(seeds[:1])]
    if curves.empty:
        return [], None, 0
    plot = plot_training_curves(curves, out_dir / "training_curves.png")
    lines = [
        f"## Training curves (seed {seeds[0]})",
        "",
        "Plain token NLL of the training targets per step (cross-entropy without smoothing, on the "
        "tokens each method trains on), so the methods compare; each method's own objective, smoothed "
        "for LS and UAL, is the `loss` column of DuckDB `training_curves`.",
        "",
        "![training curves](training_curves.png)",
        "",
    ]
    return lines, plot, len(curves)


def _uncertainty_section(store: DuckDBStore, profile: Profile, out_dir: Path) -> tuple[list[str], Path | None, int]:
    """The current elicitor's scores per data set and UAL's eps (lines, plot, number of scores)."""
    unc = ok_scores(store, elicitor_fingerprint(profile.elicitation), list(profile.datasets))
    if unc.empty:
        return [], None, 0
    plot = plot_uncertainty(unc, dict(profile.methods), out_dir / "uncertainty.png")
    summary = unc.groupby("dataset")["uncertainty"].agg(["count", "mean", "std"]).reset_index()
    lines = [
        "## Elicited uncertainty (current elicitor) and UAL epsilon",
        "",
        "| dataset | n | mean u | sd u |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s.dataset} | {s.count} | {s.mean:.3f} | {_num(s.std)} |" for s in summary.itertuples()]
    lines += ["", "![uncertainty](uncertainty.png)", ""]
    return lines, plot, len(unc)


def comparison_report(store: DuckDBStore, out_dir: str | Path, profile: Profile) -> ReportResult:

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = dict(profile.methods)
    scores = current_rows(profile, read_scores(store))
    if scores.empty:
        raise ValueError("comparison_report: eval_scores has no rows for this profile; materialise eval_scores first")
    cmp = read_comparisons(store)
    cmp = cmp[cmp["scenario"].isin(list(profile.scenarios))]
    exp = profile.experiment
    plots: list[Path] = []
    lines = _intro_lines(profile)
    lines += [scenario_sentence(s, cmp) + "  " for s in profile.scenarios]
    caveats = [c for c in (seed_caveat(len(exp.seeds)), holm_floor_caveat(cmp, exp.bootstrap_iters, exp.ci_level)) if c]
    lines += caveats
    lines.append("")
    for scen in profile.scenarios:
        sc = cmp[cmp["scenario"] == scen]
        if sc.empty:
            continue
        lines += [f"## {scen}", ""]
        lines += _comparison_tables(sc, exp.ci_level)
        forest = plot_forest(cmp, scen, methods, out_dir / f"forest_{scen}.png", exp.ci_level)
        if forest is not None:
            plots.append(forest)
            lines += [f"![forest plot {scen}]({forest.name})", ""]
        dose = _dose_response_section(cmp, scen, profile, out_dir)
        if dose is not None:
            plots.append(dose[0])
            lines += dose[1]
    comparable = _comparable_with_paper(profile)
    lines += _scores_section(scores[scores["benchmark"] != CLUSTERING], list(methods), comparable)
    if not comparable:
        lines += [
            "The paper's figures (mixed scenario: +10.62 AlpacaEval win-rate points; +1.81 accuracy points, the "
            "abstract's mean over MetaMath and GSM8K) are not shown beside these scores: this profile's "
            "benchmarks are the testbed's, on other scales.",
            "",
        ]
    else:
        lines += [PAPER_LOW_ENTROPY_NOTE, ""]
    lines += _clustering_section(scores, methods)
    curve_lines, curve_plot, n_curves = _curves_section(store, list(exp.seeds), out_dir)
    unc_lines, unc_plot, n_unc = _uncertainty_section(store, profile, out_dir)
    lines += curve_lines + unc_lines
    plots += [p for p in (curve_plot, unc_plot) if p is not None]
    validity = _validity_section(store, profile)
    lines += validity
    md = out_dir / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fp = stable_hash(
        versions.REPORT,
        scores.drop(columns=["created_at"]).to_json(orient="records"),
        cmp.to_json(orient="records"),
        {n: m.model_dump(mode="json") for n, m in methods.items()},
        n_curves,
        n_unc,
        validity,
    )
    excl = cmp[(cmp["ci_low"] > 0) | (cmp["ci_high"] < 0)]
    metadata = {
        "report": str(md),
        "plots": [str(p) for p in plots],  # for the caller; the asset shows them as pictures, not as paths
        "figures": "every plot is a picture in `preview` (the report as Markdown; open it with 'Show Markdown')",
        "comparisons": len(cmp),
        "comparisons_excluding_zero": len(excl),
        "summary": [scenario_sentence(s, cmp) for s in profile.scenarios] + caveats,
        "training_curve_points": n_curves,
        "uncertainty_rows": n_unc,
    }
    return ReportResult(fp, md, plots, cmp, metadata)


# With fewer seeds than this the summary says what its intervals leave out.
MIN_SEEDS_FOR_TRAINING_VARIANCE = 3


def seed_caveat(n_seeds: int) -> str | None:
    """One sentence for a run with fewer than 3 seeds: its intervals cover the item sample only."""
    if n_seeds >= MIN_SEEDS_FOR_TRAINING_VARIANCE:
        return None
    runs = "one training run" if n_seeds == 1 else f"{n_seeds} training runs"
    return (
        f"With {runs} per method, these intervals cover the sampling of held-out items only, not training "
        "randomness (another seed can move a difference by more than its interval); the `study` profile trains "
        "5 seeds per method."
    )


def holm_floor_caveat(cmp: pd.DataFrame, iters: int, level: float) -> str | None:
    """One sentence when too few resamples make Holm's adjustment unpassable: the bootstrap's
    smallest p is 2/(iters+1), so over m contrasts the smallest adjusted p is m times that."""
    alpha = 1 - level
    floor_p = 2 / (iters + 1)
    blocked = {str(s): len(g) for s, g in cmp.groupby("scenario", sort=True) if len(g) * floor_p >= alpha}
    if not blocked:
        return None
    worst = max(blocked.values())
    needed = math.floor(2 * worst / alpha) + 1
    where = ", ".join(f"{s} ({m} contrasts: {min(1.0, m * floor_p):.3f})" for s, m in blocked.items())
    return (
        f"No difference can pass Holm's adjustment in {where}: with {iters} resamples the smallest adjusted p is "
        f"the number of contrasts times {floor_p:.4f}, not below {round(alpha, 3)}; set "
        f"`experiment.bootstrap_iters` to at least {needed}."
    )


def _dose_response_section(
    cmp: pd.DataFrame, scenario: str, profile: Profile, out_dir: Path
) -> tuple[Path, list[str]] | None:
    """The sweep's dose-response plot of this scenario and its Markdown (None without a sweep)."""
    points = profile.sweep_points()
    baseline = sft_baseline(profile)
    if not points or baseline is None:
        return None
    rows = dose_response_rows(cmp, scenario, points, baseline)
    path = plot_dose_response(rows, scenario, baseline, out_dir / f"dose_response_{scenario}.png")
    if path is None:
        return None
    text = (
        f"Dose-response of the sweep (experiment.sweep): each point's difference from `{baseline}` against "
        f"{rows.attrs['dose_field']}, estimate and {int(round(100 * profile.experiment.ci_level))}% CI, one line "
        f"per method family and other swept value; `{baseline}` at (0, 0)."
    )
    return path, [text, "", f"![dose-response {scenario}]({path.name})", ""]


def _validity_section(store: DuckDBStore, profile: Profile) -> list[str]:
    """Each elicitor with rows on these data sets against the known intrinsic uncertainty."""

    if not scores_and_samples_exist(store):
        return []
    table = elicitor_validity(store, list(profile.datasets))
    if table.empty:
        return []
    return [
        "## Elicitor validity",
        "",
        "Every elicitor with scores on this profile's data sets, against the testbed's known intrinsic uncertainty: "
        "Spearman's rho and the AUC for telling many-answer from single-answer tasks, overall and within each kind. "
        "Separating the kinds is easy; ranking within the many-answer kind is what per-sample smoothing needs "
        "beyond per-family smoothing.",
        "",
        format_validity(table),
        "",
    ]


def _describe(m: MethodConfig) -> str:
    if m.kind == "sft":
        return "sft, eps 0"
    if m.kind == "ls":
        return f"ls, eps = mean eps of {m.match}" if m.match else f"ls, eps {m.epsilon}"
    return f"ual, eps {m.eps_min}-{m.eps_max} {m.mapping} of {m.uncertainty} u"
