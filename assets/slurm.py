"""PipesSlurmClient: run one command as a Slurm batch job from a Dagster step, through Dagster Pipes.

Compute nodes share a file system with the submitting host, not a socket, so the Pipes
context and message channel are files in the job's work folder (on the shared state
folder). The bootstrap variables that point the job at them travel on sbatch's command
line (`--export=ALL,DAGSTER_PIPES_CONTEXT=...,DAGSTER_PIPES_MESSAGES=...`); the job
inherits everything else, secrets included, from the submitting environment. Nothing
secret is written into the job script, the Pipes files or the log.

    result = slurm_client.run(
        context=context,
        command=[sys.executable, "-m", "ual_dagster.train.pipes_entry", spec_path],
        launcher=profile.training.launcher,          # a SlurmLauncher
        job_name=job_name("train", fingerprint),     # ual-train-<12 chars>
        work_dir=checkpoint_dir / "slurm",           # content-addressed, on the shared state folder
        extras={"spec_path": spec_path},
    )
    meta["slurm"] = result.metadata()                # job_id, job_name, node, elapsed_s, state, adopted

A live job with the same name (left by a run that died) is adopted, never submitted a
second time; a step that is interrupted (Terminate, SIGTERM, Ctrl-C) cancels its job; a
job that ends in another state than COMPLETED fails the step with the one-line
`slurm job <id> (<name>) ended <STATE>: <last lines of its log>`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ual_dagster.cluster import slurm
from ual_dagster.config.launchers import SlurmLauncher

CONTEXT_FILE = "pipes_context.json"
MESSAGES_FILE = "pipes_messages.jsonl"
SCRIPT_FILE = "job.sbatch"


@dataclass(frozen=True)
class SlurmJobResult:
    """How a Slurm job ended, and what it reported through Pipes."""

    job_id: str
    job_name: str
    state: str
    node: str | None
    elapsed_s: float | None
    adopted: bool
    exit_code: str | None
    log_path: Path
    wall_s: float
    custom_messages: list[Any] = field(default_factory=list)
    pipes_results: list[Any] = field(default_factory=list)  # MaterializeResult / AssetCheckResult reported

    @property
    def materializations(self) -> list[dg.MaterializeResult]:
        return [r for r in self.pipes_results if isinstance(r, dg.MaterializeResult)]

    def metadata(self) -> dict[str, Any]:
        """For an asset's metadata: job_id, job_name, node, elapsed_s, state, adopted."""
        return slurm_metadata(self)


def slurm_metadata(result: SlurmJobResult) -> dict[str, Any]:
    return {
        "job_id": result.job_id,
        "job_name": result.job_name,
        "node": result.node,
        "elapsed_s": result.elapsed_s,
        "state": result.state,
        "adopted": result.adopted,
    }


class _SharedFileMessageReader(dg.PipesFileMessageReader):
    """Tails the Pipes messages file without truncating it first.

    A step that adopts a running job reads everything the job reported since it started
    (the job keeps appending to the same file, named by the same bootstrap variables).
    Lines are handled only once complete: on a network file system a line can arrive
    in pieces.
    """

    def __init__(self, path: str):
        super().__init__(path, include_stdio_in_messages=False, cleanup_file=False)

    @contextmanager
    def read_messages(self, handler: Any) -> Iterator[dict]:
        closed = threading.Event()
        Path(self._path).touch()
        thread = threading.Thread(target=self._tail, args=(handler, closed), daemon=True)
        thread.start()
        try:
            yield {"path": self._path, "include_stdio_in_messages": False}
        finally:
            closed.set()
            thread.join()

    def _tail(self, handler: Any, closed: threading.Event) -> None:
        try:
            partial = ""
            with open(self._path, encoding="utf-8") as stream:
                while True:
                    chunk = stream.readline()
                    if chunk:
                        partial += chunk
                        if partial.endswith("\n"):
                            line, partial = partial.strip(), ""
                            if line:
                                handler.handle_message(json.loads(line))
                    elif closed.is_set():
                        break
                    else:
                        time.sleep(0.05)
        except Exception:
            handler.report_pipes_framework_exception(f"{type(self).__name__} reader thread", sys.exc_info())
            raise


