"""docker/dagster.yaml loads as a Dagster instance against a real PostgreSQL server.

A throwaway cluster is created in a temp directory (initdb + pg_ctl from Debian's
postgresql package, as the `postgres` OS user when the tests run as root), listening
on a free port on 127.0.0.1 with password authentication. The instance reads its
credentials from the same environment variables docker compose sets; a run and an
asset materialisation then round-trip through it and are read back both by a second
instance (another container) and straight from Postgres.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "docker" / "dagster.yaml"
PG_USER = "dagster_test"
PG_DB = "dagster_ual"


def _postgres_bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    # Debian keeps the server binaries off PATH, one directory per major version.
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db: str


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    as_root = os.geteuid() == 0
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' OS user to run the server as (initdb refuses root)")
    # Not under pytest's tmp_path: that tree is private to root and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="ual-pg-"))
    if as_root:
        os.chown(root, owner.pw_uid, owner.pw_gid)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(bin_dir / args[0]), *args[1:]]
        if as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    password = "pw-" + os.urandom(6).hex()
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if as_root:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"
    init = run(
        "initdb",
        "-D",
        str(data),
        "-U",
        PG_USER,
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
    start = run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    log_text = log.read_text() if log.exists() else ""
    assert start.returncode == 0, f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log_text}"
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, password=password, dbname="postgres")
        con.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {PG_DB}")
        con.close()
        yield PostgresServer("127.0.0.1", port, PG_USER, password, PG_DB)
    finally:
        run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dagster_home(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding docker/dagster.yaml verbatim, with compose's environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_USERNAME", postgres.user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres.port))
    monkeypatch.setenv("DAGSTER_PG_DB", postgres.db)
    monkeypatch.setenv("UAL_DAGSTER_STORAGE_DIR", str(tmp_path / "dagster_storage"))
    return home


def _rows(pg: PostgresServer, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    con = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.db)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        con.close()


@dg.asset(pool="duckdb")
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(data_version=dg.DataVersion("fp-0123"), metadata={"rows": 3})


def test_instance_settings_come_from_docker_dagster_yaml(dagster_home: Path) -> None:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        concurrency = instance.get_concurrency_config()  # what the daemon's run queue reads
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.run_queue_config.max_concurrent_runs == 2


def test_materialisation_round_trips_through_postgres(dagster_home: Path, postgres: PostgresServer) -> None:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        result = dg.materialize([probe], instance=instance)
        assert result.success
        run_id = result.run_id

    # A second instance from the same file and environment: another container's view.
    with dg.DagsterInstance.from_config(str(dagster_home)) as other:
        run = other.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        event = other.get_latest_materialization_event(dg.AssetKey("probe"))
        assert event is not None and event.run_id == run_id
        materialization = event.asset_materialization
        assert materialization.metadata["rows"].value == 3
        assert materialization.tags["dagster/data_version"] == "fp-0123"
        # The pool the asset names was created with the instance's default limit.
        assert other.event_log_storage.get_concurrency_info("duckdb").slot_count == 1

    # Straight from Postgres: the rows live there, not in a SQLite file under DAGSTER_HOME.
    assert _rows(postgres, "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    assert (
        _rows(postgres, "SELECT count(*) FROM event_logs WHERE run_id = %s AND asset_key IS NOT NULL", (run_id,))[0][0]
        >= 1
    )
    assert _rows(postgres, "SELECT concurrency_key, count(*) FROM concurrency_slots GROUP BY 1") == [("duckdb", 1)]
    assert not list(dagster_home.rglob("*.db"))
