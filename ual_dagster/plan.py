"""`python -m ual_dagster plan [PROFILE] --json`: what a run of the profile will do and cost,
computed from the profile and the state folder alone (no API, hub or model is touched).

Elicitation: the rows ual_dagster.data.selection would elicit (the scenarios' rows plus the
reserve, plus held-out probes), minus those already scored under the current elicitor.
When a data set is not loaded yet (e.g. `paper` before its first run) its ids are unknown,
so the counts come from the scenario shares (capped by the data set's `limit`) and the
prompt length from ASSUMED_ROW_CHARS; `basis` says which datasets were estimated that way.
Completion tokens are counted at `max_tokens` per call: an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ual_dagster.config import Profile
from ual_dagster.config.elicitation import HFLocalElicitation, OpenAIElicitation
from ual_dagster.data.scenarios import scenario_shares
from ual_dagster.data.selection import elicitation_targets, window_size
from ual_dagster.elicitation.cost import calls_per_row, estimate_cost_usd, estimate_tokens
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.prompt import load_template
from ual_dagster.storage import DuckDBStore, StatePaths

# instruction + input + response of a typical Alpaca / MetaMathQA row, in characters
# (Alpaca's mean is about 500, MetaMathQA's about 900): used only before a data set is loaded.
ASSUMED_ROW_CHARS = 800


@dataclass
class DatasetPlan:
    dataset: str
    rows_used: int  # what the scenarios train on plus the held-out probes
    to_elicit: int  # rows_used plus the reserve: the rows elicitation asks about
    cached: int
    row_chars: float  # mean instruction+input+output length of the rows to elicit
    basis: str  # "samples" (ids known) or "estimate" (data set not loaded yet)


def _table_exists(con, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0]
    )


def _known_rows(store: DuckDBStore | None, dataset: str) -> dict[str, list[tuple[str, int]]]:
    """split -> [(sample_id, text length)] of a loaded data set (empty if not loaded)."""
    if store is None:
        return {}
    with store.connect(read_only=True) as con:
        if not _table_exists(con, "samples"):
            return {}
        rows = con.execute(
            "SELECT split, sample_id, any_value(length(instruction) + length(input) + length(output)) "
            "FROM samples WHERE dataset = ? GROUP BY split, sample_id",
            [dataset],
        ).fetchall()
    out: dict[str, list[tuple[str, int]]] = {}
    for split, sid, n in rows:
        out.setdefault(split, []).append((sid, int(n)))
    return out


def _scored(store: DuckDBStore | None, dataset: str, elicitor: str) -> set[str]:
    if store is None:
        return set()
    with store.connect(read_only=True) as con:
        if not (_table_exists(con, "uncertainty") and _table_exists(con, "samples")):
            return set()
        rows = con.execute(
            "SELECT DISTINCT u.sample_id FROM uncertainty u JOIN samples s ON s.sample_id = u.sample_id "
            "WHERE s.dataset = ? AND u.elicitor = ? AND u.status = 'ok'",
            [dataset, elicitor],
        ).fetchall()
    return {r[0] for r in rows}


def _used_and_window(profile: Profile, dataset: str, train_known: int | None) -> tuple[int, int]:
    """(rows the scenarios train on, rows elicited for them) when only the shares are known.
    Scenarios with the same seed nest (one ranking), so per seed the largest share counts."""
    cfg = profile.elicitation
    used: dict[int, int] = {}
    window: dict[int, int] = {}
    for scen in profile.scenarios.values():
        share = scenario_shares(scen.size, scen.weights).get(dataset, 0)
        used[scen.seed] = max(used.get(scen.seed, 0), share)
        window[scen.seed] = max(window.get(scen.seed, 0), window_size(share, cfg.selection_reserve))
    cap = train_known if train_known is not None else profile.datasets[dataset].limit
    n_used, n_window = sum(used.values()), sum(window.values())
    if cap is not None:
        n_used, n_window = min(n_used, cap), min(n_window, cap)
    return n_used, n_window


def dataset_plan(profile: Profile, dataset: str, store: DuckDBStore | None) -> DatasetPlan:

    cfg = profile.elicitation
    known = _known_rows(store, dataset)
    if not known:  # not loaded: shares only
        used, window = _used_and_window(profile, dataset, None) if "train" in cfg.elicit_splits else (0, 0)
        if cfg.elicit_scope == "all":
            used = window = profile.datasets[dataset].limit or window
        return DatasetPlan(dataset, used, window, 0, float(ASSUMED_ROW_CHARS), "estimate")
    lengths = {sid: n for rows in known.values() for sid, n in rows}
    train = [sid for sid, _ in known.get("train", [])] if "train" in cfg.elicit_splits else []
    heldout = [sid for sid, _ in known.get("heldout", [])] if "heldout" in cfg.elicit_splits else []
    if cfg.elicit_scope == "all":
        targets = set(train) | set(heldout)
        used = len(targets)
    else:
        users = {n: s for n, s in profile.scenarios.items() if dataset in s.weights}
        targets = set(elicitation_targets(users, {dataset: train}, cfg.selection_reserve, {dataset: heldout})[dataset])
        used = _used_and_window(profile, dataset, len(train))[0] + len(heldout)
    cached = len(targets & _scored(store, dataset, elicitor_fingerprint(cfg)))
    chars = sum(lengths[s] for s in targets) / len(targets) if targets else 0.0
    return DatasetPlan(dataset, used, len(targets), cached, chars, "samples")


def plan(profile: Profile) -> dict[str, Any]:

    cfg = profile.elicitation
    paths = StatePaths.for_profile(profile)
    store = paths.store() if paths.duckdb.exists() else None
    per = [dataset_plan(profile, d, store) for d in profile.datasets]
    k = calls_per_row(cfg)
    billed = isinstance(cfg, OpenAIElicitation)
    template_chars = len(load_template(cfg.prompt)) if billed else 0
    asks_a_model = isinstance(cfg, OpenAIElicitation | HFLocalElicitation)
    calls = sum(p.to_elicit - p.cached for p in per) * k if asks_a_model else 0
    prompt_tokens = sum((p.to_elicit - p.cached) * estimate_tokens(int(template_chars + p.row_chars)) for p in per) * k
    completion_tokens, cost, cost_batch = 0, 0.0, 0.0
    if isinstance(cfg, OpenAIElicitation):  # only the openai backend has token limits and prices
        completion_tokens = calls * cfg.max_tokens
        cost = estimate_cost_usd(prompt_tokens, completion_tokens, cfg)
        cost_batch = estimate_cost_usd(prompt_tokens, completion_tokens, cfg, batch=True)
    # each (scenario, method) variant is trained and evaluated once per seed
    n_variants = len(profile.scenarios) * len(profile.methods) * len(profile.experiment.seeds)
    return {
        "profile": profile.name,
        "elicitation_calls": calls,
        "cached": sum(p.cached for p in per),
        "rows_to_elicit": sum(p.to_elicit for p in per),
        "rows_used": sum(p.rows_used for p in per),
        "estimated_cost_usd": round(cost, 2),
        "estimated_cost_usd_batch": round(cost_batch, 2),
        "estimated_prompt_tokens": prompt_tokens if billed else 0,
        "estimated_completion_tokens_max": completion_tokens if billed else 0,
        "training_rows": sum(s.size for s in profile.scenarios.values()),
        "train_runs": n_variants,
        "eval_runs": n_variants,
        "datasets": {
            p.dataset: {"rows_used": p.rows_used, "to_elicit": p.to_elicit, "cached": p.cached, "basis": p.basis}
            for p in per
        },
    }


def format_plan(result: dict[str, Any]) -> str:
    lines = [f"plan for profile {result['profile']!r} (nothing is called; see ual_dagster/plan.py for the estimates)"]
    for key in (
        "elicitation_calls",
        "cached",
        "rows_to_elicit",
        "rows_used",
        "estimated_cost_usd",
        "estimated_cost_usd_batch",
        "training_rows",
        "train_runs",
        "eval_runs",
    ):
        lines.append(f"  {key}: {result[key]}")
    for name, d in result["datasets"].items():
        lines.append(
            f"  {name}: {d['to_elicit']} to elicit ({d['cached']} cached, {d['rows_used']} used; {d['basis']})"
        )
    return "\n".join(lines)