class PipesSlurmClient(dg.ConfigurableResource):
    """Runs commands as Slurm batch jobs (sbatch) and follows them through Dagster Pipes."""

    log_tail_lines: int = Field(5, ge=1, description="lines of the job's log quoted in the error of a failed job")
    forward_log: bool = Field(True, description="copy the job's log lines into the run's log as they appear")
    message_grace_s: float = Field(
        30.0, ge=0, description="after a COMPLETED job, how long to wait for its last Pipes messages (NFS lag)"
    )
    query_failure_grace_s: float = Field(
        300.0,
        ge=0,
        description="how long squeue/scontrol may keep failing (slurmctld restarting) before the step fails",
    )
    submit_dir: str | None = Field(
        None, description="directory sbatch runs in (the job's working directory); None: this process's"
    )

    def run(
        self,
        *,
        context: dg.AssetExecutionContext | dg.OpExecutionContext,
        command: Sequence[str],
        launcher: SlurmLauncher,
        job_name: str,
        work_dir: str | Path,
        extras: Mapping[str, Any] | None = None,
    ) -> SlurmJobResult:
        """Run `command` as the Slurm job `job_name` (or adopt the live one of that name); wait for its end.

        `work_dir` (on the file system the compute nodes share) holds the job script, its
        log `slurm-<job id>.log` and the Pipes files. Raises dg.Failure with the one-line
        message when the job ends in another state than COMPLETED.
        """
        work_dir = Path(work_dir).absolute()
        work_dir.mkdir(parents=True, exist_ok=True)
        messages_path = work_dir / MESSAGES_FILE
        live = slurm.live_jobs(job_name)
        adopted = live[0] if live else None
        if len(live) > 1:
            context.log.warning(
                f"{len(live)} live slurm jobs are named {job_name} ({', '.join(j.job_id for j in live)}): "
                f"following the oldest, {live[0].job_id}"
            )
        if adopted is None:
            messages_path.unlink(missing_ok=True)  # a fresh job starts a fresh message channel
        else:
            slurm.set_run_id(adopted.job_id, context.run_id)
            context.log.info(
                f"adopting slurm job {adopted.job_id} ({job_name}, {adopted.state}, left by run "
                f"{adopted.run_id or 'unknown'}) instead of submitting a second one"
            )
        started = time.monotonic()
        job_id = adopted.job_id if adopted else None
        with dg.open_pipes_session(
            context=context,
            context_injector=dg.PipesFileContextInjector(str(work_dir / CONTEXT_FILE)),
            message_reader=_SharedFileMessageReader(str(messages_path)),
            extras=dict(extras or {}),
        ) as session:
            try:
                if job_id is None:
                    script = slurm.render_job_script(
                        launcher, command, job_name=job_name, work_dir=work_dir, run_id=context.run_id
                    )
                    script_path = slurm.write_job_script(work_dir / SCRIPT_FILE, script)
                    job_id = slurm.submit(script_path, export=session.get_bootstrap_env_vars(), cwd=self.submit_dir)
                    context.log.info(f"slurm job {job_id} ({job_name}) submitted: {script_path}")
                final = self._follow(context, session, launcher, job_id, job_name, work_dir)
            except BaseException:
                # interrupted (Terminate, SIGTERM, Ctrl-C) or broken: leave nothing running for nothing
                if job_id is not None:
                    self._cancel_if_live(context, job_id, job_name)
                raise
        result = SlurmJobResult(
            job_id=job_id,
            job_name=job_name,
            state=final.state,
            node=final.node,
            elapsed_s=final.elapsed_s,
            adopted=adopted is not None,
            exit_code=final.exit_code,
            log_path=slurm.log_path(work_dir, job_id),
            wall_s=round(time.monotonic() - started, 2),
            custom_messages=list(session.get_custom_messages()),
            pipes_results=list(session.get_reported_results()),
        )
        if final.state != "COMPLETED":
            error = slurm.SlurmJobFailed(final, slurm.log_tail(result.log_path, self.log_tail_lines))
            raise dg.Failure(description=str(error), metadata=result.metadata()) from error
        context.log.info(
            f"slurm job {job_id} ({job_name}) COMPLETED on {final.node} in {final.elapsed_s} s"
            + (" (adopted)" if result.adopted else "")
        )
        return result

    def _follow(
        self,
        context: dg.AssetExecutionContext | dg.OpExecutionContext,
        session: dg.PipesSession,
        launcher: SlurmLauncher,
        job_id: str,
        job_name: str,
        work_dir: Path,
    ) -> slurm.SlurmJob:
        """Poll the job until it has ended, forwarding its log; returns its final state."""
        follower = slurm.LogFollower(slurm.log_path(work_dir, job_id))
        seen: str | None = None
        failing_since: float | None = None
        while True:
            self._forward(context, follower.read(), job_name)
            try:
                job = slurm.job_state(job_id)
                failing_since = None
            except slurm.SlurmError as err:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.query_failure_grace_s:
                    raise
                context.log.warning(f"slurm job {job_id} ({job_name}): cannot read its state, retrying: {err}")
                time.sleep(launcher.poll_interval_s)
                continue
            if job is None:
                raise slurm.SlurmError(f"slurm job {job_id} ({job_name}) is unknown to scontrol, sacct and jobcomp")
            if job.state != seen:
                where = f" on {job.node}" if job.node and job.state != "PENDING" else ""
                why = f" ({job.reason})" if job.reason and job.state == "PENDING" else ""
                context.log.info(f"slurm job {job_id} ({job_name}): {job.state}{where}{why}")
                # a preempted or node-failed job may be requeued: believe its end only on the second look
                if job.finished and job.state not in slurm.REQUEUEABLE_STATES:
                    break
                seen = job.state
            elif job.finished:
                break
            time.sleep(launcher.poll_interval_s)
        if job.state == "COMPLETED" and session.message_handler.received_opened_message:
            # the job has exited; its last Pipes messages may still be on their way over the shared file system
            deadline = time.monotonic() + self.message_grace_s
            while not session.message_handler.received_closed_message and time.monotonic() < deadline:
                self._forward(context, follower.read(), job_name)
                time.sleep(0.1)
        self._forward(context, follower.flush(), job_name)
        return job

    def _forward(
        self, context: dg.AssetExecutionContext | dg.OpExecutionContext, lines: list[str], job_name: str
    ) -> None:
        if self.forward_log:
            for line in lines:
                context.log.info(f"[{job_name}] {line}")

    def _cancel_if_live(
        self, context: dg.AssetExecutionContext | dg.OpExecutionContext, job_id: str, job_name: str
    ) -> None:
        try:
            job = slurm.job_state(job_id)
            if job is None or job.live:
                slurm.cancel(job_id)
                context.log.warning(f"slurm job {job_id} ({job_name}) cancelled: its step was interrupted")
        except Exception as err:  # the step's own error matters more than this one
            context.log.error(f"could not cancel slurm job {job_id} ({job_name}): {err}")
