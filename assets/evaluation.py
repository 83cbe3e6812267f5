"""eval_sets, eval_<scenario>_<method>, eval_scores, token_clustering, comparison_report."""

from pathlib import Path

import dagster as dg

from assets.common import DATA_OR_CODE_CHANGED, check, code_version, finish
from assets.keys import (
    BASE_MODEL_KEY,
    EVAL_SCORES_KEY,
    EVAL_SETS_KEY,
    REPORT_KEY,
    TOKEN_CLUSTERING_KEY,
    evaluation_key,
    instruction_set_key,
    key_str,
    lora_key,
)
from assets.launch import EngineJobsResource
from assets.resources import ArtifactStoreResource, DuckDBStoreResource
from assets.training import compute_pool
from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.config.training import InProcessLauncher, K8sLauncher
from ual_dagster.evaluation import eval_sets, pipeline
from ual_dagster.evaluation.eval_data import datasets_needed
from ual_dagster.figures import inline_markdown_images, markdown_image
from ual_dagster.storage import StatePaths
from ual_dagster.train.checkpoints import variant_checkpoints
from ual_dagster.train.entry_points import EVAL_ENTRY
from ual_dagster.train.k8s import k8s_pod_spec, pod_command


def _variants(profile: Profile) -> list[tuple[str, str]]:
    return [(s, m) for s in profile.scenarios for m in profile.methods]


def evaluation_launcher(profile: Profile) -> K8sLauncher | None:
    """The K8sLauncher evaluation pods are built from; None when evaluation does not run on Kubernetes."""
    launcher = profile.evaluation.launcher
    return launcher if isinstance(launcher, K8sLauncher) else None


def evaluation_pod_spec(launcher: K8sLauncher, state_dir: str | Path) -> dict:
    """The V1PodSpec dict of one evaluation (or token_clustering) pod, PipesK8sClient.run's
    base_pod_spec: the training pod's GPU scheduling, shared state volume (HF_HOME on it) and
    Secret by name (ual_dagster.train.k8s.k8s_pod_spec, role "eval"). The pod runs
    `python -m ual_dagster.evaluation.job_entry`, writes only content-addressed files under the
    state folder and reports through Pipes; the step process writes DuckDB."""
    return k8s_pod_spec(launcher, state_dir, role="eval")


def evaluation_pod_command(launcher: K8sLauncher) -> list[str]:
    """`python -m ual_dagster.evaluation.job_entry` (PipesK8sClient.run's command)."""
    return pod_command(launcher, role="eval")


def job_runner(
    context: dg.AssetExecutionContext, profile: Profile, engine_jobs: EngineJobsResource
) -> pipeline.JobRunner | None:
    """How this profile's evaluation jobs run: None (in this process) for launcher in_process,
    else an engine job per checkpoint through `engine_jobs` (assets/launch.py). The job's
    metadata (job id, node, elapsed time, state) is logged and kept in `context`'s run log."""
    launcher = profile.evaluation.launcher
    if isinstance(launcher, InProcessLauncher):
        return None
    k8s = evaluation_launcher(profile)
    pod_spec = evaluation_pod_spec(k8s, StatePaths.for_profile(profile).state_dir) if k8s else None
    pod_command = evaluation_pod_command(k8s) if k8s else None

    def run(spec, spec_path, *, step: str, fingerprint: str) -> dict:
        result, job = engine_jobs.run(
            context,
            launcher,
            step=step,
            fingerprint=fingerprint,
            module=EVAL_ENTRY,
            spec_path=spec_path,
            work_dir=spec_path.parent,
            pod_spec=pod_spec,
            pod_command=pod_command,
        )
        result.setdefault("metadata", {})["job"] = job
        return result

    return run


