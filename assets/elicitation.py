"""uncertainty_<dataset>: elicited scores in DuckDB, their checks and the re-elicitation schedule."""

import dagster as dg

from assets.common import DATA_OR_CODE_CHANGED, check, code_version, finish, one_line_failure
from assets.keys import instruction_set_key, key_str, uncertainty_key
from assets.launch import EngineJobsResource
from assets.resources import DuckDBStoreResource
from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.config.launchers import InProcessLauncher, K8sLauncher
from ual_dagster.data.selection import selection_config, targets_for_dataset, used_by_a_scenario
from ual_dagster.elicitation.checks import dataset_checks
from ual_dagster.elicitation.elicitor import LOCAL_BASE_URLS, elicitor_fingerprint, elicitor_label
from ual_dagster.elicitation.scores import stale_samples
from ual_dagster.plan import (
    dataset_plan,
    elicitation_cost_usd,
    paid_services,
    reelicit_schedule_on,
    unattended_refusal,
)
from ual_dagster.storage import StatePaths
from ual_dagster.train.entry_points import ELICIT_ENTRY
from ual_dagster.train.k8s import k8s_pod_spec, pod_command

CHECKS = ("uncertainty_coverage", "uncertainty_range")


def _uncertainty_asset(profile: Profile, dataset: str) -> dg.AssetsDefinition:
    cfg = profile.elicitation
    key = uncertainty_key(dataset)
    elicitor = elicitor_fingerprint(cfg)

    @dg.asset(
        key=key,
        group_name="elicitation",
        # a bundled loopback server is local, though the openai client talks to it
        kinds={"duckdb", "openai"}
        if isinstance(cfg, OpenAIElicitation) and cfg.base_url not in LOCAL_BASE_URLS
        else {"duckdb"},
        deps=[instruction_set_key(dataset)],
        # the elicitor fingerprint covers backend, model, prompt text, method and parameters
        # ...and the selection: which rows the scenarios use (ual_dagster/data/selection.py)
        code_version=code_version(versions.UNCERTAINTY_ASSET, elicitor, selection_config(profile, dataset)),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="duckdb",
        description=(
            f"Uncertainty u in [0, 1] of the rows of {dataset!r} that the scenarios use (plus a small reserve), "
            if used_by_a_scenario(profile, dataset) and cfg.elicit_scope == "used"
            else f"Uncertainty u in [0, 1] of every {'/'.join(cfg.elicit_splits)} row of {dataset!r} "
            + ("(no scenario uses it, so it is scored in full), " if not used_by_a_scenario(profile, dataset) else "")
        )
        + f"elicited by {elicitor_label(cfg)} (elicitor {elicitor}; DuckDB table `uncertainty`, cached per row: "
        "an unchanged sample is never paid twice).",
        # blocking: training on partly scored (coverage) or out-of-range scores would be wrong, so a
        # failing check stops everything downstream in the run; a re-run resumes the elicitation
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=True) for name in CHECKS],
    )
    def _asset(
        context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource, engine_jobs: EngineJobsResource
    ) -> dg.MaterializeResult:
        store = duckdb.store()
        # the HTTP client stack loads only where elicitation runs, not with the definitions
        from ual_dagster.elicitation.batch import BatchStillRunning
        from ual_dagster.elicitation.run import elicit_dataset

        with one_line_failure():  # e.g. a bad API key or URL (every call would fail alike)
            store.require_version(key_str(instruction_set_key(dataset)))
            targets = targets_for_dataset(profile, dataset, store)
            refusal = _unattended_refusal(profile, dataset, store, context.run.tags if context.run else {})
            if refusal:  # a schedule, sensor or automation started this run: no call is made
                raise dg.Failure(description=refusal, allow_retries=False)
            try:
                result = elicit_dataset(
                    dataset,
                    cfg,
                    store,
                    log=context.log.info,
                    only=targets,
                    run_job=_job_runner(context, profile, engine_jobs),
                )
            except BatchStillRunning as exc:  # batch mode: a wait, not a fault; the uncertainty_batches sensor re-runs
                raise dg.Failure(description=str(exc), allow_retries=False) from None
        outcomes = dataset_checks(store, dataset, cfg, only=targets)
        return finish(
            store,
            key,
            result.fingerprint,
            {"elicitor_label": elicitor_label(cfg), **result.metadata},
            config={"elicitor": elicitor, **cfg.model_dump(mode="json", exclude={"api_key_env"})},
            reused=False if result.metadata.get("to_elicit") else None,  # None: unchanged scores = reused
            check_results=[check(o.name, key, o.passed, {"summary": o.description, **o.metadata}) for o in outcomes],
        )

    return _asset


