"""A thin layer over Slurm's command-line tools: job scripts, sbatch, squeue, scontrol, scancel.

No Dagster here (assets/slurm.py is the Dagster Pipes client built on it). The commands are
the ones a Slurm user types, so everything this module does can be repeated by hand:

- `render_job_script` writes the `#SBATCH` header from a `SlurmLauncher` and `exec`s the
  command; the job's stdout and stderr go to `slurm-<job id>.log` in the job's work folder;
- `submit` is `sbatch --parsable --export=ALL,<VAR=value...>`: the job inherits the
  submitting environment (secrets included) and gets the few variables given on the
  command line; no secret is ever written into the script or any other file;
- `live_jobs` finds queued or running jobs by name (`squeue --me -n`), so a step can adopt
  a job that a dead run left behind instead of submitting a second one;
- `job_state` reads `scontrol show job` (finished jobs stay there for MinJobAge seconds),
  then `sacct` (where accounting runs), then the jobcomp/filetxt record;
- every job carries `--comment=dagster_run_id=<run id>`, so `cancel_run_jobs` can cancel
  what a dead Dagster run left queued or running.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from ual_dagster.config.launchers import SLURM_PARTITION_ENV, SlurmLauncher
from ual_dagster.storage.files import atomic_write_text

#: `--comment` of every job: names the Dagster run that owns it
RUN_ID_COMMENT = "dagster_run_id="
#: file name of a job's log (stdout and stderr) in its work folder; %j is the job id
LOG_PATTERN = "slurm-%j.log"
#: states in which a job has ended and will not run again
FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
#: end states after which Slurm may requeue the job (then it is PENDING again)
REQUEUEABLE_STATES = frozenset({"PREEMPTED", "NODE_FAIL"})
_TIMEOUT_S = 60.0  # one Slurm command; slurmctld answers in milliseconds unless it is in trouble


class SlurmError(RuntimeError):
    """A Slurm command failed, or Slurm is not there."""


@dataclass(frozen=True)
class SlurmJob:
    """What Slurm says about one job."""

    job_id: str
    name: str
    state: str
    node: str | None = None
    elapsed_s: float | None = None
    exit_code: str | None = None
    reason: str | None = None
    comment: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def live(self) -> bool:
        return not self.finished

    @property
    def run_id(self) -> str | None:
        """The Dagster run named by the job's --comment, if any."""
        if self.comment and self.comment.startswith(RUN_ID_COMMENT):
            return self.comment[len(RUN_ID_COMMENT) :].strip() or None
        return None


class SlurmJobFailed(SlurmError):
    """A job ended in another state than COMPLETED; the message is one line:

    `slurm job <id> (<name>) ended <STATE>: <last lines of its log>`
    """

    def __init__(self, job: SlurmJob, log_tail: str):
        self.job = job
        self.log_tail = log_tail
        super().__init__(f"slurm job {job.job_id} ({job.name}) ended {job.state}: {log_tail}")


