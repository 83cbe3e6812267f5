"""`python -m ual_dagster.elicitation.job_entry --spec job_spec.json`: local-model elicitation under Dagster Pipes.

Run by `elicitation.launcher` (subprocess, Kubernetes pod, Slurm job; docs/deployment.md). The
job journals every answer (elicitation/job.py) and reports a summary as a Pipes custom
message; the Dagster step commits the journal to DuckDB. It never opens DuckDB for writing.
"""

from __future__ import annotations

import argparse

from ual_dagster.elicitation.job import ElicitationJobSpec, run_elicitation_job
from ual_dagster.storage.duckdb_store import forbid_duckdb_writes

SPEC_PATH_EXTRA = "spec_path"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="path of an ElicitationJobSpec JSON file (default: the Pipes extra 'spec_path')")
    args = parser.parse_args(argv)
    forbid_duckdb_writes()

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        extras = dict(pipes.extras) if isinstance(pipes.extras, dict) else {}
        spec_path = args.spec or extras.get(SPEC_PATH_EXTRA)
        if not spec_path:
            raise SystemExit(f"job_entry: no spec: pass --spec or the Pipes extra {SPEC_PATH_EXTRA!r}")
        pipes.report_custom_message(run_elicitation_job(ElicitationJobSpec.load(spec_path), log=pipes.log.info))


if __name__ == "__main__":
    main()
