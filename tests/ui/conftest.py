"""Fixtures for the Dagster UI tests: a small profile in a temp state folder and `dagster dev` on it."""

from __future__ import annotations

import pytest
from dagster_dev_server import DagsterDevServer
from small_profile import LOCATION_NAME, PROJECT_ROOT, UIProfile, write_ui_profile


@pytest.fixture(scope="module")
def ui_profile(tmp_path_factory: pytest.TempPathFactory) -> UIProfile:
    return write_ui_profile(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def dagster_ui(ui_profile: UIProfile, tmp_path_factory: pytest.TempPathFactory):
    """`dagster dev -w workspace.yaml` from the project root, serving, with the code location loaded.

    Stopped at teardown, with every process it started, whether or not the tests passed.
    """
    log_path = tmp_path_factory.mktemp("ui_logs") / "dagster_dev.log"
    server = DagsterDevServer.start(PROJECT_ROOT, ui_profile.env, log_path)
    try:
        server.wait_until_serving(timeout_s=90)
        server.wait_for_location(LOCATION_NAME, timeout_s=120)
        yield server
    finally:
        server.stop()