def job_name(step: str, fingerprint: str) -> str:
    """`ual-<step>-<first 12 characters of the fingerprint>`: what `squeue` shows."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", step):
        raise ValueError(f"step {step!r}: use letters, digits, '_', '.' or '-' (it becomes part of a Slurm job name)")
    if len(fingerprint) < 12 or not re.fullmatch(r"[A-Za-z0-9]+", fingerprint):
        raise ValueError(f"fingerprint {fingerprint!r}: need at least 12 letters or digits")
    return f"ual-{step}-{fingerprint[:12]}"


def resolve_partition(launcher: SlurmLauncher, environ: Mapping[str, str] | None = None) -> str | None:
    """launcher.partition, else $UAL_SLURM_PARTITION, else None (the cluster's default partition)."""
    if launcher.partition:
        return launcher.partition
    value = (os.environ if environ is None else environ).get(SLURM_PARTITION_ENV, "").strip()
    return value or None


def log_path(work_dir: str | Path, job_id: str) -> Path:
    """The log file (stdout and stderr) of job `job_id` run from `work_dir`."""
    return Path(work_dir) / LOG_PATTERN.replace("%j", str(job_id))


def render_job_script(
    launcher: SlurmLauncher,
    command: Sequence[str],
    *,
    job_name: str,
    work_dir: str | Path,
    run_id: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The sbatch script: `#SBATCH` lines from the launcher, its setup lines, then `exec command`.

    Nothing from the environment is written into it except the partition name
    ($UAL_SLURM_PARTITION when the launcher names none); secrets reach the job through
    `sbatch --export=ALL`, never through this text.
    """
    if not command:
        raise ValueError("empty command: nothing for the job to run")
    work_dir = Path(work_dir)
    if not work_dir.is_absolute():
        raise ValueError(f"work_dir {work_dir} must be absolute (compute nodes resolve it, not this process)")
    options = [f"--job-name={job_name}"]
    partition = resolve_partition(launcher, environ)
    if partition:
        options.append(f"--partition={partition}")
    options += ["--nodes=1", "--ntasks=1", f"--cpus-per-task={launcher.cpus_per_task}"]
    if launcher.gpus:
        options.append(f"--gres=gpu:{launcher.gpus}")
    if launcher.mem_gb is not None:
        options.append(f"--mem={math.ceil(launcher.mem_gb * 1024)}M")
    if launcher.time_limit:
        options.append(f"--time={launcher.time_limit}")
    options.append(f"--output={work_dir / LOG_PATTERN}")
    if run_id:
        options.append(f"--comment={RUN_ID_COMMENT}{run_id}")
    options += launcher.sbatch_args
    threads = launcher.cpus_per_task
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {opt}" for opt in options),
        "# written by ual_dagster.cluster.slurm; secrets come from the submitting environment (--export=ALL)",
        "set -euo pipefail",
        *launcher.setup,
        f"export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads}",
        f"exec {shlex.join(command)}",
    ]
    return "\n".join(lines) + "\n"


def write_job_script(path: str | Path, script: str) -> Path:
    """Write the script atomically (a half-written script must never be submitted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, script)
    path.chmod(0o750)
    return path


def _run(args: Sequence[str], *, check: bool = True, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    if shutil.which(args[0]) is None:
        raise SlurmError(f"{args[0]} not found: is Slurm installed on this host? (scripts/slurm_cluster.sh)")
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=_TIMEOUT_S, cwd=cwd)
    except subprocess.TimeoutExpired as err:
        raise SlurmError(f"{shlex.join(args)} did not answer in {_TIMEOUT_S:.0f} s") from err
    if check and out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().replace("\n", " | ")
        raise SlurmError(f"{shlex.join(args)} failed (exit {out.returncode}): {detail}")
    return out


def installed() -> bool:
    """Whether Slurm's client commands are on PATH (the dead-run sweep skips Slurm where they are not)."""
    return all(shutil.which(tool) for tool in ("sbatch", "squeue", "scontrol", "scancel"))


def unavailable_reason() -> str | None:
    """None when slurmctld answers and a partition has a usable node; else why not (one line)."""
    try:
        out = _run(["sinfo", "-h", "-o", "%P %t"])
    except SlurmError as err:
        return str(err)
    states = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
    if not states:
        return "sinfo lists no partition"
    if not any(s.rstrip("*~#!%$@^-") in ("idle", "mix", "alloc", "comp") and not s.endswith("*") for s in states):
        return f"no node is usable (sinfo states: {', '.join(states)})"
    return None


def submit(script_path: str | Path, *, export: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> str:
    """`sbatch --parsable --export=ALL,K=V... script`; returns the job id.

    The variables in `export` travel on sbatch's command line (never into a file); the job
    also inherits this process's whole environment.
    """
    pairs = []
    for key, value in (export or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or "," in value or "\n" in value:
            raise ValueError(f"cannot pass {key!r} through sbatch --export (bad name, or a comma or newline in it)")
        pairs.append(f"{key}={value}")
    out = _run(["sbatch", "--parsable", "--export=" + ",".join(["ALL", *pairs]), str(script_path)], cwd=cwd)
    job_id = out.stdout.strip().split(";")[0]  # --parsable: "<id>" or "<id>;<cluster>"
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {out.stdout.strip()!r} {out.stderr.strip()!r}")
    return job_id


_SQUEUE_FORMAT = "%i\x1f%j\x1f%T\x1f%N\x1f%M\x1f%r\x1f%k"


def live_jobs(name: str | None = None) -> list[SlurmJob]:
    """This user's queued or running jobs (optionally only those named `name`), oldest first."""
    args = ["squeue", "--me", "-h", "-t", "all", "-o", _SQUEUE_FORMAT]
    if name:
        args += ["-n", name]
    out = _run(args)
    jobs = []
    for line in out.stdout.splitlines():
        fields = line.split("\x1f")
        if len(fields) != 7:
            continue
        job_id, jname, state, node, elapsed, reason, comment = (f.strip() for f in fields)
        job = SlurmJob(
            job_id=job_id,
            name=jname,
            state=_state(state),
            node=node or None,
            elapsed_s=_duration_s(elapsed),
            reason=None if reason in ("", "None") else reason,
            comment=None if comment in ("", "(null)") else comment,
        )
        if job.live and (name is None or job.name == name):
            jobs.append(job)
    return sorted(jobs, key=lambda j: int(j.job_id) if j.job_id.isdigit() else 0)


def job_state(job_id: str) -> SlurmJob | None:
    """The job as `scontrol show job` sees it; after it left slurmctld's memory, as sacct or jobcomp saw it.

    None if no source knows the job.
    """
    out = _run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
    if out.returncode == 0 and out.stdout.strip():
        return parse_scontrol_job(out.stdout)
    if "Invalid job id" not in out.stderr:
        detail = (out.stderr or out.stdout).strip().replace("\n", " | ")
        raise SlurmError(f"scontrol show job {job_id} failed (exit {out.returncode}): {detail}")
    return _from_sacct(job_id) or jobcomp_record(job_id)


def cancel(job_id: str) -> None:
    """scancel; a job that already ended is not an error."""
    out = _run(["scancel", str(job_id)], check=False)
    ended = ("already completing or completed", "Invalid job id")
    if out.returncode != 0 and not any(text in out.stderr for text in ended):
        raise SlurmError(f"scancel {job_id} failed (exit {out.returncode}): {out.stderr.strip()}")


def set_run_id(job_id: str, run_id: str) -> None:
    """Point the job's --comment at `run_id` (the run that adopted it now owns it)."""
    _run(["scontrol", "update", f"JobId={job_id}", f"Comment={RUN_ID_COMMENT}{run_id}"])


def cancel_run_jobs(run_id: str) -> list[str]:
    """Cancel this user's queued or running jobs whose --comment names Dagster run `run_id`; their ids."""
    if not run_id:
        raise ValueError("empty run id")
    cancelled = []
    for job in live_jobs():
        if job.run_id == run_id:
            cancel(job.job_id)
            cancelled.append(job.job_id)
    return cancelled


def log_tail(path: str | Path, lines: int = 5, max_chars: int = 600) -> str:
    """The last non-empty lines of a job's log on one line (' | ' between them)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    if not kept:
        return f"(empty log {path})"
    joined = " | ".join(kept)
    return joined if len(joined) <= max_chars else "..." + joined[-max_chars:]


class LogFollower:
    """Reads a growing log file line by line (complete lines only, until `flush`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in complete]

    def flush(self) -> list[str]:
        """The remaining lines, the last one even without its newline."""
        lines = self.read()
        if self._partial:
            lines.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        return lines


# --- parsing -----------------------------------------------------------------------------------------

_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=")


def parse_key_values(text: str) -> dict[str, str]:
    """`Key=value Key2=value with spaces ...` (scontrol -o, jobcomp/filetxt) as a dict."""
    text = text.strip()
    matches = list(_KEY.finditer(text))
    fields = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields[match.group(1)] = text[match.end() : end].strip()
    return fields


def parse_scontrol_job(text: str) -> SlurmJob:
    """One job from `scontrol show job -o <id>` output."""
    f = parse_key_values(text.strip().splitlines()[0])
    return SlurmJob(
        job_id=f.get("JobId", ""),
        name=f.get("JobName", ""),
        state=_state(f.get("JobState", "UNKNOWN")),
        node=_none(f.get("NodeList")),
        elapsed_s=_duration_s(f.get("RunTime")),
        exit_code=_none(f.get("ExitCode")),
        reason=_none(f.get("Reason")),
        comment=_none(f.get("Comment")),
    )


def parse_jobcomp_line(line: str) -> SlurmJob:
    """One line of a jobcomp/filetxt record."""
    f = parse_key_values(line)
    start, end = _timestamp(f.get("StartTime")), _timestamp(f.get("EndTime"))
    return SlurmJob(
        job_id=f.get("JobId", ""),
        name=f.get("Name", ""),
        state=_state(f.get("JobState", "UNKNOWN")),
        node=_none(f.get("NodeList")),
        elapsed_s=(end - start).total_seconds() if start and end else None,
        exit_code=_none(f.get("ExitCode")),
    )


def parse_sacct(text: str, job_id: str) -> SlurmJob | None:
    """The allocation line of `sacct -n -P -X -o JobID,JobName,State,NodeList,ElapsedRaw,ExitCode,Reason`."""
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 6 and parts[0] == str(job_id):
            return SlurmJob(
                job_id=parts[0],
                name=parts[1],
                state=_state(parts[2]),
                node=_none(parts[3]),
                elapsed_s=float(parts[4]) if parts[4].isdigit() else None,
                exit_code=_none(parts[5]),
                reason=_none(parts[6]) if len(parts) > 6 else None,
            )
    return None


def _from_sacct(job_id: str) -> SlurmJob | None:
    if shutil.which("sacct") is None:
        return None
    fields = "JobID,JobName,State,NodeList,ElapsedRaw,ExitCode,Reason"
    out = _run(["sacct", "-n", "-P", "-X", "-j", str(job_id), "-o", fields], check=False)
    return parse_sacct(out.stdout, job_id) if out.returncode == 0 else None


@cache
def _jobcomp_file() -> Path | None:
    out = _run(["scontrol", "show", "config"], check=False)
    conf = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    if conf.get("JobCompType") != "jobcomp/filetxt" or not conf.get("JobCompLoc"):
        return None
    return Path(conf["JobCompLoc"])


def jobcomp_record(job_id: str) -> SlurmJob | None:
    """The job's line in the jobcomp/filetxt record (JobCompLoc), if the cluster keeps one."""
    path = _jobcomp_file()
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8 * 1024 * 1024))  # the recent end of a long-lived record
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(f"JobId={job_id} "):
            return parse_jobcomp_line(line)
    return None


def _state(text: str) -> str:
    """`CANCELLED by 0` (sacct) -> CANCELLED; `RUNNING` -> RUNNING."""
    return (text.split() or ["UNKNOWN"])[0].rstrip("+").upper()


def _none(value: str | None) -> str | None:
    return None if value in (None, "", "(null)", "None", "Unknown") else value


def _duration_s(text: str | None) -> float | None:
    """Slurm durations: [D-]HH:MM:SS, MM:SS, or INVALID/UNLIMITED -> None."""
    if not text:
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _timestamp(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
