"""`python -m ual_dagster.evaluation.job_entry --spec job_spec.json`: one evaluation job under Dagster Pipes.

Run by the evaluation launchers (subprocess, Kubernetes pod, Slurm job; docs/deployment.md).
The spec (a jobs.EvalJobSpec) comes from `--spec`, else from the Pipes extra "spec_path".
The job reads files, writes files (caches and its result JSON), and reports the result
as a Pipes custom message, which is what the Dagster step uses; outside Dagster it is a
plain script that writes the result file. It never opens DuckDB for writing.
"""

from __future__ import annotations

import argparse

from ual_dagster.evaluation.jobs import EvalJobSpec, run_eval_job
from ual_dagster.storage.duckdb_store import forbid_duckdb_writes

SPEC_PATH_EXTRA = "spec_path"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="path of an EvalJobSpec JSON file (default: the Pipes extra 'spec_path')")
    args = parser.parse_args(argv)
    forbid_duckdb_writes()

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        # Outside Dagster `pipes` is a MagicMock whose extras are not a dict.
        extras = dict(pipes.extras) if isinstance(pipes.extras, dict) else {}
        spec_path = args.spec or extras.get(SPEC_PATH_EXTRA)
        if not spec_path:
            raise SystemExit(f"job_entry: no spec: pass --spec or the Pipes extra {SPEC_PATH_EXTRA!r}")
        result = run_eval_job(EvalJobSpec.load(spec_path), log=pipes.log.info)
        pipes.report_custom_message(result)


if __name__ == "__main__":
    main()
