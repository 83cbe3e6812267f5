"""`python -m ual_dagster plan [PROFILE] --json`: what a run of the profile will do and cost,
computed from the profile and the state folder alone (no API, hub or model is touched).

Elicitation: the rows ual_dagster.data.selection would elicit (the scenarios' rows plus the
reserve, plus held-out probes), minus those already scored under the current elicitor.
When a data set is not loaded yet (e.g. `paper` before its first run) its ids are unknown,
so the counts come from the scenario shares (capped by the data set's `limit`) and the
prompt length from ASSUMED_ROW_CHARS; `basis` says which datasets were estimated that way.
Completion tokens are counted at `max_tokens` per call: an upper bound.

The rest of the bill: the AlpacaEval judge (one call per checkpoint and item), the tokens
generated in evaluation (an upper bound: every item at max_new_tokens), and GPU-hours for
training and generation, estimated from the base model's size and the profile's GPU
(orchestration.gpu) with the throughput model below (docs/paper.md, "What a run costs").
`paid_services` and `unattended_refusal` are what the schedule, the sensors and the
uncertainty assets consult before anything is spent without a person asking for it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from ual_dagster.config import Profile, resolve_path
from ual_dagster.config.elicitation import OPENAI_DEFAULT_URL, HFLocalElicitation, OpenAIElicitation
from ual_dagster.config.pins import task_reads_hub
from ual_dagster.data.scenarios import scenario_shares
from ual_dagster.data.selection import elicitation_targets, used_by_a_scenario, window_size
from ual_dagster.data.store import sample_lengths_by_split
from ual_dagster.elicitation.cost import calls_per_row, estimate_cost_usd, estimate_tokens
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.elicitation.prompt import load_template
from ual_dagster.elicitation.table import scored_ids
from ual_dagster.storage import DuckDBStore, StatePaths
from ual_dagster.testbed_families import family_quotas, heldout_count, select_families

# instruction + input + response of a typical Alpaca / MetaMathQA row, in characters
# (Alpaca's mean is about 500, MetaMathQA's about 900): used only before a data set is loaded.
ASSUMED_ROW_CHARS = 800

# -- the rest of the bill: sizes of the public evaluation sets and the judge's prompt ------
ALPACA_EVAL_ITEMS = 805  # tatsu-lab/alpaca_eval: the AlpacaEval (1 and 2) instruction set
GSM8K_TEST_ITEMS = 1319  # openai/gsm8k `main` test split (lm-eval's gsm8k and gsm8k_ual)
# Judge prompt per call, in tokens: the annotator's template (weighted_alpaca_eval_gpt4_turbo's
# is about 1,500 characters), the instruction (AlpacaEval's mean is about 160 characters) and
# the reference output (AlpacaEval 2's gpt4_1106_preview references average 2,049 characters,
# the leaderboard's avg_length); our output is counted at max_new_tokens (an upper bound).
JUDGE_TEMPLATE_TOKENS = 400
JUDGE_INSTRUCTION_TOKENS = 40
JUDGE_REFERENCE_TOKENS = 512
# the logprob-weighted annotators ask for one token; the others for a short ranking answer
JUDGE_COMPLETION_TOKENS = {"weighted": 1, "other": 64}

# -- GPU-hours: a throughput model, not a measurement -------------------------------------
# dense bf16 tensor peak (FLOP/s) and HBM bandwidth (bytes/s), from NVIDIA's data sheets
GPU_SPECS: dict[str, tuple[float, float]] = {
    "A100-40GB": (312e12, 1.555e12),
    "A100-80GB": (312e12, 2.039e12),
    "H100-80GB": (989e12, 3.35e12),
    "H200": (989e12, 4.8e12),
    "L40S": (362e12, 0.864e12),
}
# Training: LoRA on a frozen base costs about 4 FLOPs per parameter and token (forward 2,
# backward through the activations 2; the base's weight gradients are not computed), 6 with
# gradient checkpointing (one more forward), at TRAIN_MFU of the peak (the project's GPU
# target in DESIGN.md: a LoRA step at 40% of bf16 peak).
TRAIN_MFU = 0.40
# Generation (transformers' generate, batch = generation.batch_size): each decoding step
# reads the bf16 weights once, at GENERATION_BANDWIDTH_EFFICIENCY of the HBM bandwidth.
GENERATION_BANDWIDTH_EFFICIENCY = 0.30
# parameters of known base models; others are read from a "<N>b" in the hub id
MODEL_PARAMS = {"meta-llama/Llama-2-7b-hf": 6.74e9, "mistralai/Mistral-7B-v0.1": 7.24e9}


@dataclass
class DatasetPlan:
    dataset: str
    rows_used: int  # what the scenarios train on plus the held-out probes
    to_elicit: int  # rows_used plus the reserve: the rows elicitation asks about
    cached: int
    row_chars: float  # mean instruction+input+output length of the rows to elicit
    basis: str  # "samples" (ids known) or "estimate" (data set not loaded yet)


def _known_rows(store: DuckDBStore | None, dataset: str) -> dict[str, list[tuple[str, int]]]:
    """split -> [(sample_id, text length)] of a loaded data set (empty if not loaded)."""
    return sample_lengths_by_split(store, dataset) if store is not None else {}


def _scored(store: DuckDBStore | None, dataset: str, elicitor: str) -> set[str]:
    return scored_ids(store, dataset, elicitor) if store is not None else set()


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
    cap = train_known if train_known is not None else _train_rows_from_config(profile, dataset)
    n_used, n_window = sum(used.values()), sum(window.values())
    if cap is not None:
        n_used, n_window = min(n_used, cap), min(n_window, cap)
    return n_used, n_window


def _train_rows_from_config(profile: Profile, dataset: str) -> int | None:
    """The training rows a data set has, where its config says so before it is loaded: a
    testbed's split (ual_dagster/data/testbed.py) and any data set's `limit`; else None."""
    cfg = profile.datasets[dataset]
    counts = [cfg.limit] if cfg.limit is not None else []
    if cfg.source == "testbed" and cfg.testbed is not None:
        tb = cfg.testbed
        quotas = family_quotas(select_families(tb), tb.n_samples, tb.heldout_fraction, tb.answers_per_prompt)
        counts.append(sum(q - heldout_count(q, tb.heldout_fraction) for q in quotas.values()))
    return min(counts) if counts else None


def dataset_plan(profile: Profile, dataset: str, store: DuckDBStore | None) -> DatasetPlan:

    cfg = profile.elicitation
    known = _known_rows(store, dataset)
    every_row = cfg.elicit_scope == "all" or not used_by_a_scenario(profile, dataset)  # as the asset elicits
    if not known:  # not loaded: shares only
        used, window = _used_and_window(profile, dataset, None) if "train" in cfg.elicit_splits else (0, 0)
        if every_row:
            used = window = profile.datasets[dataset].limit or window
        return DatasetPlan(dataset, used, window, 0, float(ASSUMED_ROW_CHARS), "estimate")
    lengths = {sid: n for rows in known.values() for sid, n in rows}
    train = [sid for sid, _ in known.get("train", [])] if "train" in cfg.elicit_splits else []
    heldout = [sid for sid, _ in known.get("heldout", [])] if "heldout" in cfg.elicit_splits else []
    if every_row:
        targets = set(train) | set(heldout)
        used = len(targets)
    else:
        users = {n: s for n, s in profile.scenarios.items() if dataset in s.weights}
        targets = set(elicitation_targets(users, {dataset: train}, cfg.selection_reserve, {dataset: heldout})[dataset])
        used = _used_and_window(profile, dataset, len(train))[0] + len(heldout)
    cached = len(targets & _scored(store, dataset, elicitor_fingerprint(cfg)))
    chars = sum(lengths[s] for s in targets) / len(targets) if targets else 0.0
    return DatasetPlan(dataset, used, len(targets), cached, chars, "samples")


def is_loopback_url(url: str | None) -> bool:
    """A server on this machine (the bundled heuristic, a local vLLM): no money is spent there."""
    if url == "local-heuristic":
        return True
    host = urlparse(url or "").hostname or ""
    return host in {"localhost", "127.0.0.1", "::1"} or host.startswith("127.")


def paid_services(profile: Profile) -> list[str]:
    """What in this profile calls a paid endpoint: an OpenAI-compatible elicitor or an
    AlpacaEval LLM judge at a non-loopback URL (OpenAI's by default)."""
    out = []
    el = profile.elicitation
    if isinstance(el, OpenAIElicitation) and not is_loopback_url(el.base_url or OPENAI_DEFAULT_URL):
        out.append(f"elicitation ({el.model} at {el.base_url or OPENAI_DEFAULT_URL})")
    ae = profile.evaluation.alpaca_eval
    if (
        ae is not None
        and ae.judge.kind == "alpaca_eval"
        and not is_loopback_url(ae.judge.base_url or OPENAI_DEFAULT_URL)
    ):
        out.append(f"judge ({ae.judge.model or ae.judge.annotator} at {ae.judge.base_url or OPENAI_DEFAULT_URL})")
    return out


def automation_on(profile: Profile) -> bool:
    """orchestration.automation, or by default: on unless something costs money."""
    explicit = profile.orchestration.automation
    return explicit if explicit is not None else not paid_services(profile)


def reelicit_schedule_on(profile: Profile) -> bool:
    explicit = profile.orchestration.reelicit_schedule
    return explicit if explicit is not None else not paid_services(profile)


def unattended_cap_usd(profile: Profile) -> float:
    """orchestration.max_unattended_cost_usd; by default 0 for a paid profile, no limit otherwise."""
    cap = profile.orchestration.max_unattended_cost_usd
    if cap is not None:
        return cap
    return 0.0 if paid_services(profile) else math.inf


def elicitation_cost_usd(profile: Profile, rows: int, row_chars: float = ASSUMED_ROW_CHARS) -> float:
    """What eliciting `rows` rows costs at the profile's prices (0 for a free elicitor)."""
    cfg = profile.elicitation
    if not isinstance(cfg, OpenAIElicitation) or is_loopback_url(cfg.base_url or OPENAI_DEFAULT_URL):
        return 0.0
    calls = rows * calls_per_row(cfg)
    prompt = calls * estimate_tokens(int(len(load_template(cfg.prompt)) + row_chars))
    return estimate_cost_usd(prompt, calls * cfg.max_tokens, cfg, batch=cfg.mode == "batch")


def unattended_refusal(profile: Profile, what: str, cost_usd: float | None, numbers: str) -> str | None:
    """The one line a scheduled or automated run refuses with, or None when it may spend
    `cost_usd` (None: unknown, e.g. an unpriced judge: refused on a paid profile)."""
    cap = unattended_cap_usd(profile)
    if cost_usd is not None and cost_usd <= cap:
        return None
    cost = "an unknown cost" if cost_usd is None else f"${cost_usd:,.2f}"
    return (
        f"{what} refused before any call: the plan costs {cost} ({numbers}), more than "
        f"orchestration.max_unattended_cost_usd = ${cap:,.2f}; run `python -m ual_dagster plan {profile.name}` and "
        "materialise by hand, or raise the limit in the profile"
    )


def _heldout_rows(profile: Profile, store: DuckDBStore | None, dataset: str) -> int | None:
    """Held-out rows of a data set: counted in DuckDB once loaded, from a testbed's config before."""
    known = _known_rows(store, dataset)
    if known:
        return len(known.get("heldout", []))
    cfg = profile.datasets.get(dataset)
    if cfg is not None and cfg.source == "testbed" and cfg.testbed is not None:
        tb = cfg.testbed
        quotas = family_quotas(select_families(tb), tb.n_samples, tb.heldout_fraction, tb.answers_per_prompt)
        return sum(heldout_count(q, tb.heldout_fraction) for q in quotas.values())
    return None


def _count_lines(path: str) -> int | None:
    p = resolve_path(path)
    if not p.is_file():
        return None
    with p.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def _alpaca_items(profile: Profile, store: DuckDBStore | None) -> int | None:
    ae = profile.evaluation.alpaca_eval
    if ae is None:
        return 0
    n: int | None
    if ae.instructions == "hub":
        n = ALPACA_EVAL_ITEMS
    elif ae.instructions == "file":
        p = resolve_path(ae.path or "")
        n = len(json.loads(p.read_text(encoding="utf-8"))) if ae.path and p.is_file() else None
    else:
        counts = [_heldout_rows(profile, store, d) for d in ae.datasets]
        n = None if None in counts else sum(c or 0 for c in counts)
    return min(n, ae.limit) if n is not None and ae.limit is not None else n


def _lm_eval_items(profile: Profile, store: DuckDBStore | None) -> tuple[int, list[str]]:
    """(items over all lm-eval tasks, tasks whose size is unknown before a run)."""
    total, unknown = 0, []
    for task in profile.evaluation.lm_eval:
        n: int | None = None
        if task.data_path:
            n = _count_lines(task.data_path)
        elif task.name in ("gsm8k", "gsm8k_ual") and task_reads_hub(task):
            n = GSM8K_TEST_ITEMS
        elif task.name == "testbed_exact_heldout":
            n = _heldout_rows(profile, store, task.dataset)
        if n is None:
            unknown.append(task.name)
            continue
        total += min(n, task.limit) if task.limit is not None else n
    return total, unknown


def base_model_params(profile: Profile) -> float | None:
    bm = profile.base_model
    ident = bm.hub_id or bm.path or ""
    if ident in MODEL_PARAMS:
        return MODEL_PARAMS[ident]
    found = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", ident.rsplit("/", 1)[-1])
    if found:
        return float(found.group(1)) * 1e9
    found = re.search(r"(\d+(?:\.\d+)?)[mM](?![a-zA-Z])", ident.rsplit("/", 1)[-1])
    return float(found.group(1)) * 1e6 if found else None


def gpu_throughput(profile: Profile) -> tuple[float, float] | str:
    """(training tokens/s, generated tokens/s) per GPU from the throughput model, or why not."""
    gpu = profile.orchestration.gpu
    if gpu is None:
        return "the profile names no GPU (orchestration.gpu)"
    if gpu not in GPU_SPECS:
        return f"no throughput figures for GPU {gpu!r}; known: {sorted(GPU_SPECS)}"
    params = base_model_params(profile)
    if params is None:
        return "base model size unknown (not in MODEL_PARAMS and no '<N>b' in its id)"
    peak, bandwidth = GPU_SPECS[gpu]
    flops_per_token = (6 if profile.training.gradient_checkpointing else 4) * params
    train_tps = TRAIN_MFU * peak / flops_per_token
    gen_tps = profile.evaluation.generation.batch_size * GENERATION_BANDWIDTH_EFFICIENCY * bandwidth / (2 * params)
    return train_tps, gen_tps


def judge_estimate(profile: Profile, alpaca_items: int | None) -> tuple[int, float | None]:
    """(judge calls, USD) for judging every checkpoint on `alpaca_items` items; USD is None
    for a paid judge without prices, 0 for a loopback one."""
    ae = profile.evaluation.alpaca_eval
    if ae is None or ae.judge.kind != "alpaca_eval":
        return 0, 0.0
    j = ae.judge
    calls = len(profile.scenarios) * len(profile.methods) * len(profile.experiment.seeds) * (alpaca_items or 0)
    if is_loopback_url(j.base_url or OPENAI_DEFAULT_URL):
        return calls, 0.0
    if j.price_per_1k_prompt_tokens is None or j.price_per_1k_completion_tokens is None:
        return calls, None
    prompt = JUDGE_TEMPLATE_TOKENS + JUDGE_INSTRUCTION_TOKENS + JUDGE_REFERENCE_TOKENS
    prompt += profile.evaluation.generation.max_new_tokens
    completion = JUDGE_COMPLETION_TOKENS["weighted" if "weighted" in j.annotator else "other"]
    per_call = prompt / 1000 * j.price_per_1k_prompt_tokens + completion / 1000 * j.price_per_1k_completion_tokens
    return calls, calls * per_call


def unattended_judge_refusal(profile: Profile) -> str | None:
    """Why the automation may not start the per-checkpoint evaluations (their judge is paid
    and costs more than the unattended limit), from the profile alone; None when it may."""
    if not any(p.startswith("judge") for p in paid_services(profile)):
        return None
    calls, cost = judge_estimate(profile, _alpaca_items(profile, None))
    return unattended_refusal(profile, "automated evaluation", cost, f"{calls:,} judge calls")


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
    elicitation_paid = isinstance(cfg, OpenAIElicitation) and not is_loopback_url(cfg.base_url or OPENAI_DEFAULT_URL)
    # each (scenario, method) variant is trained and evaluated once per seed
    n_variants = len(profile.scenarios) * len(profile.methods) * len(profile.experiment.seeds)

    # the judge: one call per checkpoint and AlpacaEval item
    gen = profile.evaluation.generation
    alpaca_items = _alpaca_items(profile, store)
    judge_calls, judge_cost = judge_estimate(profile, alpaca_items)
    judge_paid = any(p.startswith("judge") for p in paid_services(profile))

    # generation in evaluation (AlpacaEval outputs and lm-eval tasks), every item at max_new_tokens
    lm_items, unknown_sets = _lm_eval_items(profile, store)
    if alpaca_items is None:
        unknown_sets.append("alpaca_eval")
    generation_tokens = n_variants * ((alpaca_items or 0) + lm_items) * gen.max_new_tokens

    # training tokens: every scenario row, every epoch, at the rows' mean length (capped by max_length)
    chars = {p.dataset: p.row_chars for p in per}
    training_tokens = 0
    for scen in profile.scenarios.values():
        shares = scenario_shares(scen.size, scen.weights)
        for d, n in shares.items():
            row_tokens = min(profile.training.max_length, estimate_tokens(int(chars.get(d, ASSUMED_ROW_CHARS))))
            training_tokens += n * row_tokens
    training_tokens = int(
        training_tokens * len(profile.methods) * len(profile.experiment.seeds) * profile.training.epochs
    )

    throughput = gpu_throughput(profile)
    gpu_hours = gpu_cost = None
    if isinstance(throughput, tuple):
        gpu_hours = round((training_tokens / throughput[0] + generation_tokens / throughput[1]) / 3600, 1)
        if profile.orchestration.gpu_usd_per_hour is not None:
            gpu_cost = round(gpu_hours * profile.orchestration.gpu_usd_per_hour, 2)
    elicitation_usd = cost_batch if isinstance(cfg, OpenAIElicitation) and cfg.mode == "batch" else cost
    api_usd = None if judge_cost is None else elicitation_usd + judge_cost
    total = None if api_usd is None else api_usd + (gpu_cost or 0.0)
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
        "judge_calls": judge_calls,
        "judge_cost_usd": None if judge_cost is None else round(judge_cost, 2),
        "generation_tokens": generation_tokens,
        "training_tokens": training_tokens,
        "gpu": profile.orchestration.gpu,
        "gpu_hours": gpu_hours,
        "gpu_hours_basis": "estimate: throughput model in ual_dagster/plan.py (docs/paper.md)"
        if gpu_hours is not None
        else str(throughput),
        "gpu_cost_usd": gpu_cost,
        "total_cost_usd": None if total is None else round(total, 2),
        "paid_services": paid_services(profile),
        "unknown_eval_set_sizes": unknown_sets,
        "elicitation_paid": elicitation_paid,
        "judge_paid": judge_paid,
        "datasets": {
            p.dataset: {"rows_used": p.rows_used, "to_elicit": p.to_elicit, "cached": p.cached, "basis": p.basis}
            for p in per
        },
    }


def plan_numbers(result: dict[str, Any]) -> str:
    """The plan's money numbers on one line (for refusals and logs)."""
    judge = "unknown" if result["judge_cost_usd"] is None else f"${result['judge_cost_usd']:,.2f}"
    return (
        f"{result['elicitation_calls']:,} elicitation calls ${result['estimated_cost_usd']:,.2f}, "
        f"{result['judge_calls']:,} judge calls {judge}, {result['generation_tokens']:,} generated tokens, "
        f"{result['gpu_hours'] if result['gpu_hours'] is not None else '?'} GPU-hours"
    )


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
        "judge_calls",
        "judge_cost_usd",
        "generation_tokens",
        "gpu",
        "gpu_hours",
        "total_cost_usd",
    ):
        lines.append(f"  {key}: {result[key]}")
    for name, d in result["datasets"].items():
        # to elicit: the rows that still cost a call (the selected ones minus those cached)
        lines.append(
            f"  {name}: to elicit: {d['to_elicit'] - d['cached']} ({d['cached']} cached, "
            f"{d['rows_used']} used; {d['basis']})"
        )
    if result["gpu_hours"] is None:
        lines.append(f"  gpu_hours: {result['gpu_hours_basis']}")
    return "\n".join(lines)
