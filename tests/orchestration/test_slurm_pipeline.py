"""The `slurm` profile end to end against a real Slurm: every training and evaluation is a job.

`dagster asset materialize --select '*eval_scores+'` runs twice on a small copy of the bundled
`slurm` profile (its launchers and executor, a 1-layer model and a few dozen samples): once
with the launchers in_process and one torch thread (the reference), once with the bundled
Slurm launchers (1 CPU per job, so one torch thread too). Asserted:

- every training and evaluation ran as a Slurm job: job ids and names in the metadata;
- at least two jobs were running at the same time (the multiprocess executor queues them);
- the scores equal the in-process run's, number for number;
- a job cancelled with `scancel` fails its step with one line naming the job id, the state
  and its log's last lines, and the re-run trains only that variant.

Skipped, with the reason, only where no Slurm controller answers (`scripts/slurm_cluster.sh
start` starts one on this machine; .ci/run does).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.orchestration.cli import PROJECT_ROOT, start_materialize
from tests.orchestration.profiles import small_profile, write_profile
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR
from ual_dagster.storage import StatePaths

pytestmark = pytest.mark.slow

SELECTION = "*eval_scores+"
RUN_TIMEOUT_S = 600
VARIANTS = [("low", "sft"), ("low", "ual")]


def _slurm_unavailable() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (scripts/slurm_cluster.sh --install start)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld does not answer"
    states = out.stdout.split()
    if out.returncode != 0:
        return f"slurmctld cannot be reached: {out.stderr.strip() or out.stdout.strip()}"
    if not any(s.rstrip("*~#") in {"idle", "mixed", "allocated"} for s in states):
        return f"no usable Slurm node (sinfo: {' '.join(states) or 'nothing'})"
    return None


@pytest.fixture(scope="module")
def slurm() -> None:
    reason = _slurm_unavailable()
    if reason:
        pytest.skip(reason)


def write_pipeline_profile(root: Path, *, slurm: bool, **method_edits) -> Path:
    """A small copy of the bundled slurm profile (its launchers and executor), state under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    bundled = yaml.safe_load((BUNDLED_DIR / "slurm.yaml").read_text())
    launchers = {
        "train": bundled["training"]["launcher"] if slurm else "in_process",
        "eval": bundled["evaluation"]["launcher"] if slurm else "in_process",
    }
    data = small_profile(
        root,
        "slurm_e2e",
        pretrain_steps=4,
        corpus_samples=100,
        training={"epochs": 1, "batch_size": 8, "max_length": 48, "launcher": launchers["train"]},
        datasets={
            "testbed_exact": {
                "source": "testbed",
                "entropy": "low",
                "testbed": {"kind": "single_answer", "n_samples": 80, "heldout_fraction": 0.1, "seed": 0},
            }
        },
        scenarios={"low": {"size": 24, "weights": {"testbed_exact": 1.0}}},
        methods={"sft": {"kind": "sft"}, "ual": {"kind": "ual", "eps_min": 0.0, "eps_max": 0.2, **method_edits}},
        # the reference runs its steps in one process (the executor changes no number)
        orchestration={
            **(bundled["orchestration"] if slurm else {"executor": "in_process"}),
            "automation": False,
            "reelicit_schedule": False,
        },
    )
    ev = data["evaluation"]
    ev["launcher"] = launchers["eval"]
    ev["generation"] = {"max_new_tokens": 6, "temperature": 0.0, "batch_size": 16, "stop_strings": ["\n"]}
    ev["lm_eval"] = [{"name": "testbed_exact_heldout", "limit": 6}]
    ev["alpaca_eval"] = None
    ev["answer_likelihood"] = {"datasets": ["testbed_exact"], "limit": 6}
    ev["clustering"] = {"probe_samples": 6, "max_tokens": 200, "layers": [-1]}
    return write_profile(root, data)


