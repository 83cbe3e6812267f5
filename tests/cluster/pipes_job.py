"""A tiny Slurm job for tests/cluster: opens Dagster Pipes, prints progress lines, sleeps, reports.

    python pipes_job.py <mode> <seconds>

mode ok: sleep, then report_custom_message({job_id, start, end, ...}); fail: exit 3;
cancel_self: scancel its own job (a real scancel of a running job), then wait to be killed.
"""

import os
import subprocess
import sys
import time

from dagster_pipes import open_dagster_pipes


def main() -> None:
    mode, seconds = sys.argv[1], float(sys.argv[2])
    job_id = os.environ["SLURM_JOB_ID"]
    with open_dagster_pipes() as pipes:
        start = time.time()
        pipes.log.info(f"pipes log line from job {job_id}")
        print(f"progress 0/2 of job {job_id} (extras: {pipes.extras})", flush=True)
        if mode == "cancel_self":
            print("about to scancel myself", flush=True)
            subprocess.run(["scancel", job_id], check=True)
            time.sleep(120)
        time.sleep(seconds)
        print("progress 1/2", flush=True)
        if mode == "fail":
            print("something broke: exiting 3", flush=True)
            sys.exit(3)
        pipes.report_custom_message(
            {
                "job_id": job_id,
                "start": start,
                "end": time.time(),
                "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                # secrets reach the job through its environment only (never through a file)
                "saw_openai_key": os.environ.get("OPENAI_API_KEY", "").startswith("sk-fake"),
                "saw_hf_token": os.environ.get("HF_TOKEN", "").startswith("hf_fake"),
            }
        )
        print("progress 2/2", flush=True)


if __name__ == "__main__":
    main()
