"""Elicitor validity and throughput on the testbed: the bundled heuristic vs SmolLM2 (hf_local, HTTP).

Writes the first N of the tiny profile's testbed train samples per kind, in a fixed shuffled order (seed 0),
into its own DuckDB file, elicits them with each elicitor through the ordinary
`elicit_dataset` (row cache included: a re-run only elicits what is missing), and prints
throughput and `elicitor_validity` as Markdown. Numbers go to docs/elicitors.md.

    PYTHONPATH=. python benchmarks/elicitor_validity.py --per-kind 150 \
        --elicitors heuristic smollm2_hf_local smollm2_http smollm2_http_verbalized

Elicitors: heuristic = tiny's (openai client -> loopback heuristic server);
smollm2_hf_local = examples/profiles/smollm2.yaml; smollm2_http = smollm2_http.yaml
(logprobs with answer prefill); smollm2_http_verbalized = the same server, the written
answer without prefill (what a plain chat client gets from this model).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from ual_dagster.config import load_profile, resolve_path
from ual_dagster.data.store import replace_dataset
from ual_dagster.data.testbed import generate_testbed
from ual_dagster.elicitation import elicit_dataset
from ual_dagster.elicitation.validity import elicitor_validity, format_validity
from ual_dagster.storage import DuckDBStore

DATASETS = ("testbed_exact", "testbed_open")


def elicitor_configs() -> dict:
    heuristic = load_profile("tiny").elicitation
    hf_local = load_profile("examples/profiles/smollm2.yaml").elicitation
    http = load_profile("examples/profiles/smollm2_http.yaml").elicitation
    verbalized = http.model_copy(update={"method": "verbalized", "answer_prefill": False, "max_tokens": 24})
    return {
        "heuristic": heuristic,
        "smollm2_hf_local": hf_local,
        "smollm2_http": http,
        "smollm2_http_verbalized": verbalized,
    }


def write_subset(store: DuckDBStore, per_kind: int) -> None:
    profile = load_profile("tiny")
    for name in DATASETS:
        train = [s for s in generate_testbed(profile.datasets[name].testbed, name) if s.split == "train"]
        random.Random(0).shuffle(train)  # a fixed order: a larger --per-kind keeps the smaller run's samples (cached)
        replace_dataset(store, name, train[:per_kind], [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=150, help="samples per testbed kind")
    parser.add_argument("--store", default=".ual_state/elicitor_validity/ual.duckdb")
    parser.add_argument("--elicitors", nargs="+", default=["heuristic", "smollm2_hf_local", "smollm2_http"])
    args = parser.parse_args()
    configs = elicitor_configs()
    unknown = sorted(set(args.elicitors) - set(configs))
    if unknown:
        sys.exit(f"unknown elicitor(s) {unknown}; allowed: {sorted(configs)}")
    store = DuckDBStore(resolve_path(args.store))
    write_subset(store, args.per_kind)

    throughput = {}
    for name in args.elicitors:
        cfg = configs[name]
        started, elicited, statuses = time.monotonic(), 0, {"ok": 0, "unparseable": 0, "failed": 0}
        for dataset in DATASETS:
            result = elicit_dataset(dataset, cfg, store, log=lambda m: print(f"  [{name}] {m}", flush=True))
            elicited += result.metadata["to_elicit"]
            for status, count in result.metadata["rows_by_status"].items():
                statuses[status] += count
        seconds = time.monotonic() - started
        throughput[name] = {
            "elicitor": result.elicitor,
            "elicited_now": elicited,
            "seconds": round(seconds, 1),
            "samples_per_s": round(elicited / seconds, 3) if elicited else None,
            "rows_by_status": statuses,
        }
        print(json.dumps({name: throughput[name]}), flush=True)

    table = elicitor_validity(store, list(DATASETS))
    table = table[table["elicitor"].isin([t["elicitor"] for t in throughput.values()])]
    print("\n" + format_validity(table))
    out = Path(store.path).with_name("elicitor_validity.json")
    out.write_text(json.dumps({"throughput": throughput, "validity": table.to_dict(orient="records")}, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
