"""What the evaluation assets call: per-variant scores, token clustering, the roll-up, the report.

Each step is named by a fingerprint of its inputs; rows or files already written under
that fingerprint are reused, so a re-run with nothing changed loads no model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.evaluation.comparisons import compute_comparisons, matched_contrasts, write_comparisons
from ual_dagster.evaluation.eval_data import load_eval_data
from ual_dagster.evaluation.eval_sets import profile_eval_data, untrained_rows
from ual_dagster.evaluation.jobs import RESULT_FILE, SPEC_FILE, EvalJobSpec, result_rows, run_eval_job, write_eval_data
from ual_dagster.evaluation.report import comparison_report
from ual_dagster.evaluation.scores import current_rows, has_scores, read_items, read_scores, score_summary, write_scores
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log
from ual_dagster.storage import ArtifactStore, DuckDBStore
from ual_dagster.train.checkpoints import adapter_path, base_model_path
from ual_dagster.train.versioning import effective_training_config

CLUSTERING = "token_clustering"

# Runs one evaluation job: (spec, the path it is saved at, step "eval" | "cluster", the
# fingerprint that names the job) -> the job's result (jobs.run_eval_job's dict). The
# Dagster layer passes one that dispatches to the profile's evaluation.launcher.
JobRunner = Callable[..., dict]


def in_process_runner(log: Log = None) -> JobRunner:
    """Run the job in this process (launcher in_process)."""

    def run(spec: EvalJobSpec, spec_path: Path, *, step: str, fingerprint: str) -> dict:
        return run_eval_job(spec, log=log)

    return run


@dataclass
class StepResult:
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    markdown_path: Any = None
    markdown_text: str = ""


def _template(profile: Profile, method: str) -> str:

    return effective_training_config(profile.training, profile.methods[method]).prompt_template


def evaluate_variant(
    profile: Profile,
    store: DuckDBStore,
    artifacts: ArtifactStore,
    *,
    scenario: str,
    method: str,
    checkpoints: Mapping[int, str],
    base_fp: str,
    eval_sets_fp: str,
    log: Log = None,
    run_job: JobRunner | None = None,
) -> StepResult:
    """Evaluate each seed's checkpoint of (scenario, method); a seed whose scores and items
    already exist under its evaluation fingerprint loads no model. Each evaluation is a job
    (`run_job`, default: in this process) that writes files only; its result's rows are
    written to DuckDB here."""
    run_job = run_job or in_process_runner(log)
    per_seed: dict[str, Any] = {}
    fps: dict[int, str] = {}
    for seed, checkpoint_fp in sorted(checkpoints.items()):
        res = _evaluate_seed(
            profile,
            store,
            artifacts,
            scenario=scenario,
            method=method,
            seed=seed,
            checkpoint_fp=checkpoint_fp,
            base_fp=base_fp,
            log=log,
            run_job=run_job,
        )
        fps[seed] = res.fingerprint
        per_seed[str(seed)] = {"eval_fingerprint": res.fingerprint, "reused": res.reused, **res.metadata}
    fingerprint = stable_hash(versions.EVAL_PIPELINE, "evaluations", sorted(fps.items()))
    meta = {
        "seeds": sorted(checkpoints),
        "evaluated": sum(not v["reused"] for v in per_seed.values()),
        "per_seed": per_seed,
        "eval_sets": eval_sets_fp,
    }
    return StepResult(fingerprint, meta, reused=all(v["reused"] for v in per_seed.values()))


def _evaluate_seed(
    profile: Profile,
    store: DuckDBStore,
    artifacts: ArtifactStore,
    *,
    scenario: str,
    method: str,
    seed: int,
    checkpoint_fp: str,
    base_fp: str,
    log: Log,
    run_job: JobRunner,
) -> StepResult:
    from ual_dagster.evaluation.checkpoint_eval import evaluation_fingerprint  # lm-eval, torch: only where a step runs

    cfg = profile.evaluation
    data = profile_eval_data(profile, store)
    template = _template(profile, method)
    eval_fp = evaluation_fingerprint(checkpoint_fp, cfg, data, template)
    if has_scores(store, eval_fp, scenario, method, seed) and has_scores(
        store, eval_fp, scenario, method, seed, table="eval_items"
    ):
        if log:
            log(f"evaluation {scenario}/{method} seed {seed}: scores for {eval_fp} exist, nothing to evaluate")
        return StepResult(eval_fp, {"scores": score_summary(store, eval_fp)}, reused=True)
    # Generations, lm-eval results and judge annotations are cached under the artifacts by
    # their own keys, so rebuilding a missing items table loads no model either.
    job_dir = artifacts.root / "evaluation" / "jobs" / eval_fp
    spec = EvalJobSpec(
        task="evaluate",
        base_path=base_model_path(store, base_fp),
        adapter_path=str(adapter_path(artifacts, checkpoint_fp)),
        checkpoint_fp=checkpoint_fp,
        evaluation=cfg.model_dump(mode="json"),
        eval_data_path=str(write_eval_data(data, artifacts.root / "evaluation" / "data")),
        work_dir=str(artifacts.root / "evaluation"),
        prompt_template=template,
        label=f"{scenario}/{method}/seed {seed}",
        result_path=str(job_dir / RESULT_FILE),
    )
    result = run_job(spec, spec.save(job_dir / SPEC_FILE), step="eval", fingerprint=eval_fp)
    rows, items = result_rows(result)
    # replace this seed's rows of every benchmark but token_clustering's (that asset owns them),
    # including benchmarks the evaluation config no longer names
    existing = read_scores(store)
    mine = existing[(existing["scenario"] == scenario) & (existing["method"] == method) & (existing["seed"] == seed)]
    benchmarks = sorted((set(mine["benchmark"]) | {r.benchmark for r in rows}) - {CLUSTERING})
    write_scores(
        store,
        scenario,
        method,
        checkpoint_fp,
        eval_fp,
        rows,
        benchmarks=benchmarks,
        seed=seed,
        items=items,
    )
    return StepResult(eval_fp, result["metadata"])


def probe_data(profile: Profile, store: DuckDBStore):
    """The probe set of token_clustering: the evaluation's held-out rows, or, when the
    evaluation reads none locally (the paper profile takes gsm8k and AlpacaEval from the
    hub), the held-out split of the profile's data sets, or, where they have none (hub data
    sets), their rows that no scenario can train on (eval_sets.untrained_rows). A seeded
    sample is drawn from it; probes never overlap training rows."""

    data = profile_eval_data(profile, store)
    if data.all_items():
        return data
    heldout = load_eval_data(store, list(profile.datasets), split="heldout")
    if heldout.all_items():
        return heldout
    untrained = untrained_rows(profile, store)
    if not untrained.all_items():
        raise ValueError(
            f"token_clustering: data sets {sorted(profile.datasets)} have no held-out rows and every train row "
            "may be trained on; add a held-out split or shrink the scenarios"
        )
    return untrained


def cluster_checkpoints(
    profile: Profile,
    store: DuckDBStore,
    artifacts: ArtifactStore,
    *,
    checkpoints: Mapping[tuple[str, str], str],
    base_fp: str,
    eval_sets_fp: str,
    seed: int = 0,
    log: Log = None,
    run_job: JobRunner | None = None,
) -> StepResult:
    """Token clustering of each variant's checkpoint of one seed (the profile's first: the
    analysis is descriptive, and a pass per seed would multiply its cost), reusing any
    fingerprint computed before (table token_clustering).

    A side analysis never fails the step: a checkpoint that cannot be clustered is
    reported under `failed` (its clustering rows in eval_scores are removed), so the
    scores and the report still build.
    """
    from ual_dagster.evaluation.clustering import (  # torch, sklearn: only where a step runs
        clustering_fingerprint,
        load_clustering,
        save_clustering,
    )

    run_job = run_job or in_process_runner(log)
    cfg = profile.evaluation.clustering
    data = probe_data(profile, store)
    data_path = str(write_eval_data(data, artifacts.root / "evaluation" / "data"))
    fps: dict[str, str] = {}
    scores: dict[str, Any] = {}
    plots: dict[str, str] = {}
    failed: dict[str, str] = {}
    transient: list[str] = []  # failures not kept in the cache: the next run tries again
    jobs: dict[str, Any] = {}  # engine jobs' metadata (job id, node, state), per checkpoint
    computed = 0
    for (scenario, method), ckpt in sorted(checkpoints.items()):
        label = f"{scenario}/{method}"
        template = _template(profile, method)
        cfp = clustering_fingerprint(ckpt, cfg, data, template)
        fps[label] = cfp
        outcome = load_clustering(store, cfp)
        if outcome is None:
            job_dir = artifacts.open("clustering", cfp)
            try:
                spec = EvalJobSpec(
                    task="cluster",
                    base_path=base_model_path(store, base_fp),
                    adapter_path=str(adapter_path(artifacts, ckpt)),
                    checkpoint_fp=ckpt,
                    evaluation=profile.evaluation.model_dump(mode="json"),
                    eval_data_path=data_path,
                    work_dir=str(job_dir),
                    prompt_template=template,
                    label=label,
                    result_path=str(job_dir / RESULT_FILE),
                )
                res = run_job(spec, spec.save(job_dir / SPEC_FILE), step="cluster", fingerprint=cfp)
                if res.get("metadata", {}).get("job"):
                    jobs[label] = res["metadata"]["job"]
                if res.get("input_error"):  # bad probe data: kept, so it is not retried
                    outcome = save_clustering(store, cfp, ckpt, [], error=res["input_error"])
                else:
                    outcome = save_clustering(store, cfp, ckpt, result_rows(res)[0])
            except Exception as exc:  # noqa: BLE001 - reported as a failed check, retried next run
                failed[label] = f"{type(exc).__name__}: {exc}"
                transient.append(label)
                write_scores(store, scenario, method, ckpt, cfp, [], benchmarks=[CLUSTERING], seed=seed)
                if log:
                    log(f"token clustering {label} failed: {failed[label]}")
                continue
            computed += 1
        if outcome.error:
            failed[label] = outcome.error
        if not has_scores(store, cfp, scenario, method, seed):  # eval_scores holds the current fingerprint's rows
            write_scores(store, scenario, method, ckpt, cfp, outcome.rows, benchmarks=[CLUSTERING], seed=seed)
        if outcome.rows:
            scores[label] = {r.metric: r.value for r in outcome.rows}
        plot = artifacts.path("clustering", cfp) / "pca_L-1.png"
        if plot.exists():
            plots[label] = str(plot)
    fp = stable_hash(versions.EVAL_PIPELINE, CLUSTERING, seed, fps, sorted(transient))
    meta = {
        "checkpoints_computed": computed,
        "seed": seed,
        "scores": scores,
        "plots": plots,
        "failed": failed,
        "eval_sets": eval_sets_fp,
        **({"jobs": jobs} if jobs else {}),
    }
    return StepResult(fp, meta, reused=computed == 0 and not transient)


def roll_up_scores(profile: Profile, store: DuckDBStore, upstream: Sequence[str]) -> StepResult:
    """One view over every variant and seed of the profile, and the paired `comparisons`
    computed from their per-item results; its version is that of its inputs and of the
    experiment settings the comparisons use."""

    exp = profile.experiment
    matched = matched_contrasts(profile.methods, profile.baselines())
    # the matched pairs enter the version only when there are some, so a profile without
    # them (every profile before sweeps) keeps its eval_scores version
    fingerprint = stable_hash(
        versions.EVAL_PIPELINE,
        "eval_scores",
        list(upstream),
        exp.model_dump(mode="json"),
        profile.baselines(),
        *([matched] if matched else []),
    )
    current = current_rows(profile, read_scores(store))
    table = current.pivot_table(index=["benchmark", "metric"], columns=["scenario", "method"], values="value")
    table.columns = [f"{s}/{m}" for s, m in table.columns]
    items = current_rows(profile, read_items(store))
    cmp = compute_comparisons(
        items,
        list(profile.methods),
        profile.baselines(),
        extra=matched,
        level=exp.ci_level,
        iters=exp.bootstrap_iters,
        seed=exp.bootstrap_seed,
    )
    write_comparisons(store, cmp, fingerprint)
    excluding_zero = cmp[(cmp["ci_low"] > 0) | (cmp["ci_high"] < 0)]
    meta = {
        "rows": len(current),
        "item_rows": len(items),
        "variants": int(current[["scenario", "method"]].drop_duplicates().shape[0]),
        "seeds": list(exp.seeds),
        "benchmarks": sorted(current["benchmark"].unique().tolist()),
        "comparisons": len(cmp),
        "comparisons_excluding_zero": len(excluding_zero),
        "scores_table": table.reset_index().to_markdown(index=False, floatfmt=".4g") if len(table) else "",
    }
    return StepResult(fingerprint, meta)


def write_report(profile: Profile, store: DuckDBStore, artifacts: ArtifactStore, eval_scores_fp: str) -> StepResult:

    methods_cfg = {n: m.model_dump(mode="json") for n, m in profile.methods.items()}
    fp = stable_hash(
        versions.EVAL_PIPELINE,
        versions.REPORT,
        "report",
        eval_scores_fp,
        methods_cfg,
        profile.experiment.model_dump(mode="json"),
    )
    out = artifacts.path("report", fp)
    reused = artifacts.is_finished("report", fp)
    if not reused:
        result = comparison_report(store, artifacts.open("report", fp), profile)
        artifacts.finish("report", fp, {"plots": [str(p) for p in result.plots], **result.metadata})
    md = out / "report.md"
    meta = dict(artifacts.manifest("report", fp))
    return StepResult(fp, meta, reused=reused, markdown_path=md, markdown_text=md.read_text(encoding="utf-8"))
