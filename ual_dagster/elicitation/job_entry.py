"""`python -m ual_dagster.elicitation.job_entry --spec job_spec.json`: local-model elicitation under Dagster Pipes.

Run by `elicitation.launcher` (subprocess, Kubernetes pod, Slurm job; docs/deployment.md). The
job journals every answer (elicitation/job.py) and reports a summary as a Pipes custom
message; the Dagster step commits the journal to DuckDB (ual_dagster/cluster/job_entry.py).
"""

from __future__ import annotations

from ual_dagster.cluster.job_entry import run_job_entry
from ual_dagster.elicitation.job import ElicitationJobSpec, run_elicitation_job


def main(argv: list[str] | None = None) -> None:
    run_job_entry(
        __doc__.splitlines()[0],
        lambda spec_path, log: run_elicitation_job(ElicitationJobSpec.load(spec_path), log=log),
        argv,
    )


if __name__ == "__main__":
    main()
