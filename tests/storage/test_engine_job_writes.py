"""Who writes DuckDB: an engine job never does (docs/deployment.md, "Who writes").

The job-side entry points mark their process as an engine job first thing; from then on
opening the project's DuckDB file for writing raises, naming the file and the rule, while
reading still works. The mark is inherited by the job's children (accelerate's ranks).
"""

import subprocess
import sys

import pytest

from ual_dagster.storage import DuckDBStore
from ual_dagster.storage.duckdb_store import ENGINE_JOB_ENV, EngineJobWriteError, forbid_duckdb_writes


def test_an_engine_job_cannot_open_duckdb_for_writing(tmp_path, monkeypatch):
    store = DuckDBStore(tmp_path / "ual.duckdb")
    store.record_version("instructions_x", "fp1")  # written by a Dagster step
    # setenv records the variable's absence, so the mark is undone after the test: later tests
    # in this process are Dagster steps, which write DuckDB
    monkeypatch.setenv(ENGINE_JOB_ENV, "0")
    forbid_duckdb_writes()
    with pytest.raises(EngineJobWriteError, match=r"ual\.duckdb.*engine job.*Dagster Pipes|engine job.*ual\.duckdb"):
        store.record_version("instructions_x", "fp2")
    with store.connect(read_only=True) as con:  # reading is allowed
        assert con.execute("SELECT fingerprint FROM asset_versions").fetchone() == ("fp1",)
    monkeypatch.undo()
    store.record_version("instructions_x", "fp2")  # a step again


@pytest.mark.parametrize("module", ["ual_dagster.train.pipes_entry", "ual_dagster.evaluation.job_entry"])
def test_the_job_entry_points_mark_their_process(module, tmp_path):
    """Each entry point sets the mark before it reads its spec: a missing spec file fails after it."""
    code = (
        "import os, sys, runpy\n"
        f"sys.argv = ['x', '--spec', {str(tmp_path / 'missing.json')!r}]\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__')\n"
        "except BaseException:\n"
        "    pass\n"
        f"print(os.environ.get({ENGINE_JOB_ENV!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "1", out.stderr[-2000:]
