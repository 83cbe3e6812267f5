"""PipesSlurmClient against a real Slurm (scripts/slurm_cluster.sh start; .ci/run starts it).

Every test submits real jobs: a tiny Python script (pipes_job.py) that talks Dagster Pipes,
run through the client inside a real asset materialisation. The TIMEOUT test needs Slurm's
smallest time limit (one minute; slurmctld checks limits every 30 s), so its job starts in
the background when the module starts and the other tests run on the other core meanwhile.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.slurm import CONTEXT_FILE, MESSAGES_FILE, SCRIPT_FILE, PipesSlurmClient, SlurmJobResult
from ual_dagster.cluster import slurm
from ual_dagster.config.launchers import SlurmLauncher

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("pipes_job.py")
DRIVER = Path(__file__).with_name("materialize_job.py")
UNAVAILABLE = slurm.unavailable_reason()
pytestmark = [
    pytest.mark.skipif(
        UNAVAILABLE is not None, reason=f"no usable Slurm (scripts/slurm_cluster.sh start): {UNAVAILABLE}"
    ),
    pytest.mark.timeout(240),
]
FAST = SlurmLauncher(poll_interval_s=0.5)
ONE_LINE = re.compile(r"^slurm job (\d+) \((ual-test-[0-9a-z]+)\) ended ([A-Z_]+): (.+)$")


def _name(tag: str) -> str:
    """A job name unique to this test session: ual-test-<12 chars>."""
    return slurm.job_name("test", f"{tag}{os.getpid():x}{time.time_ns():x}"[:12].ljust(12, "0"))


def _run_asset(
    tmp: Path,
    name: str,
    mode: str = "ok",
    seconds: float = 1.0,
    launcher: SlurmLauncher = FAST,
    raise_on_error: bool = True,
) -> tuple[dg.ExecuteInProcessResult, SlurmJobResult | None, list[str]]:
    """Materialise one asset whose step runs pipes_job.py as Slurm job `name`: (result, job result, log lines)."""
    got: dict[str, SlurmJobResult] = {}

    @dg.asset(name="slurm_job")
    def slurm_job(context: dg.AssetExecutionContext, slurm_client: PipesSlurmClient) -> dg.MaterializeResult:
        got["result"] = result = slurm_client.run(
            context=context,
            command=[sys.executable, str(JOB), mode, str(seconds)],
            launcher=launcher,
            job_name=name,
            work_dir=tmp / name,
            extras={"mode": mode},
        )
        return dg.MaterializeResult(metadata={"slurm": result.metadata()})

    # disposed in the thread that made it (SQLite connections must not cross threads)
    with dg.DagsterInstance.ephemeral() as instance:
        res = dg.materialize(
            [slurm_job],
            resources={"slurm_client": PipesSlurmClient()},
            instance=instance,
            raise_on_error=raise_on_error,
        )
        logs = [e.user_message for e in instance.all_logs(res.run_id)]
    return res, got.get("result"), logs


def _failure(res: dg.ExecuteInProcessResult) -> str:
    failures = res.get_step_failure_events()
    assert len(failures) == 1
    return failures[0].step_failure_data.user_failure_data.description


def _wait_for(predicate, timeout_s: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class _Background:
    """A materialisation in a thread (its own ephemeral instance); join() returns what _run_asset returned."""

    def __init__(self, *args, **kwargs):
        self.out: tuple | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._target, args=args, kwargs=kwargs, daemon=True)
        self.thread.start()

    def _target(self, *args, **kwargs):
        try:
            self.out = _run_asset(*args, **kwargs)
        except BaseException as err:  # reported by join()
            self.error = err

    def join(self, timeout_s: float = 200.0):
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the background materialisation did not end"
        if self.error is not None:
            raise self.error
        return self.out


@pytest.fixture(scope="module")
def timeout_run(tmp_path_factory):
    """A job with Slurm's smallest time limit (1 minute) that would sleep 10 minutes: ends TIMEOUT in 60-90 s."""
    name = _name("timeout")
    run = _Background(
        tmp_path_factory.mktemp("timeout"),
        name,
        seconds=600,
        launcher=SlurmLauncher(time_limit="1", poll_interval_s=1.0),
        raise_on_error=False,
    )
    run.name = name
    yield run
    if run.thread.is_alive():  # its test was not selected: don't wait a minute for nothing
        for job in slurm.live_jobs(name):
            slurm.cancel(job.job_id)
        run.thread.join(60)


