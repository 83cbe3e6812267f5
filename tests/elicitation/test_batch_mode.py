"""elicitation.mode: batch against a fake of the Files and Batches endpoints (tests/elicitation/batch_server.py)."""

from __future__ import annotations

import re
from contextlib import contextmanager

import openai
import pytest
from pydantic import ValidationError

from tests.elicitation.batch_server import BatchServer, marker_answerer
from tests.elicitation.conftest import openai_cfg
from tests.elicitation.fault_server import SCORE_OF
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.config.elicitation import OpenAIElicitation, parse_elicitation
from ual_dagster.elicitation import elicit_dataset
from ual_dagster.elicitation.batch import BatchElicitation, BatchStillRunning
from ual_dagster.elicitation.cost import BATCH_PRICE_FACTOR
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.loopback import serve_in_thread
from ual_dagster.storage import DuckDBStore

ROW_COLUMNS = "sample_id, status, uncertainty, raw_answer, attempts, prompt_tokens, completion_tokens"


@contextmanager
def serving(server: BatchServer):
    with serve_in_thread(server.app) as root:
        yield f"{root}/v1"


def batch_cfg(url: str, **overrides) -> OpenAIElicitation:
    values = dict(mode="batch", batch_poll_interval_s=0.01, batch_wait_s=30.0)
    values.update(overrides)
    return openai_cfg(url, **values)


def rows(store: DuckDBStore, columns: str = ROW_COLUMNS) -> list[tuple]:
    with store.connect() as con:
        return con.execute(f"SELECT {columns} FROM uncertainty ORDER BY sample_id").fetchall()


def faulty_answerer():
    # per sample i and its n-th request: i % 7 == 3 never parses; i % 11 == 5 gets a 400;
    # i % 5 == 1 gets a 500 on its first request; i % 6 == 2 is garbage on its first request
    return marker_answerer(
        garbage=lambda i, n: i % 7 == 3 or (i % 6 == 2 and n == 0),
        http_error=lambda i, n: 400 if i % 11 == 5 else 500 if (i % 5 == 1 and n == 0) else None,
    )


@pytest.mark.parametrize("method", ["verbalized", "consistency"])
def test_batch_rows_equal_online_rows_with_the_same_faults(tmp_path, method):
    samples = numbered_samples(40)
    extra = {"method": "consistency", "temperature": 0.5, "consistency_k": 3} if method == "consistency" else {}
    results = {}
    for mode in ("online", "batch"):
        store = DuckDBStore(tmp_path / f"{mode}.duckdb")
        write_samples(store, "faults", samples)
        server = BatchServer(faulty_answerer())
        with serving(server) as url:
            cfg = batch_cfg(url, mode=mode, max_parse_retries=2, max_retries=3, batch_max_rounds=10, **extra)
            result = elicit_dataset("faults", cfg, store)
        results[mode] = (rows(store), result, server)

    online_rows, online_result, online_server = results["online"]
    batch_rows, batch_result, batch_server = results["batch"]
    assert [r[:4] for r in batch_rows] == [r[:4] for r in online_rows]  # id, status, u, raw answer
    assert [r[4:] for r in batch_rows] == [r[4:] for r in online_rows]  # attempts and tokens too
    statuses = {r[1] for r in batch_rows}
    assert statuses == {"ok", "unparseable", "failed"}
    for i, s in enumerate(samples):
        row = next(r for r in batch_rows if r[0] == s.sample_id)
        if row[1] == "ok" and method == "verbalized":
            assert row[2] == SCORE_OF(i) / 10
    assert batch_result.metadata["rows_by_status"] == online_result.metadata["rows_by_status"]
    assert batch_result.fingerprint == online_result.fingerprint
    # the batch path made no online call; the retries went into later batches
    assert batch_server.chat_calls == 0 and batch_server.created_batches >= 2
    assert online_server.created_batches == 0
    # every paid request was one submitted line, answered once
    assert sum(batch_server.answered.values()) == sum(r[4] for r in batch_rows) == batch_result.metadata["calls"]
    # consistency: custom_id = row key + '#j'; verbalized: exactly the row key
    some_id = next(iter(batch_server.submitted))
    assert some_id.split(":", 1)[1].startswith(batch_result.elicitor)
    assert some_id.endswith("#0") if method == "consistency" else some_id.endswith(batch_result.elicitor)


