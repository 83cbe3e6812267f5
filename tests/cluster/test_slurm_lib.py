"""ual_dagster.cluster.slurm without a cluster: job scripts, names, and parsing Slurm's answers."""

import pytest

from ual_dagster.cluster import slurm
from ual_dagster.config.launchers import SlurmLauncher

# Real answers of Slurm 22.05 (Debian 12), from the single-node cluster of scripts/slurm_cluster.sh.
SCONTROL = (
    "JobId=1 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 "
    "Account=(null) QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=0 "
    "BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:01:27 TimeLimit=00:01:00 TimeMin=N/A "
    "SubmitTime=2026-12-04T11:08:50 StartTime=2026-12-04T11:08:53 EndTime=2026-12-04T11:10:20 Partition=debug "
    "AllocNode:Sid=localhost:2384 NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 TRES=cpu=1,node=1,billing=1 "
    "Command=(null) WorkDir=/tmp/sl Comment=dagster_run_id=r2  StdErr=/tmp/sl/t.out StdOut=/tmp/sl/t.out Power= \n"
)
JOBCOMP = (
    "JobId=2 UserId=root(0) GroupId=root(0) Name=ual-x-abc JobState=CANCELLED Partition=debug "
    "TimeLimit=UNLIMITED StartTime=2026-12-04T11:12:53 EndTime=2026-12-04T11:13:03 NodeList=vm NodeCnt=1 ProcCnt=1 "
    "WorkDir=/tmp/sl ReservationName= Tres=cpu=1,mem=22900M,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown "
    "SubmitTime=2026-12-04T11:12:51 EligibleTime=2026-12-04T11:12:51 DerivedExitCode=0:0 ExitCode=0:0 "
)


def test_job_name_is_step_and_fingerprint_prefix():
    assert slurm.job_name("train", "0123456789abcdef0123") == "ual-train-0123456789ab"
    assert slurm.job_name("eval", "abcdefabcdefabcdef") == "ual-eval-abcdefabcdef"
    with pytest.raises(ValueError, match="at least 12"):
        slurm.job_name("train", "abc")
    with pytest.raises(ValueError, match="step 'a b'"):
        slurm.job_name("a b", "0123456789abcdef")


