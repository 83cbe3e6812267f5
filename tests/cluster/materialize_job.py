"""Materialise one asset that runs tests/cluster/pipes_job.py through PipesSlurmClient, in its own process.

    python materialize_job.py <job name> <work dir> <mode> <seconds>

The Slurm tests kill this process (-9, or SIGTERM as Dagster's Terminate does) while its job runs.
"""

import sys
from pathlib import Path

import dagster as dg

from assets.slurm import PipesSlurmClient
from ual_dagster.config.launchers import SlurmLauncher

JOB = Path(__file__).with_name("pipes_job.py")


def main() -> None:
    name, work_dir, mode, seconds = sys.argv[1:5]

    @dg.asset(name="slurm_job")
    def slurm_job(context: dg.AssetExecutionContext, slurm_client: PipesSlurmClient) -> None:
        print(f"run id {context.run_id}", flush=True)
        result = slurm_client.run(
            context=context,
            command=[sys.executable, str(JOB), mode, seconds],
            launcher=SlurmLauncher(poll_interval_s=0.5),
            job_name=name,
            work_dir=Path(work_dir),
        )
        print(f"result {result.job_id} {result.state}", flush=True)

    dg.materialize([slurm_job], resources={"slurm_client": PipesSlurmClient()})


if __name__ == "__main__":
    main()