class Cli:
    """`dagster asset materialize` on a profile, as a user runs it."""

    def __init__(self, profile: Path):
        self.profile = profile
        self.paths = StatePaths.for_profile(load_profile(str(profile))).ensure()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "UAL_PROFILE": str(profile),
            "DAGSTER_HOME": str(self.paths.dagster_home),
            "OMP_NUM_THREADS": "1",  # the reference's steps: the threads of a 1-CPU Slurm job
        }
        self.runs = 0

    def start(self) -> tuple[subprocess.Popen, Path]:
        self.runs += 1
        log = self.profile.parent / f"run{self.runs}.log"
        return start_materialize(SELECTION, self.env, log), log

    def run(self) -> tuple[int, str]:
        proc, log = self.start()
        return self.wait(proc, log)

    @staticmethod
    def wait(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
        try:
            rc = proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        return rc, log.read_text()

    def metadata(self, key: str) -> dict:
        with dg.DagsterInstance.from_config(str(self.paths.dagster_home)) as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
            return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def scores(self) -> dict[tuple, tuple]:
        with self.paths.store().connect(read_only=True) as con:
            rows = con.execute(
                "SELECT scenario, method, seed, benchmark, metric, value, stderr, n FROM eval_scores"
            ).fetchall()
        return {r[:5]: r[5:] for r in rows}

    def finished_checkpoints(self) -> set[str]:
        return {p.parent.name for p in (self.paths.artifacts / "lora").glob("*/_FINISHED.json")}


class RunningJobs:
    """Polls `squeue` while a run goes on: the most ual-* jobs seen RUNNING at once."""

    def __init__(self):
        self.most = 0
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True).stdout
            running = [line.split() for line in out.splitlines() if " ual-" in line and line.endswith("RUNNING")]
            self.seen |= {name for _, name, _ in running}
            self.most = max(self.most, len(running))
            time.sleep(0.2)

    def __enter__(self) -> "RunningJobs":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _job_of(meta: dict, seed: str = "0") -> dict:
    return meta["per_seed"][seed]["job"]


def test_slurm_profile_runs_every_training_and_evaluation_as_a_job(slurm, tmp_path):
    reference = Cli(write_pipeline_profile(tmp_path / "in_process", slurm=False))
    rc, text = reference.run()
    assert rc == 0, text[-4000:]

    cli = Cli(write_pipeline_profile(tmp_path / "slurm", slurm=True))
    with RunningJobs() as jobs:
        rc, text = cli.run()
    assert rc == 0, text[-4000:]

    # every training and evaluation was a Slurm job, named after its step and fingerprint
    for scenario, method in VARIANTS:
        lora = cli.metadata(f"lora_{scenario}_{method}")
        job = _job_of(lora)
        checkpoint = lora["checkpoints"]["0"]
        assert job["launcher"] == "slurm" and re.fullmatch(r"\d+", str(job["job_id"]))
        assert job["job_name"] == f"ual-train-{checkpoint[:12]}" and job["state"] == "COMPLETED"
        evaluation = cli.metadata(f"eval_{scenario}_{method}")
        ejob = _job_of(evaluation)
        assert ejob["launcher"] == "slurm" and ejob["job_name"].startswith("ual-eval-")
    assert jobs.most >= 2, f"never two jobs running at once (seen: {sorted(jobs.seen)})"
    clustering = cli.metadata("token_clustering")
    assert sorted(clustering["jobs"]) == sorted(f"{s}/{m}" for s, m in VARIANTS)
    assert all(j["job_name"].startswith("ual-cluster-") for j in clustering["jobs"].values())

    # the same numbers as in process, with the same threads per job
    assert cli.scores() == reference.scores()

    # a job cancelled with scancel fails its step with one line; the re-run trains only that variant
    before = cli.finished_checkpoints()
    write_pipeline_profile(tmp_path / "slurm", slurm=True, training={"epochs": 40})  # ual retrains, slowly
    proc, log = cli.start()
    job_id = wait_for_running_job(proc, log, "ual-train-")
    subprocess.run(["scancel", job_id], check=True)
    rc, text = cli.wait(proc, log)
    assert rc != 0
    failure = re.search(rf"slurm job {job_id} \((ual-train-[0-9a-f]{{12}})\) ended CANCELLED: (.*)", text)
    assert failure, text[-4000:]
    assert "\n" not in failure.group(2)

    rc, text = cli.run()
    assert rc == 0, text[-4000:]
    assert len(cli.finished_checkpoints() - before) == 1  # only lora_low_ual trained again
    assert cli.metadata("lora_low_sft")["trained"] == 0 and cli.metadata("lora_low_ual")["trained"] == 1
    assert _job_of(cli.metadata("lora_low_ual"))["job_id"] != job_id  # a new job, not the cancelled one


def wait_for_running_job(proc: subprocess.Popen, log: Path, prefix: str) -> str:
    """The id of the first job named `prefix...` that Slurm reports RUNNING."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before a {prefix} job ran:\n{log.read_text()[-3000:]}"
        out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %j"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            job_id, name = line.split()
            if name.startswith(prefix):
                return job_id
        time.sleep(0.2)
    raise AssertionError(f"no {prefix} job ran within {RUN_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
