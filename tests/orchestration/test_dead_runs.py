"""The dead-run sweep: a run whose recorded executor pid is gone is marked failed and its pool
claims are freed; a run whose process lives is left alone; a reused pid does not count; every
run sweeps before its first step (the definitions' executor), and loading the definitions does not."""

import os
import subprocess
import sys
import time

import dagster as dg
import pytest

# The pid metadata of an executor's "Executing steps in process" event: no public name in dagster 1.13.
from dagster._core.events import EngineEventData

from assets.runs import sweep_dead_runs
from tests.orchestration.swept_jobs import swept_in_process_job, swept_multiprocess_job
from ual_dagster.processes import alive_since


@dg.op
def noop() -> None:
    pass


@dg.job
def one_step_job() -> None:
    """The job the runs below belong to: the sweep reads only their status and engine events."""
    noop()


def started_run(instance, pid: int):
    run = instance.create_run_for_job(one_step_job)
    instance.run_storage.handle_run_event(
        run.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=one_step_job.name)
    )
    instance.report_engine_event(f"Executing steps in process (pid: {pid})", run, EngineEventData.in_process(pid))
    return run


def test_dead_runs_fail_and_free_their_pool_claims_live_ones_stay(tmp_path):
    instance = dg.DagsterInstance.local_temp(str(tmp_path), overrides={"concurrency": {"pools": {"default_limit": 1}}})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = started_run(instance, gone.pid)
    instance.event_log_storage.claim_concurrency_slot("duckdb", dead.run_id, "uncertainty__notes")
    alive = started_run(instance, os.getpid())

    swept = sweep_dead_runs(instance)

    assert swept == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    info = instance.event_log_storage.get_concurrency_info("duckdb")
    assert info.claimed_slots == [] and info.pending_steps == []
    assert sweep_dead_runs(instance) == []  # idempotent


def test_a_pid_reused_by_a_process_started_after_the_run_counts_as_dead():
    assert alive_since(os.getpid(), time.time())  # this process started before "now"
    # a run that started long before this process: its pid, if it were this one, was reused
    assert not alive_since(os.getpid(), time.time() - 10 * 365 * 86400)


def test_a_worker_started_after_its_run_was_created_is_alive(tmp_path):
    """A launched run (UI, daemon) is created first, and its worker process starts later and
    records its pid while the run is still STARTING: it must not look like a reused pid."""
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    run = instance.create_run_for_job(one_step_job, status=dg.DagsterRunStatus.STARTING)
    time.sleep(3)  # longer than the sweep's clock slack
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        instance.report_engine_event(
            f"Started process for run (pid: {worker.pid})", run, EngineEventData.in_process(worker.pid)
        )
        assert sweep_dead_runs(instance) == []
    finally:
        worker.kill()
        worker.wait()
    assert sweep_dead_runs(instance) == [run.run_id]


@pytest.mark.parametrize("swept_job", [swept_in_process_job, swept_multiprocess_job])
def test_a_run_sweeps_the_dead_runs_before_its_first_step(tmp_path, swept_job):
    """A killed run stays STARTED with a `duckdb` slot; the next run marks it failed and frees the
    slot before its first step starts (a CLI run's step would otherwise wait for that slot)."""
    instance = dg.DagsterInstance.local_temp(str(tmp_path), overrides={"concurrency": {"pools": {"default_limit": 1}}})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = started_run(instance, gone.pid)
    instance.event_log_storage.claim_concurrency_slot("duckdb", dead.run_id, "uncertainty__notes")

    result = dg.execute_job(dg.reconstructable(swept_job), instance=instance)

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
