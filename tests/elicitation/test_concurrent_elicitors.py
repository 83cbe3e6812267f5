"""Two elicitors on one data set at once (two threads here; two processes or two Dagster
instances take the same file lock) never ask for the same row: every sample is paid once."""

from __future__ import annotations

import threading

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.fault_server import FaultMix
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.elicitation import elicit_dataset


def test_two_concurrent_elicitors_pay_each_sample_once(store, fault_server):
    server, url = fault_server
    server.set_mix(FaultMix(latency_s=0.02))
    samples = numbered_samples(120)
    write_samples(store, "shared", samples)
    cfg = openai_cfg(url, concurrency=8)
    results, logs, errors = [], [], []

    def elicit(name: str) -> None:
        try:
            results.append(elicit_dataset("shared", cfg, store, log=lambda m: logs.append(f"{name}: {m}")))
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=elicit, args=(f"elicitor{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2
    assert sorted(server.calls) == list(range(120))
    assert max(server.calls.values()) == 1, "a sample was asked twice"
    # one did all the work; the other waited for it, then found every row cached
    assert sorted(r.metadata["to_elicit"] for r in results) == [0, 120]
    assert all(r.metadata["rows_by_status"]["ok"] == 120 for r in results)
    assert results[0].fingerprint == results[1].fingerprint
