"""Mark Dagster runs whose process is gone as failed and free their pool slots.

A run killed with SIGKILL cannot report its own end: it stays STARTED, keeps the slots
it claimed in the `duckdb` / `train` pools (so a later run's steps wait for them
forever) and counts against `max_concurrent_runs` (so queued UI runs never start).
Dagster's run monitoring cannot see this for local runs (the DefaultRunLauncher has no
worker health check, and CLI runs have no launcher at all), so this sweep does it:

- every run executor records its pid as an engine event ("Executing steps in process
  (pid: N)"); a STARTING/STARTED/CANCELING run whose recorded pid no longer names a live
  process that started before the run is dead, and is reported failed;
- its concurrency slots and pending claims are then freed, which Dagster only does
  itself for runs that end normally (or, with the daemon, some time after they end).

Pids mean something only on this machine, so the sweep runs only on an instance whose
run storage is SQLite (the local state folder); a Postgres instance serves many hosts,
and there the run launcher's health checks (Kubernetes) are Dagster's run monitoring.
It is called when the code location loads (every `dagster asset materialize` loads it
before creating its run, hence before any of its steps asks for a slot) and by the
`dead_run_sweep` sensor while the daemon runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

_START_SLACK_S = 2.0  # clock-tick rounding of /proc start times


def sweep_dead_runs(instance: Any, log: Callable[[str], None] | None = None) -> list[str]:
    """Fail every in-progress run of `instance` whose process is gone; returns their run ids."""
    import dagster as dg

    if not _is_local(instance):
        return []
    in_progress = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    swept = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=in_progress)):
        run = record.dagster_run
        pids = _recorded_pids(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT))
        if not pids:
            continue  # not started executing yet (or not on this machine): nothing to judge by
        # A pid counts as this run's while the live process with it started before the event
        # that recorded it (the run's own start time is no bound: a launched run's worker
        # starts after the run was created, and a STARTING run has no start time yet).
        if any(_alive_since(pid, recorded_at) for pid, recorded_at in pids.items()):
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


def _is_local(instance: Any) -> bool:
    # dagster 1.13 has no public name for the SQLite run storage (nor another public way to tell it)
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


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


def _alive_since(pid: int, since: float) -> bool:
    """Whether `pid` is a live process that started no later than `since` (epoch seconds);
    a pid reused by a newer process does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (not Linux): a live pid is all we can tell
    if fields[0] == "Z":
        return False  # a zombie: exited, not yet reaped
    boot = _boot_time()
    if boot is None:
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= since + _START_SLACK_S


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None
