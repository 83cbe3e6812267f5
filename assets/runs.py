"""Dead runs never block the next one: the sweep at code-location load and its sensor.

See ual_dagster/storage/dead_runs.py for what counts as dead and why Dagster's own run
monitoring does not cover local runs.
"""

import logging
import os

import dagster as dg

from ual_dagster.cluster import slurm
from ual_dagster.storage.dead_runs import sweep_dead_runs

_log = logging.getLogger("ual_dagster")


def sweep(instance: dg.DagsterInstance, log) -> list[str]:
    """Fail the dead runs and cancel the Slurm jobs they left queued or running (their
    --comment names the run), so a run killed with -9 leaves no job running for nothing."""
    swept = sweep_dead_runs(instance, log=log)
    if swept and slurm.installed():
        for run_id in swept:
            try:
                cancelled = slurm.cancel_run_jobs(run_id)
            except slurm.SlurmError as exc:
                log(f"dead run {run_id}: its Slurm jobs could not be listed or cancelled: {exc}")
                continue
            if cancelled:
                log(f"dead run {run_id}: cancelled its Slurm job(s) {', '.join(cancelled)}")
    return swept


def sweep_dead_runs_at_load() -> None:
    """Sweep the DAGSTER_HOME instance while the code location loads: a CLI run loads it
    before it creates its run, so no step of the new run waits for a dead run's slot."""
    if not os.environ.get("DAGSTER_HOME"):
        return  # an ephemeral instance (tests, no state): nothing persisted to sweep

    try:
        with dg.DagsterInstance.get() as instance:
            sweep(instance, log=_log.warning)
    except Exception as exc:  # a sweep that fails must never stop the code location loading
        _log.warning(f"dead-run sweep skipped: {type(exc).__name__}: {exc}")


@dg.sensor(
    name="dead_run_sweep",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process is gone (e.g. a CLI run killed with SIGKILL) as failed, frees "
    "their duckdb/train pool slots, so they never block later or queued runs, and cancels their Slurm jobs.",
)
def dead_run_sweep(context: dg.SensorEvaluationContext) -> dg.SkipReason:

    swept = sweep(context.instance, log=context.log.warning)
    return dg.SkipReason(f"marked {len(swept)} dead run(s) failed" if swept else "no dead runs")
