"""A run killed with SIGKILL mid-way loses no committed row and re-pays none."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.fault_server import FaultMix
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.elicitation import elicit_dataset

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    import ual_dagster.elicitation.commit as commit
    from ual_dagster.config.elicitation import ElicitationConfig
    from ual_dagster.elicitation import elicit_dataset
    from ual_dagster.storage import DuckDBStore

    commit.PROGRESS_LOG_INTERVAL_S = 0.0  # report every commit, so the parent knows what was committed
    cfg = ElicitationConfig.model_validate_json(sys.argv[2])
    elicit_dataset("killme", cfg, DuckDBStore(sys.argv[1]), log=lambda m: print(m, flush=True))
    """
)


def ok_rows(store):
    with store.connect() as con:
        return {
            sid: (u, created)
            for sid, u, created in con.execute(
                "SELECT sample_id, uncertainty, created_at FROM uncertainty WHERE status = 'ok'"
            ).fetchall()
        }


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(store, fault_server, tmp_path):
    server, url = fault_server
    server.set_mix(FaultMix(latency_s=0.05, rate_limit=0.1, garbage=0.05, seed=1))
    samples = numbered_samples(600)
    write_samples(store, "killme", samples)
    cfg = openai_cfg(url, concurrency=8, batch_commit=16)

    out = tmp_path / "child.log"
    with out.open("w") as fh:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(store.path), cfg.model_dump_json()],
            cwd=PROJECT_ROOT, stdout=fh, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while server.total_calls < 250 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    reported = [int(n) for n in re.findall(r"committed (\d+)/600", out.read_text())]
    assert reported, out.read_text()
    committed = ok_rows(store)
    assert 0 < len(committed) < 600
    # every row the child reported as committed survived the kill (the report counts all statuses)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM uncertainty").fetchone()[0] >= reported[-1]
    calls_at_kill = dict(server.calls)

    server.set_mix(FaultMix(seed=2))
    result = elicit_dataset("killme", cfg, store)

    final = ok_rows(store)
    assert len(final) == 600 and result.metadata["rows_by_status"]["ok"] == 600
    index = {s.sample_id: i for i, s in enumerate(samples)}
    for sample_id, row in committed.items():
        assert final[sample_id] == row  # not replaced
        assert server.calls[index[sample_id]] == calls_at_kill.get(index[sample_id], 0)  # not re-paid
    assert result.metadata["cache_hits"] == len(committed)