def test_job_script_carries_the_launcher_and_execs_the_command(tmp_path):
    launcher = SlurmLauncher(
        partition="gpu",
        gpus=2,
        cpus_per_task=8,
        mem_gb=1.5,
        time_limit="2:00:00",
        sbatch_args=["--account=proj", "--qos=high"],
        setup=["module load cuda/12.4", "source /shared/venv/bin/activate"],
    )
    script = slurm.render_job_script(
        launcher,
        ["python", "-m", "ual_dagster.train.pipes_entry", "a b.json"],
        job_name="ual-train-x",
        work_dir=tmp_path,
        run_id="run-1",
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH ")]
    assert sbatch == [
        "--job-name=ual-train-x",
        "--partition=gpu",
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=8",
        "--gres=gpu:2",
        "--mem=1536M",
        "--time=2:00:00",
        f"--output={tmp_path}/slurm-%j.log",
        "--comment=dagster_run_id=run-1",
        "--account=proj",
        "--qos=high",
    ]
    body = lines[len(sbatch) + 2 :]
    assert body == [
        "set -euo pipefail",
        "module load cuda/12.4",
        "source /shared/venv/bin/activate",
        "export OMP_NUM_THREADS=8 MKL_NUM_THREADS=8 OPENBLAS_NUM_THREADS=8",
        "exec python -m ual_dagster.train.pipes_entry 'a b.json'",
    ]


def test_partition_comes_from_the_launcher_then_the_environment_then_the_cluster(tmp_path):
    def partition(launcher, environ):
        script = slurm.render_job_script(launcher, ["true"], job_name="j", work_dir=tmp_path, environ=environ)
        return [line for line in script.splitlines() if "--partition" in line]

    assert partition(SlurmLauncher(partition="a"), {"UAL_SLURM_PARTITION": "b"}) == ["#SBATCH --partition=a"]
    assert partition(SlurmLauncher(), {"UAL_SLURM_PARTITION": "b"}) == ["#SBATCH --partition=b"]
    assert partition(SlurmLauncher(), {}) == []  # sbatch picks the cluster's default partition
    minimal = slurm.render_job_script(SlurmLauncher(), ["true"], job_name="j", work_dir=tmp_path, environ={})
    assert "--gres" not in minimal and "--mem" not in minimal and "--time" not in minimal
    assert "--comment" not in minimal
    with pytest.raises(ValueError, match="absolute"):
        slurm.render_job_script(SlurmLauncher(), ["true"], job_name="j", work_dir="rel")
    with pytest.raises(ValueError, match="empty command"):
        slurm.render_job_script(SlurmLauncher(), [], job_name="j", work_dir=tmp_path)


def test_the_script_holds_nothing_from_the_environment_but_the_partition(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-0123456789")
    monkeypatch.setenv("HF_TOKEN", "hf_fake_0123456789")
    script = slurm.render_job_script(SlurmLauncher(), ["python", "x.py"], job_name="j", work_dir=tmp_path)
    assert "sk-fake" not in script and "hf_fake" not in script


def test_scontrol_output_parses():
    job = slurm.parse_scontrol_job(SCONTROL)
    assert job == slurm.SlurmJob(
        job_id="1",
        name="wrap",
        state="TIMEOUT",
        node="vm",
        elapsed_s=87.0,
        exit_code="0:15",
        reason="TimeLimit",
        comment="dagster_run_id=r2",
    )
    assert job.finished and not job.live and job.run_id == "r2"
    pending = slurm.parse_scontrol_job("JobId=7 JobName=ual-eval-x JobState=PENDING Reason=Resources NodeList=(null)")
    assert pending.live and pending.node is None and pending.reason == "Resources" and pending.run_id is None


def test_jobcomp_and_sacct_records_parse():
    job = slurm.parse_jobcomp_line(JOBCOMP)
    assert (job.job_id, job.name, job.state, job.node, job.elapsed_s) == ("2", "ual-x-abc", "CANCELLED", "vm", 10.0)
    sacct = "41|ual-train-0123456789ab|CANCELLED by 1000|gpu07|3605|0:15|None\n"
    job = slurm.parse_sacct(sacct, "41")
    assert (job.state, job.node, job.elapsed_s, job.exit_code, job.reason) == (
        "CANCELLED",
        "gpu07",
        3605.0,
        "0:15",
        None,
    )
    assert slurm.parse_sacct(sacct, "42") is None


def test_the_failure_message_is_one_line(tmp_path):
    log = tmp_path / "slurm-5.log"
    log.write_text("step 1\nstep 2\n\nslurmstepd: error: *** JOB 5 ON vm CANCELLED AT 2026-12-04T11:10:20 ***\n")
    job = slurm.SlurmJob(job_id="5", name="ual-train-0123456789ab", state="CANCELLED")
    err = slurm.SlurmJobFailed(job, slurm.log_tail(log, lines=2))
    assert str(err) == (
        "slurm job 5 (ual-train-0123456789ab) ended CANCELLED: step 2 | "
        "slurmstepd: error: *** JOB 5 ON vm CANCELLED AT 2026-12-04T11:10:20 ***"
    )
    assert slurm.log_tail(tmp_path / "none.log") == f"(no log at {tmp_path / 'none.log'})"
    log.write_text("x" * 5000 + "\n")
    assert len(slurm.log_tail(log)) == 603


def test_the_log_follower_yields_complete_lines_only(tmp_path):
    log = tmp_path / "slurm-1.log"
    follower = slurm.LogFollower(log)
    assert follower.read() == []  # not there yet (the job has not started)
    log.write_text("a\nb")
    assert follower.read() == ["a"]
    with log.open("a") as f:
        f.write("c\nd")
    assert follower.read() == ["bc"]
    assert follower.flush() == ["d"]
    assert follower.read() == []


def test_exported_variables_must_fit_on_sbatchs_command_line(tmp_path):
    with pytest.raises(ValueError, match="comma"):
        slurm.submit(tmp_path / "x.sbatch", export={"A": "1,2"})
