"""Batch mode: a run SIGKILLed at any step, then re-run, submits no row twice and pays no answer twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.elicitation.batch_server import BatchServer, marker_answerer
from tests.elicitation.fault_server import SCORE_OF
from tests.elicitation.samples_table import numbered_samples, write_samples
from tests.elicitation.test_batch_mode import batch_cfg, rows, serving
from ual_dagster.elicitation import elicit_dataset

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    from ual_dagster.config.elicitation import parse_elicitation
    from ual_dagster.elicitation import elicit_dataset
    from ual_dagster.storage import DuckDBStore

    cfg = parse_elicitation(sys.argv[2])
    elicit_dataset("killme", cfg, DuckDBStore(sys.argv[1]), log=lambda m: print(m, flush=True))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [
        "files.create",  # uploaded, no batch yet
        "batches.create",  # the batch exists on the server, its id never reached DuckDB
        "batches.retrieve",  # waiting
        "files.content",  # collecting
    ],
)
def test_sigkill_then_rerun_submits_nothing_twice(store, tmp_path, kill_at):
    server = BatchServer(marker_answerer())
    samples = numbered_samples(30)
    write_samples(store, "killme", samples)
    with serving(server) as url:
        cfg = batch_cfg(url)
        server.pause_at = kill_at
        log = tmp_path / "child.log"
        with log.open("w") as fh:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(store.path), cfg.model_dump_json()],
                cwd=PROJECT_ROOT,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            )
        try:
            assert server.paused.wait(120), log.read_text()
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL
        server.pause_at = None

        result = elicit_dataset("killme", cfg, store)

    assert server.created_batches == 1, server.ops  # one batch, whatever the kill interrupted
    assert all(n == 1 for n in server.submitted.values()) and len(server.submitted) == 30
    assert all(n == 1 for n in server.answered.values()) and sum(server.answered.values()) == 30
    assert result.metadata["batches_created"] == (1 if kill_at == "files.create" else 0)
    assert result.metadata["batches_resumed"] == (1 if kill_at == "batches.create" else 0)
    expected = {s.sample_id: SCORE_OF(i) / 10 for i, s in enumerate(samples)}
    assert {r[0]: (r[1], r[2]) for r in rows(store)} == {sid: ("ok", u) for sid, u in expected.items()}
