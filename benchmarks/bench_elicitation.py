"""Elicitation throughput and cache speed, measured side by side in one run.

1. A loopback OpenAI-compatible server (a separate process, a bare ASGI app) answers every
   request after a fixed latency L (asyncio.sleep). With concurrency C the ideal
   throughput is C / L; the ratio measured / ideal is printed (target >= 0.8).
2. A re-run over 50,000 samples that all have an ok row: calls made (target 0) and seconds
   (target: a few).

Run: .venv/bin/python benchmarks/bench_elicitation.py [--latency 0.2] [--cached 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ual_dagster.loopback import chat_completion_body  # after sys.path.insert: the checkout's package

ANSWER = json.dumps(
    chat_completion_body('{"uncertainty": 5}', "bench", prompt_tokens=100, completion_tokens=5, completion_id="b")
).encode()


# A content-length (as real servers send) avoids chunked encoding's extra writes.
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


def fixed_latency_app(latency_s: float):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:  # drain the request body
            more = (await receive()).get("more_body", False)
        await asyncio.sleep(latency_s)
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})

    return app


def serve(latency_s: float, port: int) -> None:
    import uvicorn

    uvicorn.run(
        fixed_latency_app(latency_s),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_samples(store, dataset: str, n: int) -> list[str]:
    import pyarrow as pa

    ids = [f"{dataset}-{i:06d}" for i in range(n)]
    table = pa.table(
        {
            "dataset": [dataset] * n,
            "sample_id": ids,
            "instruction": [f"Write a sentence about topic {i}." for i in range(n)],
            "input": [""] * n,
            "output": ["A sentence."] * n,
            "source": ["bench"] * n,
            "split": ["train"] * n,
            "family": [None] * n,
            "intrinsic_uncertainty": pa.array([None] * n, pa.float64()),
            "valid_answers": [None] * n,
        }
    )
    with store.connect() as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS samples (dataset VARCHAR, sample_id VARCHAR, instruction VARCHAR, input VARCHAR, "
            "output VARCHAR, source VARCHAR, split VARCHAR, family VARCHAR, intrinsic_uncertainty DOUBLE, "
            "valid_answers VARCHAR, loaded_at TIMESTAMP)"
        )
        con.register("bench_samples", table)
        con.execute("INSERT INTO samples SELECT *, current_timestamp FROM bench_samples")
    return ids


def throughput(latency_s: float, concurrency: int, workdir: Path) -> None:
    from ual_dagster.config.elicitation import OpenAIElicitation
    from ual_dagster.elicitation import elicit_dataset
    from ual_dagster.storage import DuckDBStore

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(latency_s), "--port", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        ideal = concurrency / latency_s
        n = int(ideal * 8)  # about 8 s of work at the ideal rate
        store = DuckDBStore(workdir / f"tp_{concurrency}.duckdb")
        write_samples(store, "tp", n)
        cfg = OpenAIElicitation(
            backend="openai",
            model="bench",
            base_url=f"http://127.0.0.1:{port}/v1",
            concurrency=concurrency,
            timeout_s=30,
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        result = elicit_dataset("tp", cfg, store)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert result.metadata["rows_by_status"]["ok"] == n, result.metadata
        rate = n / seconds
        print(
            f"throughput C={concurrency} L={latency_s}s: {n} samples in {seconds:.2f}s = {rate:.1f}/s; "
            f"ideal C/L = {ideal:.0f}/s; ratio = {rate / ideal:.3f} (target >= 0.8); "
            f"client CPU {1000 * cpu / n:.2f} ms/request, p50 latency {result.metadata['latency_p50_s']}s",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait()


def cached_rerun(n: int, workdir: Path) -> None:
    from ual_dagster.config.elicitation import OpenAIElicitation
    from ual_dagster.elicitation import elicit_dataset
    from ual_dagster.elicitation.elicitor import elicitor_fingerprint
    from ual_dagster.elicitation.table import UncertaintyRow, utc_now, write_rows
    from ual_dagster.storage import DuckDBStore

    store = DuckDBStore(workdir / "cached.duckdb")
    ids = write_samples(store, "cached", n)
    # The port is never contacted: everything is cached.
    cfg = OpenAIElicitation(backend="openai", model="bench", base_url="http://127.0.0.1:9/v1")
    elicitor, now = elicitor_fingerprint(cfg), utc_now()
    write_rows(
        store,
        [
            UncertaintyRow(i, "cached", elicitor, (k % 11) / 10, "ok", '{"uncertainty": 1}', None, 100, 5, 0.1, 1, now)
            for k, i in enumerate(ids)
        ],
        cutoff=None,
    )
    started = time.perf_counter()
    result = elicit_dataset("cached", cfg, store)
    seconds = time.perf_counter() - started
    print(
        f"cached re-run over {n} samples: calls = {result.metadata['calls']} (target 0), "
        f"cache_hits = {result.metadata['cache_hits']}, {seconds:.2f}s (target: a few seconds)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--cached", type=int, default=50_000)
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        for c in args.concurrency:
            throughput(args.latency, c, Path(tmp))
        cached_rerun(args.cached, Path(tmp))


if __name__ == "__main__":
    main()
