from __future__ import annotations

import pytest

from tests.elicitation.fault_server import FaultMix, FaultServer
from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.loopback import serve_in_thread
from ual_dagster.storage import DuckDBStore


@pytest.fixture
def store(tmp_path) -> DuckDBStore:
    return DuckDBStore(tmp_path / "ual.duckdb")


@pytest.fixture
def fault_server():
    """(server, base_url): a fault-injecting OpenAI-compatible server on loopback."""
    server = FaultServer(FaultMix())
    with serve_in_thread(server.app) as root:
        yield server, f"{root}/v1"


def openai_cfg(base_url: str, **overrides) -> OpenAIElicitation:
    """Fast-retrying openai-backend config for the fault server."""
    values = dict(
        backend="openai",
        model="fault-model",
        base_url=base_url,
        api_key_env="UAL_TEST_ELICIT_KEY",
        timeout_s=2.0,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        max_retries=10,
        max_parse_retries=8,
        concurrency=32,
        batch_commit=16,
        commit_interval_s=0.5,
        commit_min_interval_s=0.1,
    )
    values.update(overrides)
    return OpenAIElicitation(**values)
