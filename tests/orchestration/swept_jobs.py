"""Jobs run with the definitions' sweeping executor (assets/runs.py), for test_dead_runs.py.

A module of its own so that a multiprocess run's step processes can import them by name
(dagster.reconstructable): a pytest test module is not importable from a child process.
"""

import dagster as dg

from assets.runs import sweeping_executor


@dg.op
def sees_no_other_run_in_progress(context: dg.OpExecutionContext) -> None:
    """The step's view: by the time it runs, no other run is in progress or holds a `duckdb` slot."""
    others = context.instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert [r.run_id for r in others if r.run_id != context.run_id] == []
    assert context.instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots == []


def _swept_job(executor: dg.ExecutorDefinition) -> dg.JobDefinition:
    @dg.job(executor_def=sweeping_executor(executor))
    def check_job() -> None:
        sees_no_other_run_in_progress()

    return check_job


def swept_in_process_job() -> dg.JobDefinition:
    """A one-step job run as the definitions run it (the tiny profile's executor, swept)."""
    return _swept_job(dg.in_process_executor)


def swept_multiprocess_job() -> dg.JobDefinition:
    """The same under the paper profile's configured multiprocess executor: the wrapper keeps its config."""
    return _swept_job(dg.multiprocess_executor.configured({"max_concurrent": 2}))
