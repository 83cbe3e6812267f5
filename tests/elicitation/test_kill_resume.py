"""A run killed with SIGKILL mid-way loses no answer it received and re-pays none: rows
committed to DuckDB stay as they are, answers journaled but not yet committed are
replayed, and only requests in flight at the kill (at most `concurrency`) are asked again."""

from __future__ import annotations

import json
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
from ual_dagster.elicitation.commit import journal_path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    import ual_dagster.elicitation.commit as commit
    from ual_dagster.config.elicitation import parse_elicitation
    from ual_dagster.elicitation import elicit_dataset
    from ual_dagster.storage import DuckDBStore

    commit.PROGRESS_LOG_INTERVAL_S = 0.0  # report every commit, so the parent knows what was committed
    cfg = parse_elicitation(sys.argv[2])
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
            cwd=PROJECT_ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while server.total_calls < 250 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, out.read_text()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    reported = [int(n) for n in re.findall(r"committed: (\d+)/600", out.read_text())]
    assert reported, out.read_text()
    committed = ok_rows(store)
    assert 0 < len(committed) < 600
    # every row the child reported as committed survived the kill (the report counts all statuses)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM uncertainty").fetchone()[0] >= reported[-1]
    calls_at_kill = dict(server.calls)
    journaled = {}
    for line in journal_path(store, "killme").read_text().splitlines():
        row = json.loads(line)
        journaled[row["sample_id"]] = row["status"]
    assert journaled, "the kill landed after every answer was committed; nothing to replay"
    answered = set(committed) | set(journaled)

    server.set_mix(FaultMix(seed=2))
    result = elicit_dataset("killme", cfg, store)

    final = ok_rows(store)
    assert len(final) == 600 and result.metadata["rows_by_status"]["ok"] == 600
    assert result.metadata["replayed_from_journal"] == len(journaled)
    assert journal_path(store, "killme").stat().st_size == 0  # emptied once everything is in DuckDB
    index = {s.sample_id: i for i, s in enumerate(samples)}
    for sample_id, row in committed.items():
        assert final[sample_id] == row  # not replaced
    for sample_id in answered:
        i = index[sample_id]
        if sample_id in committed or journaled[sample_id] == "ok":
            assert server.calls[i] == calls_at_kill[i], f"sample {i} was answered before the kill and paid again"
    ok_before = {sid for sid in answered if sid in committed or journaled[sid] == "ok"}
    assert result.metadata["cache_hits"] == len(ok_before)
    # only requests in flight at the kill are asked again: at most one per worker
    asked_again = [i for i, n in calls_at_kill.items() if server.calls[i] > n and samples[i].sample_id not in answered]
    assert len(asked_again) <= cfg.concurrency