@pytest.fixture(autouse=True, scope="module")
def _start_the_timeout_job_first(timeout_run):
    """The TIMEOUT job takes a minute or more: start it before the others so it runs while they do."""
    yield


def test_a_job_runs_through_pipes_and_reports_back(tmp_path):
    name = _name("ok")
    res, result, logs = _run_asset(tmp_path, name, seconds=1.0)
    assert res.success and result is not None
    assert result.job_name == name and re.fullmatch(r"ual-test-[0-9a-z]{12}", name)
    assert result.job_id.isdigit() and result.state == "COMPLETED" and not result.adopted
    assert (
        result.node == socket.gethostname().split(".")[0] and result.elapsed_s is not None and result.exit_code == "0:0"
    )
    # what the job reported through Pipes comes back: its custom message (once), no materialisation
    assert len(result.custom_messages) == 1 and result.pipes_results == []
    message = result.custom_messages[0]
    assert message["job_id"] == result.job_id and message["omp_threads"] == "1"
    # the job's log lines (stdout) and its Pipes log lines appear in the run's log
    assert any(f"[{name}] progress 0/2 of job {result.job_id} (extras: {{'mode': 'ok'}})" in m for m in logs)
    assert any(f"[{name}] progress 2/2" in m for m in logs)
    assert f"pipes log line from job {result.job_id}" in logs
    assert any(f"slurm job {result.job_id} ({name}) submitted" in m for m in logs)
    # the metadata names the job
    meta = res.asset_materializations_for_node("slurm_job")[0].metadata["slurm"].value
    assert meta == {
        "job_id": result.job_id,
        "job_name": name,
        "node": result.node,
        "elapsed_s": result.elapsed_s,
        "state": "COMPLETED",
        "adopted": False,
    }
    # the job script and log are in the work folder, the Pipes context file is gone
    work = tmp_path / name
    script = (work / SCRIPT_FILE).read_text()
    assert f"#SBATCH --job-name={name}\n" in script and f"#SBATCH --comment=dagster_run_id={res.run_id}\n" in script
    assert result.log_path == work / f"slurm-{result.job_id}.log" and "progress 2/2" in result.log_path.read_text()
    assert not (work / CONTEXT_FILE).exists()
    # scontrol still knows the finished job, and the jobcomp record (read once scontrol has forgotten it) has it
    assert slurm.job_state(result.job_id).state == "COMPLETED"
    record = _wait_for(lambda: slurm.jobcomp_record(result.job_id), 10, "the jobcomp record")
    assert (record.name, record.state, record.node) == (name, "COMPLETED", result.node)


def test_no_secret_reaches_a_file_the_job_or_client_writes(tmp_path, monkeypatch):
    secrets = {"OPENAI_API_KEY": "sk-fake-0123456789abcdef", "HF_TOKEN": "hf_fake_abcdef0123456789"}
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    name = _name("secret")
    res, result, logs = _run_asset(tmp_path, name, seconds=0.5)
    assert res.success
    # the job got them from its environment ...
    assert result.custom_messages[0]["saw_openai_key"] and result.custom_messages[0]["saw_hf_token"]
    # ... and no file written for it holds them: script, log, Pipes messages (the context file is deleted)
    written = sorted(p.name for p in (tmp_path / name).iterdir())
    assert SCRIPT_FILE in written and MESSAGES_FILE in written and f"slurm-{result.job_id}.log" in written
    leaked = [
        str(p)
        for p in (tmp_path / name).rglob("*")
        if p.is_file() and any(s in p.read_text() for s in secrets.values())
    ]
    assert leaked == []
    assert not any(s in m for m in logs for s in secrets.values())


def test_scancel_fails_the_step_with_a_one_line_error(tmp_path):
    name = _name("cancel")
    res, _, logs = _run_asset(tmp_path, name, mode="cancel_self", raise_on_error=False)
    assert not res.success
    description = _failure(res)
    match = ONE_LINE.match(description)
    assert match, description
    assert "\n" not in description and match.group(2) == name and match.group(3) == "CANCELLED"
    assert "about to scancel myself" in match.group(4)  # the last lines of the job's log
    assert slurm.job_state(match.group(1)).state == "CANCELLED"
    # the failure's metadata still names the job
    assert any(f"slurm job {match.group(1)} ({name}): CANCELLED" in m for m in logs)


