"""The openai backend against a real loopback HTTP server that injects faults."""

from __future__ import annotations

import pytest

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.fault_server import SCORE_OF, FaultMix
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.elicitation import elicit_dataset
from ual_dagster.elicitation.elicitor import elicitor_fingerprint


def rows_of(store, elicitor):
    with store.connect() as con:
        return con.execute(
            "SELECT sample_id, status, uncertainty, attempts, raw_answer, error, created_at FROM uncertainty "
            "WHERE elicitor = ? ORDER BY sample_id",
            [elicitor],
        ).fetchall()


@pytest.mark.slow
def test_mixed_faults_every_sample_ends_ok_once_and_rerun_makes_no_call(store, fault_server):
    server, url = fault_server
    server.set_mix(FaultMix(rate_limit=0.10, server_error=0.08, hang=0.04, garbage=0.08, hang_s=1.0, seed=7))
    samples = numbered_samples(2000)
    write_samples(store, "big", samples)
    cfg = openai_cfg(url, timeout_s=0.4, concurrency=64)

    result = elicit_dataset("big", cfg, store)

    rows = rows_of(store, result.elicitor)
    assert len(rows) == 2000 and len({r[0] for r in rows}) == 2000
    assert {r[1] for r in rows} == {"ok"}
    expected = {s.sample_id: SCORE_OF(i) / 10 for i, s in enumerate(samples)}
    assert all(abs(r[2] - expected[r[0]]) < 1e-12 for r in rows)
    # Every request the server saw is accounted for in some row's attempts. The client counts a request
    # when it sends it, the server once it has read the body: a request the client gave up on (0.4 s
    # timeout) before a busy server read it is counted by the client only, never the reverse.
    attempts, retries = sum(r[3] for r in rows), result.metadata["retries"]
    assert attempts == result.metadata["calls"]
    assert 0 <= attempts - server.total_calls <= retries.get("timeout", 0) + retries.get("connection", 0)
    assert all(server.outcomes[k] > 0 for k in ("429", "500", "hang", "garbage"))
    assert result.metadata["retries"]["429"] > 0 and result.metadata["retries"]["timeout"] > 0
    assert result.metadata["coverage"] == 1.0

    calls_before = server.total_calls
    again = elicit_dataset("big", cfg, store)
    assert server.total_calls == calls_before
    assert again.metadata["calls"] == 0 and again.metadata["cache_hits"] == 2000
    assert again.fingerprint == result.fingerprint


def test_retry_after_is_honoured(store, fault_server):
    server, url = fault_server
    server.set_mix(FaultMix(rate_limit=0.5, retry_after_header=("retry-after", "1"), seed=3))
    write_samples(store, "ra", numbered_samples(6))
    elicit_dataset("ra", openai_cfg(url), store)
    # After a 429 (Retry-After: 1) the next call for that sample comes at least 1 s later.
    gaps = [b - a for times in server.call_times.values() for a, b in zip(times, times[1:])]
    assert gaps, "the seeded mix should have rate-limited at least one sample"
    assert min(gaps) >= 1.0


def test_unparseable_answers_are_kept_then_replaced_by_a_later_success(store, fault_server):
    server, url = fault_server
    server.set_mix(FaultMix(garbage=1.0))
    samples = numbered_samples(5)
    write_samples(store, "garb", samples)
    cfg = openai_cfg(url, max_parse_retries=2)

    first = elicit_dataset("garb", cfg, store)
    rows = rows_of(store, first.elicitor)
    assert [r[1] for r in rows] == ["unparseable"] * 5
    assert all(r[3] == 3 and r[4] == "Sorry, I would rather not say." for r in rows)
    assert first.metadata["run_unparseable"] == 5 and first.metadata["coverage"] == 0.0

    server.set_mix(FaultMix())
    second = elicit_dataset("garb", cfg, store)
    rows = rows_of(store, second.elicitor)
    assert len(rows) == 5 and [r[1] for r in rows] == ["ok"] * 5
    assert second.metadata["calls"] == 5


def test_server_errors_after_retries_are_failed_rows_retried_next_run(store, fault_server):
    server, url = fault_server
    server.set_mix(FaultMix(server_error=1.0))
    write_samples(store, "err", numbered_samples(4))
    cfg = openai_cfg(url, max_retries=2)

    first = elicit_dataset("err", cfg, store)
    rows = rows_of(store, first.elicitor)
    assert [r[1] for r in rows] == ["failed"] * 4
    assert all(r[3] == 3 and "HTTP 500" in r[5] for r in rows)
    assert server.total_calls == 12

    server.set_mix(FaultMix())
    elicit_dataset("err", cfg, store)
    assert [r[1] for r in rows_of(store, first.elicitor)] == ["ok"] * 4
    assert server.total_calls == 16


def test_editing_one_sample_reelicits_exactly_that_one(store, fault_server):
    server, url = fault_server
    samples = numbered_samples(30)
    write_samples(store, "edit", samples)
    cfg = openai_cfg(url)
    elicit_dataset("edit", cfg, store)
    before = dict(server.calls)

    edited = list(samples)
    edited[11] = type(samples[11])(instruction=samples[11].instruction + " Be brief.", output=samples[11].output)
    write_samples(store, "edit", edited)
    result = elicit_dataset("edit", cfg, store)

    changed = {i: server.calls[i] - before.get(i, 0) for i in server.calls if server.calls[i] != before.get(i, 0)}
    assert changed == {11: 1}
    assert result.metadata["calls"] == 1 and result.metadata["cache_hits"] == 29


def test_budget_stops_cleanly_and_keeps_what_was_paid_for(store, fault_server):
    server, url = fault_server
    write_samples(store, "budget", numbered_samples(200))
    cfg = openai_cfg(url, max_calls=50)

    result = elicit_dataset("budget", cfg, store)
    assert server.total_calls == 50
    assert result.metadata["budget_exhausted"] == "max_calls=50 reached"
    assert result.metadata["rows_by_status"]["ok"] == 50

    resumed = elicit_dataset("budget", cfg.model_copy(update={"max_calls": None}), store)
    assert resumed.metadata["cache_hits"] == 50 and resumed.metadata["calls"] == 150
    assert server.total_calls == 200


def test_fatal_status_aborts_the_run(store, fault_server, monkeypatch):
    _, url = fault_server
    write_samples(store, "fatal", numbered_samples(3))
    cfg = openai_cfg(url.replace("/v1", "/nowhere"))
    from ual_dagster.elicitation.backends.openai_api import FatalAPIError

    with pytest.raises(FatalAPIError, match="HTTP 404"):
        elicit_dataset("fatal", cfg, store)


def test_elicitor_fingerprint_separates_rows(store, fault_server):
    _, url = fault_server
    write_samples(store, "fp", numbered_samples(3))
    a = elicit_dataset("fp", openai_cfg(url), store)
    b = elicit_dataset("fp", openai_cfg(url, temperature=0.7), store)
    assert a.elicitor != b.elicitor
    assert b.metadata["calls"] == 3
    assert b.metadata["drift_vs_elicitor"] == a.elicitor and b.metadata["drift_pairs"] == 3
    assert elicitor_fingerprint(openai_cfg(url)) == a.elicitor