def test_rerun_after_completion_makes_no_call_at_all(store):
    server = BatchServer(marker_answerer())
    write_samples(store, "done", numbered_samples(12))
    with serving(server) as url:
        cfg = batch_cfg(url, price_per_1k_prompt_tokens=1.0, price_per_1k_completion_tokens=2.0)
        first = elicit_dataset("done", cfg, store)
        ops, answered = sum(server.ops.values()), sum(server.answered.values())
        again = elicit_dataset("done", cfg, store)
    assert first.metadata["rows_by_status"]["ok"] == 12 and first.metadata["calls"] == 12
    assert sum(server.ops.values()) == ops and sum(server.answered.values()) == answered == 12
    assert again.metadata["calls"] == 0 and again.metadata["cache_hits"] == 12
    assert again.fingerprint == first.fingerprint
    # 12 answers of 100 prompt + 5 completion tokens, at the batch price
    online_price = 12 * (100 / 1000 * 1.0 + 5 / 1000 * 2.0)
    assert first.metadata["estimated_cost_usd"] == pytest.approx(online_price * BATCH_PRICE_FACTOR)
    assert first.metadata["mode"] == "batch" and first.metadata["batches_created"] == 1


@pytest.mark.parametrize("retry", ["batch", "online"])
def test_a_batch_that_expires_half_done(store, retry):
    server = BatchServer(marker_answerer())
    server.plans = [{"expire_after": 10}]
    samples = numbered_samples(20)
    write_samples(store, "exp", samples)
    with serving(server) as url:
        result = elicit_dataset("exp", batch_cfg(url, batch_retry=retry), store)
    assert result.metadata["rows_by_status"]["ok"] == 20
    assert result.metadata["batch_requests_not_run"] == 10
    assert all(n == 1 for n in server.answered.values())  # nothing paid twice
    if retry == "batch":
        assert server.created_batches == 2 and sum(server.answered.values()) == 20 and server.chat_calls == 0
    else:
        assert server.created_batches == 1 and sum(server.answered.values()) == 10 and server.chat_calls == 10
    expected = {s.sample_id: SCORE_OF(i) / 10 for i, s in enumerate(samples)}
    assert {r[0]: r[2] for r in rows(store)} == expected
    assert all(r[4] == 1 for r in rows(store))  # an unrun request is no attempt


def test_still_running_fails_with_progress_then_a_rerun_collects_the_same_batch(store):
    server = BatchServer(marker_answerer(), per_poll=3)
    server.hold = True
    write_samples(store, "slow", numbered_samples(9))
    with serving(server) as url:
        cfg = batch_cfg(url, batch_wait_s=0.05)
        log: list[str] = []
        with pytest.raises(
            BatchStillRunning, match=r"batch batch_\d+ still running \(0/9 done\), re-run or let the sensor"
        ):
            elicit_dataset("slow", cfg, store, log=log.append)
        assert any(re.search(r"batch batch_\d+ in_progress \(0/9 done, 0 failed\)", m) for m in log), log
        server.hold = False
        result = elicit_dataset("slow", cfg.model_copy(update={"batch_wait_s": 30.0}), store)
    assert server.created_batches == 1 and result.metadata["batches_created"] == 0
    assert result.metadata["rows_by_status"]["ok"] == 9 and sum(server.answered.values()) == 9


def test_cancelled_batch_keeps_what_finished_and_the_rest_waits_for_a_rerun(store):
    server = BatchServer(marker_answerer(), per_poll=4)
    server.hold = True
    write_samples(store, "cancel", numbered_samples(10))
    with serving(server) as url:
        cfg = batch_cfg(url, batch_wait_s=0.0)
        with pytest.raises(BatchStillRunning) as raised:
            elicit_dataset("cancel", cfg, store)
        batch_id = raised.value.running[0][0]
        client = openai.OpenAI(base_url=url, api_key="sk-test")
        server.hold = False
        assert client.batches.retrieve(batch_id).request_counts.completed == 4  # someone watched it progress
        assert client.batches.cancel(batch_id).status == "cancelling"  # ... and cancelled it

        second = elicit_dataset("cancel", cfg.model_copy(update={"batch_wait_s": 30.0}), store)
        assert second.metadata["rows_by_status"]["ok"] == 4
        assert second.metadata["batch_rows_cancelled"] == 6 and server.created_batches == 1

        third = elicit_dataset("cancel", cfg.model_copy(update={"batch_wait_s": 30.0}), store)
    assert third.metadata["rows_by_status"]["ok"] == 10 and server.created_batches == 2
    assert all(n == 1 for n in server.answered.values()) and sum(server.answered.values()) == 10


def test_a_batch_that_fails_validation_is_submitted_again(store):
    server = BatchServer(marker_answerer())
    server.plans = [{"fail": True}]
    write_samples(store, "failed", numbered_samples(5))
    with serving(server) as url:
        result = elicit_dataset("failed", batch_cfg(url), store)
    assert server.created_batches == 2 and result.metadata["rows_by_status"]["ok"] == 5
    assert sorted(result.metadata["batch_statuses"].values()) == ["completed", "failed"]


