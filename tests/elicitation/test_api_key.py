"""The API key is used on the wire and nowhere else; a remote URL without a key is an error."""

from __future__ import annotations

import json
import logging

import pytest

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.fault_server import FaultMix
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.elicitation import elicit_dataset
from ual_dagster.elicitation.backends.openai_api import LOOPBACK_DUMMY_KEY, resolve_api_key

SECRET = "sk-test-SECRET-4f2a9c77e1"


def test_key_reaches_the_server_but_not_duckdb_logs_or_metadata(store, fault_server, monkeypatch, caplog, capfd):
    server, url = fault_server
    server.set_mix(FaultMix(rate_limit=0.2, server_error=0.2, garbage=0.2, seed=5))
    monkeypatch.setenv("UAL_TEST_ELICIT_KEY", SECRET)
    write_samples(store, "keyed", numbered_samples(40))
    messages: list[str] = []
    with caplog.at_level(logging.DEBUG):
        result = elicit_dataset(
            "keyed", openai_cfg(url, max_retries=1, max_parse_retries=0), store, log=messages.append
        )

    assert f"Bearer {SECRET}" in server.authorization
    with store.connect() as con:
        tables = [t[0] for t in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        dump = "\n".join(str(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)
    captured = capfd.readouterr()
    for text in (dump, "\n".join(messages), caplog.text, captured.out, captured.err, json.dumps(result.metadata)):
        assert SECRET not in text
    assert "failed" in dump or "unparseable" in dump  # the fault paths (error texts) were exercised too


def test_loopback_without_key_uses_a_dummy_key(monkeypatch):
    monkeypatch.delenv("UAL_TEST_ELICIT_KEY", raising=False)
    cfg = openai_cfg("http://127.0.0.1:9/v1")
    assert resolve_api_key(cfg, "http://127.0.0.1:9/v1") == LOOPBACK_DUMMY_KEY
    assert resolve_api_key(cfg, "http://localhost:8000/v1") == LOOPBACK_DUMMY_KEY


def test_remote_url_without_key_names_the_variable(store, monkeypatch):
    monkeypatch.delenv("UAL_TEST_ELICIT_KEY", raising=False)
    write_samples(store, "remote", numbered_samples(2))
    cfg = openai_cfg("https://api.example.com/v1")
    with pytest.raises(RuntimeError, match="UAL_TEST_ELICIT_KEY"):
        elicit_dataset("remote", cfg, store)