def eval_sets_asset(profile: Profile) -> dg.AssetsDefinition:

    cfg = profile.evaluation
    # only the data sets whose held-out rows are read: editing another data set leaves it fresh
    needed = [d for d in datasets_needed(cfg) if d in profile.datasets]

    @dg.asset(
        key=EVAL_SETS_KEY,
        group_name="evaluation",
        kinds={"duckdb"},
        deps=[instruction_set_key(d) for d in needed],
        code_version=code_version(versions.EVAL_SETS, needed),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="duckdb",
        description="The evaluation inputs (held-out items, benchmark files) exported once, named by their content "
        "hash, so that editing a training row leaves every evaluation fresh.",
    )
    def _asset(
        context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        store, arts = duckdb.store(), artifacts.store()
        result = eval_sets.build_eval_sets(profile, store, arts, log=context.log.info)
        return finish(store, EVAL_SETS_KEY, result.fingerprint, result.metadata, config=cfg)

    return _asset


def _evaluation_asset(profile: Profile, scenario: str, method: str) -> dg.AssetsDefinition:

    cfg = profile.evaluation
    key = evaluation_key(scenario, method)

    @dg.asset(
        key=key,
        group_name="evaluation",
        kinds={"pytorch", "duckdb"},
        deps=[lora_key(scenario, method), EVAL_SETS_KEY, BASE_MODEL_KEY],
        code_version=code_version(versions.EVAL_PIPELINE, cfg.model_dump(mode="json", exclude={"clustering"})),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool=compute_pool(cfg.launcher),
        description=f"lm-eval and AlpacaEval scores of {lora_key(scenario, method).to_user_string()} "
        "(rows in DuckDB table `eval_scores`); skipped when its checkpoint and eval config are unchanged.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        duckdb: DuckDBStoreResource,
        artifacts: ArtifactStoreResource,
        engine_jobs: EngineJobsResource,
    ) -> dg.MaterializeResult:
        store, arts = duckdb.store(), artifacts.store()
        store.require_version(key_str(lora_key(scenario, method)))
        result = pipeline.evaluate_variant(
            profile,
            store,
            arts,
            scenario=scenario,
            method=method,
            checkpoints=variant_checkpoints(store, scenario, method),
            base_fp=store.require_version(key_str(BASE_MODEL_KEY)),
            eval_sets_fp=store.require_version(key_str(EVAL_SETS_KEY)),
            log=context.log.info,
            run_job=job_runner(context, profile, engine_jobs),
        )
        return finish(store, key, result.fingerprint, result.metadata, config=cfg, reused=result.reused)

    return _asset


def token_clustering_asset(profile: Profile) -> dg.AssetsDefinition:

    cfg = profile.evaluation.clustering
    variants = _variants(profile)

    @dg.asset(
        key=TOKEN_CLUSTERING_KEY,
        group_name="evaluation",
        kinds={"pytorch", "duckdb"},
        deps=[lora_key(s, m) for s, m in variants] + [EVAL_SETS_KEY, BASE_MODEL_KEY],
        code_version=code_version(versions.EVAL_PIPELINE, cfg, profile.experiment.seeds[0]),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool=compute_pool(profile.evaluation.launcher),
        description="The paper's feature-space analysis: clustering quality of response-token hidden states by "
        "token identity (silhouette, Davies-Bouldin) per checkpoint and layer, with 2-D projections. A side "
        "analysis: a checkpoint it cannot score fails the WARN check `clustering_complete`, not the scores.",
        check_specs=[dg.AssetCheckSpec("clustering_complete", asset=TOKEN_CLUSTERING_KEY)],
    )
    def _asset(
        context: dg.AssetExecutionContext,
        duckdb: DuckDBStoreResource,
        artifacts: ArtifactStoreResource,
        engine_jobs: EngineJobsResource,
    ) -> dg.MaterializeResult:
        store, arts = duckdb.store(), artifacts.store()
        seed = profile.experiment.seeds[0]
        checkpoints = {(s, m): variant_checkpoints(store, s, m)[seed] for s, m in variants}
        result = pipeline.cluster_checkpoints(
            profile,
            store,
            arts,
            checkpoints=checkpoints,
            base_fp=store.require_version(key_str(BASE_MODEL_KEY)),
            eval_sets_fp=store.require_version(key_str(EVAL_SETS_KEY)),
            seed=seed,
            log=context.log.info,
            run_job=job_runner(context, profile, engine_jobs),
        )
        meta = dict(result.metadata)
        plots = meta.pop("plots", {})
        if plots:
            meta["plots"] = dg.MetadataValue.md(
                "\n\n".join(f"**{label}**\n\n{markdown_image(path, label)}" for label, path in plots.items())
            )
        failed = meta.get("failed", {})
        complete = check("clustering_complete", TOKEN_CLUSTERING_KEY, not failed, {"failed": failed}, warn=True)
        return finish(
            store,
            TOKEN_CLUSTERING_KEY,
            result.fingerprint,
            meta,
            config=cfg,
            reused=result.reused,
            check_results=[complete],
        )

    return _asset


def eval_scores_asset(profile: Profile) -> dg.AssetsDefinition:

    variants = _variants(profile)

    @dg.asset(
        key=EVAL_SCORES_KEY,
        group_name="evaluation",
        kinds={"duckdb"},
        deps=[evaluation_key(s, m) for s, m in variants] + [TOKEN_CLUSTERING_KEY],
        code_version=code_version(versions.EVAL_PIPELINE, profile.experiment, profile.baselines()),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="duckdb",
        description="All scores of every scenario x method x seed in DuckDB `eval_scores` (scenario, method, seed, "
        "checkpoint, benchmark, metric, value, stderr, n), per-item results in `eval_items`, and the paired "
        "`comparisons` of every method against each baseline (estimate, CI, Holm-adjusted p).",
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource) -> dg.MaterializeResult:
        store = duckdb.store()
        upstream = [store.require_version(key_str(evaluation_key(s, m))) for s, m in variants]
        upstream.append(store.require_version(key_str(TOKEN_CLUSTERING_KEY)))
        result = pipeline.roll_up_scores(profile, store, upstream)
        meta = dict(result.metadata)
        if isinstance(meta.get("scores_table"), str):
            meta["scores_table"] = dg.MetadataValue.md(meta["scores_table"])
        return finish(store, EVAL_SCORES_KEY, result.fingerprint, meta)

    return _asset


def comparison_report_asset(profile: Profile) -> dg.AssetsDefinition:

    @dg.asset(
        key=REPORT_KEY,
        group_name="evaluation",
        kinds={"markdown"},
        deps=[EVAL_SCORES_KEY],
        code_version=code_version(versions.EVAL_PIPELINE),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="duckdb",
        description="UAL vs SFT vs LS per scenario and benchmark, with deltas and their uncertainty and the "
        "paper's reported gains for reference: Markdown + PNG plots.",
    )
    def _asset(
        context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        store, arts = duckdb.store(), artifacts.store()
        result = pipeline.write_report(profile, store, arts, store.require_version(key_str(EVAL_SCORES_KEY)))
        meta = dict(result.metadata)
        meta.update(report_metadata(result.markdown_path, result.markdown_text, meta.pop("plots", None) or []))
        return finish(store, REPORT_KEY, result.fingerprint, meta, reused=result.reused)

    return _asset


def report_metadata(markdown_path, markdown_text: str, plots: list) -> dict[str, dg.MetadataValue]:
    """The report as Markdown whose images carry their PNGs (data: URIs: the UI cannot reach the
    state folder), plus any plot the Markdown does not show, each as its own image."""
    out: dict[str, dg.MetadataValue] = {}
    shown: list[Path] = []
    if markdown_path:
        out["report"] = dg.MetadataValue.path(str(markdown_path))
        text, shown = inline_markdown_images(markdown_text, Path(markdown_path).parent)
        out["preview"] = dg.MetadataValue.md(text)
    for plot in map(Path, plots):
        if plot.suffix.lower() == ".png" and plot.is_file() and plot not in shown:
            out[f"plot_{plot.stem}"] = dg.MetadataValue.md(markdown_image(plot, plot.stem))
    return out


def evaluation_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return (
        [eval_sets_asset(profile)]
        + [_evaluation_asset(profile, s, m) for s, m in _variants(profile)]
        + [token_clustering_asset(profile), eval_scores_asset(profile), comparison_report_asset(profile)]
    )
