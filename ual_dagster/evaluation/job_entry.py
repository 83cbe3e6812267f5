"""`python -m ual_dagster.evaluation.job_entry --spec job_spec.json`: one evaluation job under Dagster Pipes.

Run by the evaluation launchers (subprocess, Kubernetes pod, Slurm job; docs/deployment.md).
The job reads files, writes files (caches and its result JSON), and reports the result as a
Pipes custom message, which is what the Dagster step uses (ual_dagster/cluster/job_entry.py).
"""

from __future__ import annotations

from ual_dagster.cluster.job_entry import run_job_entry
from ual_dagster.evaluation.jobs import EvalJobSpec, run_eval_job


def main(argv: list[str] | None = None) -> None:
    run_job_entry(
        __doc__.splitlines()[0], lambda spec_path, log: run_eval_job(EvalJobSpec.load(spec_path), log=log), argv
    )


if __name__ == "__main__":
    main()