def test_a_failing_job_names_its_state_and_log(tmp_path):
    name = _name("fail")
    res, _, _ = _run_asset(tmp_path, name, mode="fail", seconds=0.1, raise_on_error=False)
    description = _failure(res)
    match = ONE_LINE.match(description)
    assert match and match.group(3) == "FAILED" and "something broke: exiting 3" in match.group(4), description
    assert slurm.job_state(match.group(1)).exit_code == "3:0"


def _driver(name: str, work: Path, mode: str = "ok", seconds: float = 1.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), name, str(work), mode, str(seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _running(name: str):
    jobs = slurm.live_jobs(name)
    return jobs[0] if jobs and jobs[0].state == "RUNNING" else None


def test_a_terminated_step_cancels_its_job(tmp_path):
    """Dagster's Terminate sends SIGTERM to the run's process: the step cancels its job before it ends."""
    name = _name("term")
    proc = _driver(name, tmp_path / name, seconds=120)
    try:
        job = _wait_for(lambda: _running(name), what=f"job {name} running")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert f"slurm job {job.job_id} ({name}) cancelled: its step was interrupted" in out, out
    assert _wait_for(lambda: slurm.job_state(job.job_id).state == "CANCELLED", 30, "CANCELLED")
    assert slurm.live_jobs(name) == []


def test_a_live_job_left_by_a_killed_run_is_adopted_not_submitted_again(tmp_path):
    name = _name("adopt")
    work = tmp_path / name
    proc = _driver(name, work, seconds=6)
    job = _wait_for(lambda: _running(name), what=f"job {name} running")
    proc.kill()  # kill -9: the run cannot cancel anything
    proc.wait(30)
    assert job.run_id  # the dead run's id
    res, result, logs = _run_asset(tmp_path, name, seconds=6)
    assert res.success and result.adopted and result.job_id == job.job_id
    assert any(f"adopting slurm job {job.job_id} ({name}, RUNNING, left by run {job.run_id})" in m for m in logs)
    # the adopted job's Pipes messages (written before and after the adoption) come back
    assert len(result.custom_messages) == 1 and result.custom_messages[0]["job_id"] == job.job_id
    assert f"pipes log line from job {job.job_id}" in logs
    # one job only: the script was submitted once, and the job now names the run that adopted it
    assert len(list(work.glob("slurm-*.log"))) == 1
    every = subprocess.run(
        ["squeue", "--me", "-h", "-t", "all", "-n", name, "-o", "%i"], capture_output=True, text=True
    )
    assert every.stdout.split() == [job.job_id]
    assert slurm.job_state(job.job_id).run_id == res.run_id


def test_cancel_run_jobs_cancels_only_that_runs_live_jobs(tmp_path):
    assert slurm.installed()
    launcher = SlurmLauncher()
    ids = {}
    for run_id in ("dead-run-a", "other-run-b"):
        name = _name(run_id[:4])
        script = slurm.render_job_script(launcher, ["sleep", "60"], job_name=name, work_dir=tmp_path, run_id=run_id)
        ids[run_id] = slurm.submit(slurm.write_job_script(tmp_path / f"{run_id}.sbatch", script))
    try:
        assert slurm.cancel_run_jobs("dead-run-a") == [ids["dead-run-a"]]
        assert _wait_for(lambda: slurm.job_state(ids["dead-run-a"]).state == "CANCELLED", 30, "CANCELLED")
        assert slurm.job_state(ids["other-run-b"]).live
        assert slurm.cancel_run_jobs("dead-run-a") == []
    finally:
        slurm.cancel(ids["other-run-b"])


def test_two_one_cpu_jobs_run_at_the_same_time(tmp_path, timeout_run):
    timeout_run.join()  # both cores free again
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True).stdout.split()[0])
    if cpus < 2:
        pytest.skip(f"the Slurm node has {cpus} CPU")
    runs = [_Background(tmp_path, _name(f"par{i}"), seconds=4.0) for i in range(2)]
    results = [run.join()[1] for run in runs]
    spans = [(r.custom_messages[0]["start"], r.custom_messages[0]["end"]) for r in results]
    assert results[0].job_id != results[1].job_id
    # each started before the other ended: they ran at once
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans


def test_a_job_past_its_time_limit_ends_timeout(timeout_run):
    res, result, logs = timeout_run.join()
    assert not res.success and result is None
    description = _failure(res)
    match = ONE_LINE.match(description)
    assert match and match.group(2) == timeout_run.name and match.group(3) == "TIMEOUT", description
    assert "DUE TO TIME LIMIT" in match.group(4) and "progress 0/2" in match.group(4)
