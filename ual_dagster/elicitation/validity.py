"""Elicitor validity: does an elicitor's u rank samples like their known intrinsic uncertainty?

For every elicitor with ok rows in the `uncertainty` table, over the samples of the given
data sets that have a known intrinsic uncertainty (the generated testbed):

- scope `overall`: all such samples. Spearman's rho of u against the intrinsic value, and
  ROC AUC of u for telling the kinds apart (positive = many valid answers).
- scope `many_answers`: within the many-answer kind. Intrinsic uncertainty is graded there
  (log k / log K_MAX for k valid answers, ual_dagster/data/testbed.py), so Spearman says
  whether u orders tasks by how many answers they admit. AUC needs two classes: None.
- scope `single_answer`: intrinsic uncertainty is 0 for every sample (k = 1), so neither a
  rank correlation nor an AUC exists: both None, with the reason in `note`.

The kind of a sample is its testbed family's kind where the family is known, else
`single_answer` when its intrinsic value is 0 (k = 1) and `many_answers` otherwise.
scipy.stats.spearmanr and sklearn.metrics.roc_auc_score compute the statistics; a scope
where u or the intrinsic value is constant gets None and a note instead of NaN.
"""

from __future__ import annotations

import math

import pandas as pd

from ual_dagster.elicitation.table import ok_scores_with_intrinsic
from ual_dagster.storage import DuckDBStore
from ual_dagster.testbed_families import FAMILIES

COLUMNS = ["elicitor", "elicitor_name", "scope", "n", "spearman", "spearman_p", "auc", "note"]
SCOPES = ("overall", "single_answer", "many_answers")
MIN_N = 3  # fewer pairs give no meaningful rank correlation


def elicitor_name(elicitor: str) -> str:
    """A readable name from a fingerprint 'backend:model:prompt:method:digest', e.g. 'heuristic-v1 (openai, verbalized)'."""
    parts = elicitor.split(":")
    if parts[0] == "oracle":
        return "oracle (intrinsic uncertainty)"
    if parts[0] == "file" and len(parts) >= 2:
        return f"{parts[1]} (imported file)"
    if len(parts) < 5:
        return elicitor
    return f"{parts[1]} ({parts[0]}, {parts[3]})"


def _kind(family: str | None, intrinsic: float) -> str:

    if family in FAMILIES:
        return FAMILIES[family].kind
    return "single_answer" if intrinsic == 0 else "many_answers"


def _load(store: DuckDBStore, datasets: list[str]) -> pd.DataFrame:
    if not datasets:
        return pd.DataFrame(columns=["elicitor", "u", "intrinsic", "family"])
    return ok_scores_with_intrinsic(store, datasets)


def _constant(values: pd.Series) -> bool:
    return values.nunique() < 2


def _spearman(u: pd.Series, intrinsic: pd.Series) -> tuple[float | None, float | None, str | None]:
    from scipy.stats import spearmanr

    if len(u) < MIN_N:
        return None, None, f"spearman: fewer than {MIN_N} samples"
    if _constant(intrinsic):
        return None, None, "spearman: intrinsic uncertainty is constant in this scope"
    if _constant(u):
        return None, None, "spearman: the elicitor gave every sample the same u"
    result = spearmanr(u, intrinsic)
    return float(result.statistic), float(result.pvalue), None


def _auc(u: pd.Series, positive: pd.Series) -> tuple[float | None, str | None]:
    from sklearn.metrics import roc_auc_score

    if positive.nunique() < 2:
        return None, "auc: one kind only in this scope (needs single- and many-answer samples)"
    return float(roc_auc_score(positive.astype(int), u)), None


def elicitor_validity(store: DuckDBStore, datasets: list[str]) -> pd.DataFrame:
    """One row per (elicitor, scope) with columns COLUMNS; scopes overall, single_answer, many_answers.

    Only elicitors with ok rows on samples with a known intrinsic uncertainty appear; a
    scope without samples is left out. `note` says why a statistic is None (the statistic
    columns hold floats or None).
    """
    data = _load(store, datasets)
    rows = []
    if data.empty:
        return pd.DataFrame(rows, columns=COLUMNS)
    data["kind"] = [_kind(f, i) for f, i in zip(data["family"], data["intrinsic"])]
    data["many"] = data["kind"] == "many_answers"
    for elicitor, group in data.groupby("elicitor", sort=True):
        for scope in SCOPES:
            part = group if scope == "overall" else group[group["kind"] == scope]
            if part.empty:
                continue
            rho, p, note_rho = _spearman(part["u"], part["intrinsic"])
            auc, note_auc = _auc(part["u"], part["many"])
            notes = [n for n in (note_rho, note_auc) if n]
            rows.append(
                {
                    "elicitor": elicitor,
                    "elicitor_name": elicitor_name(str(elicitor)),
                    "scope": scope,
                    "n": int(len(part)),
                    "spearman": rho,
                    "spearman_p": p,
                    "auc": auc,
                    "note": "; ".join(notes) or None,
                }
            )
    # object columns keep None as None (a float column would turn it into NaN)
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object)


def format_validity(table: pd.DataFrame) -> str:
    """The table as Markdown (3 decimals; '-' for None), for reports and docs."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| elicitor | scope | n | Spearman | p | AUC | note |", "|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(
            f"| {r.elicitor_name} | {r.scope} | {r.n} | {cell(r.spearman)} | {cell(r.spearman_p)} | {cell(r.auc)} | {cell(r.note)} |"
        )
    return "\n".join(lines)
