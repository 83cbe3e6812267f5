"""Dead runs never block the next one: the sweep at the start of every run, and its sensor.

A run killed with SIGKILL cannot report its own end: it stays STARTED, keeps the slots it
claimed in the `duckdb` / `train` pools (so a later run's steps wait for them forever) and
counts against `max_concurrent_runs` (so queued UI runs never start). Dagster's run
monitoring cannot see this for local runs (the DefaultRunLauncher has no worker health
check, and CLI runs have no launcher at all), so this sweep does it:

- every run executor records its pid as an engine event ("Executing steps in process
  (pid: N)"); a STARTING/STARTED/CANCELING run whose recorded pid no longer names a live
  process that started before the event (ual_dagster.processes.alive_since) is dead, and
  is reported failed;
- its concurrency slots and pending claims are then freed, which Dagster only does itself
  for runs that end normally (or, with the daemon, some time after they end);
- the Slurm jobs it left queued or running (their --comment names the run) are cancelled.

Pids mean something only on this machine, so the sweep runs only on an instance whose run
storage is SQLite (the local state folder); a Postgres instance serves many hosts, and
there the run launcher's health checks (Kubernetes) are Dagster's run monitoring.

It runs where a run starts, in the run's own process, before any of its steps asks for a
slot (`sweeping_executor` wraps the definitions' executor: a `dagster asset materialize`
run, a run launched from the UI, a sensor's run), and every 30 s under the daemon (the
`dead_run_sweep` sensor). Loading the code location sweeps nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dagster as dg

# dagster 1.13 has no public name for the SQLite run storage (nor another public way to tell it)
from dagster._core.storage.runs import SqliteRunStorage

from ual_dagster.cluster import slurm
from ual_dagster.processes import alive_since

_log = logging.getLogger("ual_dagster")

_IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def sweep_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> list[str]:
    """Fail every in-progress run of `instance` whose process is gone; returns their run ids."""
    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    swept = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_IN_PROGRESS)):
        run = record.dagster_run
        pids = _recorded_pids(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT))
        if not pids:
            continue  # not started executing yet (or not on this machine): nothing to judge by
        # A pid counts as this run's while the live process with it started before the event
        # that recorded it (the run's own start time is no bound: a launched run's worker
        # starts after the run was created, and a STARTING run has no start time yet).
        if any(alive_since(pid, recorded_at) for pid, recorded_at in pids.items()):
            continue
        message = (
            f"process {', '.join(map(str, sorted(pids)))} of this run is gone (killed?): marked failed and its "
            "pool slots freed by ual_dagster's dead-run sweep"
        )
        instance.report_run_failed(run, message=message)
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        swept.append(run.run_id)
        if log is not None:
            log(f"run {run.run_id}: {message}")
    return swept


def _recorded_pids(entries: Any) -> dict[int, float]:
    """pid -> when it was first recorded (epoch seconds), from the run's engine events."""
    pids: dict[int, float] = {}
    for entry in entries:
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
        if pid is not None:
            try:
                key = int(pid.value)
            except (TypeError, ValueError):
                continue
            pids[key] = min(pids.get(key, entry.timestamp), entry.timestamp)
    return pids


def sweep(instance: dg.DagsterInstance, log: Callable[[str], None]) -> list[str]:
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


def sweeping_executor(executor_def: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """`executor_def` (same name, config and requirements) that first sweeps the run's instance.

    Dagster creates a run's executor in the run's own process, after the run is created and
    before any step is launched, so no step of the new run waits for a dead run's pool slot.
    A sweep that fails is logged and never stops the run.
    """
    create = executor_def.executor_creation_fn
    assert create is not None, f"executor {executor_def.name!r} has no creation function"

    def sweep_then_create(init_context: dg.InitExecutorContext) -> dg.Executor:
        try:
            sweep(init_context.instance, log=_log.warning)
        except Exception as exc:
            _log.warning(f"dead-run sweep skipped: {type(exc).__name__}: {exc}")
        return create(init_context)

    return dg.ExecutorDefinition(
        name=executor_def.name,
        config_schema=executor_def.config_schema,
        requirements=executor_def.get_requirements,
        executor_creation_fn=sweep_then_create,
        description=executor_def.description,
    )


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
