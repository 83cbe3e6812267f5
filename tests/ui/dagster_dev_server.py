"""A real `dagster dev` (webserver + daemon) for UI tests, and a small GraphQL client for it.

The server runs in its own process group so that teardown can stop it together with
everything it spawned (code server, webserver, daemon, run workers), even when a test
failed half-way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# dagster dev shuts its children down on SIGINT (like Ctrl-C); this is how long it gets
# before the whole group is killed.
GRACEFUL_STOP_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GraphQLError(AssertionError):
    """The webserver answered a GraphQL request with errors."""


@dataclass
class DagsterDevServer:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    @classmethod
    def start(cls, project_root: Path, env: dict[str, str], log_path: Path) -> "DagsterDevServer":
        port = free_port()
        dagster = Path(sys.executable).with_name("dagster")
        log = log_path.open("wb")
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=project_root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() reaches every child
        )
        log.close()
        return cls(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]

    def stop(self) -> None:
        """SIGINT the process group, then SIGKILL whatever is left of it."""
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + (GRACEFUL_STOP_S if sig == signal.SIGINT else 5.0)
            while time.monotonic() < deadline:
                self.process.poll()
                if not _group_alive(pgid):
                    return
                time.sleep(0.2)

    # --- HTTP / GraphQL -------------------------------------------------------------

    def wait_until_serving(self, timeout_s: float) -> dict[str, Any]:
        """Poll GET /server_info until the webserver answers; fail early if dagster dev died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.base_url}/server_info", timeout=2.0)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no /server_info after {timeout_s:.0f} s:\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=timeout_s,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_for_location(self, name: str, timeout_s: float) -> None:
        """Wait until code location `name` has loaded; its load error (e.g. an ImportError) fails the test."""
        query = """
        { workspaceOrError { __typename ... on Workspace { locationEntries {
            name loadStatus
            locationOrLoadError { __typename ... on PythonError { message stack cause { message stack } } }
        } } } }"""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entries = self.graphql(query)["workspaceOrError"].get("locationEntries", [])
            entry = next((e for e in entries if e["name"] == name), None)
            if entry and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"] or {}
                if loaded.get("__typename") == "PythonError":
                    error = loaded["cause"] or loaded  # the user's exception, not the loader's wrapper
                    raise AssertionError(
                        f"code location {name!r} failed to load: {error['message']}\n{''.join(error['stack'])}"
                    )
                return
            time.sleep(0.5)
        raise AssertionError(f"code location {name!r} not loaded after {timeout_s:.0f} s:\n{self.log_tail()}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies still count for killpg(…, 0); they are gone once no member is running.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            return True
    return False
