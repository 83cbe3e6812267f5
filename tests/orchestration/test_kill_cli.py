"""`kill -9` of a real `dagster asset materialize` run, mid-elicitation and mid-training.

Each time the plain same command is run again, and it must finish (no step waits for the
dead run's `duckdb`/`train` pool slot: the dead-run sweep frees it), resume (training from
its last checkpoint) and pay for nothing already answered (every answer the killed run
received was journaled; only requests in flight at the kill are asked again).

Small on purpose: 40 samples, a 1-layer model, and a loopback OpenAI-compatible server in
this process whose 0.25 s latency (4 requests in flight) stretches the elicitation to
about 2.5 s, so the kill lands mid-elicitation even on a loaded machine: it is sent when
the server has seen 10 of the 40 requests, not after a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.elicitation.fault_server import FaultMix, FaultServer
from tests.orchestration.cli import PROJECT_ROOT, start_materialize
from tests.orchestration.profiles import small_profile, write_jsonl, write_profile
from ual_dagster.config import load_profile
from ual_dagster.loopback import serve_in_thread
from ual_dagster.storage import StatePaths

pytestmark = pytest.mark.slow

N_SAMPLES = 40
CONCURRENCY = 4
SELECTION = "*lora_mixed_ual"
RUN_TIMEOUT_S = 420  # a loaded 2-core machine; a healthy run takes well under a minute here


def write_kill_profile(root: Path, base_url: str) -> Path:
    notes = write_jsonl(
        root / "notes.jsonl",
        (
            {"instruction": f"Write a short note about topic [#{i}].", "output": f"Topic {i} is fine."}
            for i in range(N_SAMPLES)
        ),
    )
    data = small_profile(
        root,
        "killcli",
        pretrain_steps=4,
        corpus_samples=100,
        training={"epochs": 3, "batch_size": 4, "max_length": 48, "save_every_steps": 4},
        datasets={"notes": {"source": "file", "entropy": "high", "path": str(notes), "format": "alpaca_jsonl"}},
        scenarios={"mixed": {"size": 32, "weights": {"notes": 1.0}}},
        methods={"ual": {"kind": "ual", "eps_min": 0.0, "eps_max": 0.2}},
        orchestration={"automation": False, "reelicit_schedule": False},
    )
    data["elicitation"].update(
        base_url=base_url,
        model="fault-model",
        api_key_env="UAL_TEST_ELICIT_KEY",
        concurrency=CONCURRENCY,
        timeout_s=30.0,
        min_coverage=1.0,
        elicit_scope="all",  # every sample is asked once: the call log says what was paid
    )
    return write_profile(root, data)


class Cli:
    def __init__(self, root: Path, profile: Path):
        self.root, self.profile = root, profile
        self.paths = StatePaths.for_profile(load_profile(str(profile))).ensure()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "UAL_PROFILE": str(profile),
            "DAGSTER_HOME": str(self.paths.dagster_home),
        }
        self.runs = 0

    def start(self) -> tuple[subprocess.Popen, Path]:
        self.runs += 1
        log = self.root / f"run{self.runs}.log"
        return start_materialize(SELECTION, self.env, log), log

    def kill_when(self, proc: subprocess.Popen, log: Path, ready, what: str) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not ready():
            assert proc.poll() is None, f"the run ended before {what}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {RUN_TIMEOUT_S}s:\n{log.read_text()[-3000:]}"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def run_statuses(self) -> list[dg.DagsterRunStatus]:
        with dg.DagsterInstance.from_config(str(self.paths.dagster_home)) as instance:
            return [r.status for r in reversed(instance.get_runs())]

    def answered(self) -> set[int]:
        """Samples whose answer the killed run received: committed to DuckDB or journaled."""
        from ual_dagster.elicitation.commit import journal_path

        store = self.paths.store()
        ids = set()
        with store.connect(read_only=True) as con:
            ids |= {r[0] for r in con.execute("SELECT sample_id FROM uncertainty WHERE status = 'ok'").fetchall()}
        journal = journal_path(store, "notes")
        if journal.exists():
            ids |= {json.loads(line)["sample_id"] for line in journal.read_text().splitlines() if line.strip()}
        with store.connect(read_only=True) as con:
            marker = dict(con.execute("SELECT sample_id, instruction FROM samples").fetchall())
        return {int(marker[sid].split("[#")[1].split("]")[0]) for sid in ids}


def checkpoints(paths: StatePaths) -> list[Path]:
    return list((paths.artifacts / "lora").glob("*/checkpoints/step-*"))


def test_kill_minus_9_mid_elicitation_and_mid_training_then_the_same_command_finishes(tmp_path):
    server = FaultServer(FaultMix(latency_s=0.25))
    with serve_in_thread(server.app) as root_url:
        cli = Cli(tmp_path, write_kill_profile(tmp_path, f"{root_url}/v1"))

        # 1. killed mid-elicitation
        proc, log1 = cli.start()
        cli.kill_when(proc, log1, lambda: server.total_calls >= 10, "10 elicitation calls")
        calls_1 = dict(server.calls)
        answered_1 = cli.answered()
        assert 0 < len(calls_1) < N_SAMPLES, "the kill did not land mid-elicitation"
        assert cli.run_statuses()[-1] == dg.DagsterRunStatus.STARTED  # the dead run cannot report its own end

        # 2. the same command: not blocked by run 1's pool slot; killed mid-training
        proc, log2 = cli.start()
        cli.kill_when(proc, log2, lambda: checkpoints(cli.paths), "training checkpoint")
        text2 = log2.read_text()
        assert "marked failed and its pool slots freed" in text2
        calls_2 = dict(server.calls)
        assert sorted(calls_2) == list(range(N_SAMPLES))  # elicitation finished before training began
        paid_again = [i for i in answered_1 if calls_2[i] > calls_1[i]]
        assert paid_again == [], f"answers received before the kill were paid again: {paid_again}"
        in_flight = [i for i in calls_1 if i not in answered_1 and calls_2[i] > calls_1[i]]
        assert len(in_flight) <= CONCURRENCY  # only requests in flight at the kill are asked again
        assert not list((cli.paths.artifacts / "lora").glob("*/_FINISHED.json")), "training finished before the kill"

        # 3. the same command again: finishes, resumes training, asks nothing
        proc, log3 = cli.start()
        try:
            rc = proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        text3 = log3.read_text()
        assert rc == 0, text3[-3000:]
        assert "resuming from checkpoint step-" in text3
        assert dict(server.calls) == calls_2  # every answer was already paid for
        assert list((cli.paths.artifacts / "lora").glob("*/_FINISHED.json"))
        statuses = cli.run_statuses()
        assert statuses == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
