"""The cached scores of an elicitor: which samples have one, which are due again.

Reads only the `uncertainty` table (no HTTP client, no model), so the Dagster definitions,
the re-elicitation schedule and the training sets can use it without the elicitation stack.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from ual_dagster.config.elicitation import ElicitationConfig
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.table import pending_samples, scored_samples, to_naive_utc
from ual_dagster.fingerprint import hash_rows
from ual_dagster.storage import DuckDBStore

SCORE_ROUNDING = 6


def stale_cutoff(cfg: ElicitationConfig, now: datetime, stale_before: datetime | None) -> datetime | None:
    """ok rows created before this are re-elicited (latest of stale_before and now - ttl_days)."""
    candidates = []
    if stale_before is not None:
        candidates.append(to_naive_utc(stale_before))
    if cfg.ttl_days is not None:
        candidates.append(to_naive_utc(now) - timedelta(days=cfg.ttl_days))
    return max(candidates) if candidates else None


def stale_samples(
    store: DuckDBStore, dataset: str, cfg: ElicitationConfig, now: datetime, only: Collection[str] | None = None
) -> list[str]:
    """Sample ids needing (re-)elicitation: missing, failed/unparseable, only scored by another
    elicitor, or scored longer than ttl_days before `now`. For the re-elicitation schedule."""
    cutoff = stale_cutoff(cfg, now, None)
    pending, _ = pending_samples(store, dataset, elicitor_fingerprint(cfg), cfg.elicit_splits, cutoff, only)
    return [s.sample_id for s in pending]


def current_scores(store: DuckDBStore, dataset: str, cfg: ElicitationConfig) -> dict[str, float]:
    """sample_id -> u for every sample of the dataset (any split) with an ok score under cfg's elicitor."""
    with store.connect() as con:
        rows = scored_samples(con, dataset, elicitor_fingerprint(cfg))
    return {sample_id: float(u) for sample_id, u, _, _ in rows}


def scores_fingerprint(scores: dict[str, float]) -> str:
    return hash_rows([sid, round(u, SCORE_ROUNDING)] for sid, u in scores.items())
