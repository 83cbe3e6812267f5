"""Loading the public Alpaca 5k and GSM8K train files through build_instruction_set.

Loads both data sets of examples/profiles/shared_data.yaml into a temporary DuckDB,
prints their counts (Alpaca: 5,000 rows read; GSM8K: 7,473; kept + duplicates +
rejects always add up to the rows read) and seconds, then re-loads them to show the
fingerprint is unchanged. Side by side in the same run it writes the same 1,000 GSM8K
samples row by row (executemany), the design the bulk Arrow insert replaces, and
through replace_dataset, and prints the ratio.

Usage: python benchmarks/bench_load.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from ual_dagster.config import (
    PROJECT_ROOT,  # noqa: E402
    load_profile,  # noqa: E402
)
from ual_dagster.data import build_instruction_set, read_samples  # noqa: E402
from ual_dagster.data.store import SAMPLES_DDL, replace_dataset  # noqa: E402
from ual_dagster.storage import DuckDBStore  # noqa: E402

PROFILE = PROJECT_ROOT / "examples" / "profiles" / "shared_data.yaml"
EXPECTED_ROWS = {"alpaca": 5000, "gsm8k": 7473}
ROWWISE_ROWS = 1000  # the row-by-row baseline is slow; both sides write these same rows


def main() -> None:
    profile = load_profile(str(PROFILE))
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        fingerprints = {}
        for name, expected in EXPECTED_ROWS.items():
            started = time.perf_counter()
            r = build_instruction_set(name, profile.datasets[name], store)
            seconds = time.perf_counter() - started
            assert r.n_read == expected == r.n_kept + r.n_duplicates + r.n_rejects, r
            fingerprints[name] = r.fingerprint
            print(
                f"{name}: read {r.n_read} (expected {expected}), kept {r.n_kept}, duplicates {r.n_duplicates}, "
                f"rejects {r.n_rejects} {r.reject_reasons}; {seconds:.2f} s "
                f"(read+normalise {r.metadata['read_s']:.2f} s, write {r.metadata['write_s']:.2f} s)"
            )
        for name in EXPECTED_ROWS:
            started = time.perf_counter()
            again = build_instruction_set(name, profile.datasets[name], store)
            print(
                f"{name} reload: {time.perf_counter() - started:.2f} s, "
                f"fingerprint {'unchanged' if again.fingerprint == fingerprints[name] else 'CHANGED'} ({again.fingerprint})"
            )

        subset = read_samples(store, "gsm8k")[:ROWWISE_ROWS]
        rows = [
            (s.dataset, s.sample_id, s.instruction, s.input, s.output, s.source, s.split, None, None, None)
            for s in subset
        ]
        rowwise_store, bulk_store = DuckDBStore(Path(tmp) / "rowwise.duckdb"), DuckDBStore(Path(tmp) / "bulk.duckdb")
        with rowwise_store.connect() as con:
            con.execute(SAMPLES_DDL)
            started = time.perf_counter()
            con.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)", rows)
            rowwise_s = time.perf_counter() - started
        replace_dataset(bulk_store, "warm-up", subset[:10], [])  # create the file and tables outside the timing
        started = time.perf_counter()
        replace_dataset(bulk_store, "gsm8k", subset, [])
        bulk_s = time.perf_counter() - started
        print(
            f"writing {len(rows)} GSM8K samples: replace_dataset (one transaction, Arrow bulk insert) {bulk_s:.3f} s, "
            f"row-by-row executemany {rowwise_s:.3f} s: ratio {rowwise_s / bulk_s:.1f}x"
        )


if __name__ == "__main__":
    main()