def test_batch_mode_config_errors():
    with pytest.raises(ValidationError, match=r"oracle\.mode\n  Extra inputs are not permitted"):
        parse_elicitation({"backend": "oracle", "mode": "batch"})  # batch is a key of the openai backend only
    with pytest.raises(ValueError, match="local-heuristic"):
        OpenAIElicitation(backend="openai", model="m", base_url="local-heuristic", mode="batch")
    assert OpenAIElicitation(backend="openai", model="m").mode == "online"


def test_mode_does_not_change_the_elicitor_so_rows_are_shared_between_modes():
    online = OpenAIElicitation(backend="openai", model="m", base_url="http://127.0.0.1:1/v1")
    batch = online.model_copy(update={"mode": "batch", "batch_wait_s": 0.0, "batch_retry": "online"})
    assert elicitor_fingerprint(batch) == elicitor_fingerprint(online)


def test_a_crash_after_writing_rows_before_settling_them_asks_nothing_again(store, monkeypatch):
    server = BatchServer(marker_answerer())
    write_samples(store, "crash", numbered_samples(8))
    with serving(server) as url:
        cfg = batch_cfg(url)

        def crash(self, sample_ids):
            if sample_ids:
                raise KeyboardInterrupt("killed")

        with monkeypatch.context() as m:
            m.setattr(BatchElicitation, "_mark_settled", crash)
            with pytest.raises(KeyboardInterrupt):
                elicit_dataset("crash", cfg, store)
        written = rows(store)
        assert len(written) == 8 and {r[1] for r in written} == {"ok"}
        again = elicit_dataset("crash", cfg, store)
    assert rows(store) == written and again.metadata["calls"] == 0
    assert server.created_batches == 1 and sum(server.answered.values()) == 8


def test_max_calls_caps_the_requests_a_run_submits(store):
    server = BatchServer(marker_answerer())
    write_samples(store, "cap", numbered_samples(10))
    with serving(server) as url:
        cfg = batch_cfg(url, max_calls=4)
        first = elicit_dataset("cap", cfg, store)
        assert first.metadata["budget_exhausted"] == "max_calls=4 reached"
        assert first.metadata["rows_by_status"]["ok"] == 4 and sum(server.submitted.values()) == 4
        rest = elicit_dataset("cap", cfg.model_copy(update={"max_calls": None}), store)
    assert rest.metadata["rows_by_status"]["ok"] == 10 and all(n == 1 for n in server.submitted.values())


def test_sensor_requests_a_run_for_a_finished_batch_and_for_a_submission_a_kill_left_unsent(tmp_path):
    import dagster as dg
    import yaml

    from assets.resources import DuckDBStoreResource
    from assets.sensors import uncertainty_batches_sensor
    from ual_dagster.config import load_profile
    from ual_dagster.elicitation.batch import ensure_tables
    from ual_dagster.storage import StatePaths

    server = BatchServer(marker_answerer())
    with serving(server) as url:
        path = tmp_path / "p.yaml"
        state = {"state_dir": str(tmp_path / "state")}
        path.write_text(
            yaml.safe_dump({"extends": "tiny", "storage": state, "elicitation": {"mode": "batch", "base_url": url}})
        )
        profile = load_profile(str(path))
        store = StatePaths.for_profile(profile).store()
        sensor = uncertainty_batches_sensor(profile)
        context = dg.build_sensor_context(
            instance=dg.DagsterInstance.ephemeral(), resources={"duckdb": DuckDBStoreResource(database=str(store.path))}
        )
        assert sensor.evaluate_tick(context).skip_message == "no open batches"  # no database yet

        client = openai.OpenAI(base_url=url, api_key="sk-test")
        line = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "[#1]"}]}}\n'
        file_id = client.files.create(file=("in.jsonl", line), purpose="batch").id
        batch_id = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        elicitor = elicitor_fingerprint(profile.elicitation)
        with store.connect() as con:
            ensure_tables(con)
            con.execute(
                "INSERT INTO elicitation_batches (submission_id, dataset, elicitor, base_url, requests, batch_id, status, "
                "created_at) VALUES ('s1', 'testbed_exact', ?, ?, 1, ?, 'validating', now()), "
                "('s2', 'testbed_open', ?, ?, 1, NULL, 'preparing', now())",
                [elicitor, url, batch_id, elicitor, url],
            )
        ticks = [sensor.evaluate_tick(context) for _ in range(4)]  # validating -> in_progress -> ... -> completed
    first, last = ticks[0], ticks[-1]
    assert [r.run_key for r in first.run_requests] == ["s2:preparing"]
    assert sorted(r.run_key for r in last.run_requests) == [f"{batch_id}:completed", "s2:preparing"]
    assert {r.run_key: r.asset_selection[0].to_user_string() for r in last.run_requests}[f"{batch_id}:completed"] == (
        "uncertainty_testbed_exact"
    )