# Run tags that say nobody asked for this run by hand (Dagster's own tags).
UNATTENDED_TAGS = ("dagster/schedule_name", "dagster/sensor_name", "dagster/from_automation_condition")


def _job_runner(context: dg.AssetExecutionContext, profile: Profile, engine_jobs: EngineJobsResource):
    """hf_local elicitation on elicitation.launcher: one engine job per run of the step (None: in process)."""
    cfg = profile.elicitation
    launcher = getattr(cfg, "launcher", None)
    if launcher is None or isinstance(launcher, InProcessLauncher):
        return None
    state_dir = StatePaths.for_profile(profile).state_dir
    k8s = isinstance(launcher, K8sLauncher)

    def run(spec, spec_path, *, fingerprint: str) -> dict:
        summary, job = engine_jobs.run(
            context,
            launcher,
            step="elicit",
            fingerprint=fingerprint,
            module=ELICIT_ENTRY,
            spec_path=spec_path,
            work_dir=spec_path.parent,
            pod_spec=k8s_pod_spec(launcher, state_dir, role="elicit") if k8s else None,
            pod_command=pod_command(launcher, role="elicit") if k8s else None,
        )
        return {**summary, "job": job}

    return run


def _unattended_refusal(profile: Profile, dataset: str, store, tags) -> str | None:
    """For a run a schedule, a sensor or the automation started: the one-line refusal when
    eliciting this data set's rows still to elicit costs more than the profile allows
    unattended (orchestration.max_unattended_cost_usd). A run that collects a finished
    Batch API batch (submitted, and paid, by an earlier run) is not refused."""
    if not any(t in tags for t in UNATTENDED_TAGS) or tags.get("ual/reason") == "batch_finished":
        return None
    if not paid_services(profile) and profile.orchestration.max_unattended_cost_usd is None:
        return None
    p = dataset_plan(profile, dataset, store)
    rows = p.to_elicit - p.cached
    cost = elicitation_cost_usd(profile, rows, p.row_chars)
    return unattended_refusal(profile, f"uncertainty_{dataset}", cost, f"{rows:,} rows to elicit")


def uncertainty_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [_uncertainty_asset(profile, d) for d in profile.datasets]


def reelicitation_schedule(profile: Profile) -> dg.ScheduleDefinition:
    """Re-elicit, on the profile's cron, the data sets that have missing or stale rows, and only those."""
    cfg = profile.elicitation
    targets = [uncertainty_key(d) for d in profile.datasets]

    @dg.schedule(
        name="reelicitation",
        cron_schedule=cfg.schedule_cron,
        target=targets,
        # off by default where elicitation or the judge costs money (ual_dagster.plan.reelicit_schedule_on)
        default_status=dg.DefaultScheduleStatus.RUNNING
        if reelicit_schedule_on(profile)
        else dg.DefaultScheduleStatus.STOPPED,
        description="Re-elicits missing or stale uncertainty rows (new prompt/model/method, or older than ttl_days); "
        "plans first and requests nothing when that costs more than orchestration.max_unattended_cost_usd.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, duckdb: DuckDBStoreResource):
        store = duckdb.store()
        now = context.scheduled_execution_time
        stale = {d: stale_samples(store, d, cfg, now, targets_for_dataset(profile, d, store)) for d in profile.datasets}
        stale = {d: rows for d, rows in stale.items() if rows}
        if not stale:
            yield dg.SkipReason("no missing or stale uncertainty rows")
            return
        n_rows = sum(len(rows) for rows in stale.values())
        cost = elicitation_cost_usd(profile, n_rows)
        refusal = unattended_refusal(profile, "reelicitation", cost, f"{n_rows:,} stale rows")
        if refusal:  # plans first: nothing is requested, so nothing is called
            yield dg.SkipReason(refusal)
            return
        for dataset, rows in stale.items():
            yield dg.RunRequest(
                run_key=f"{dataset}:{now.isoformat()}",
                asset_selection=[uncertainty_key(dataset)],
                tags={"ual/reason": "reelicitation", "ual/stale_rows": str(len(rows))},
            )

    return _schedule
