"""Engine jobs: where a training or an evaluation runs when its launcher is not in_process.

One rule for every launcher (docs/deployment.md, "Who writes"): the job runs a project entry
point (`ual_dagster.train.pipes_entry`, `ual_dagster.evaluation.job_entry`) with a spec
file on the shared state folder, writes only content-addressed files, and reports its
result through Dagster Pipes as a custom message. The Dagster step takes the result from
that message and is the only process that writes DuckDB.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg

from assets.resources import PipesK8sClientResource, PipesSubprocessClientResource
from assets.slurm import PipesSlurmClient
from ual_dagster.cluster import slurm
from ual_dagster.cluster.job_entry import SPEC_PATH_EXTRA
from ual_dagster.config.launchers import K8sLauncher, Launcher, SlurmLauncher, SubprocessLauncher
from ual_dagster.storage.duckdb_store import ENGINE_JOB_ENV
from ual_dagster.train.entry_points import entry_command


def _reported_result(invocation_messages: list[Any], name: str) -> dict:
    """The job's result: the last custom message it reported (the entry points report exactly one)."""
    results = [m for m in invocation_messages if isinstance(m, dict)]
    if not results:
        raise dg.Failure(
            description=f"engine job {name} ended without reporting a result through Dagster Pipes",
            allow_retries=False,
        )
    return results[-1]


class EngineJobsResource(dg.ConfigurableResource):
    """Starts engine jobs through Dagster Pipes for the launcher a profile names, with the
    Pipes client resource of its kind: a local subprocess, a Kubernetes pod or a Slurm job."""

    subprocess: PipesSubprocessClientResource
    k8s: PipesK8sClientResource
    slurm: PipesSlurmClient

    @classmethod
    def default(cls) -> "EngineJobsResource":
        """Every client with its defaults (a deployment configures them in its definitions)."""
        return cls(subprocess=PipesSubprocessClientResource(), k8s=PipesK8sClientResource(), slurm=PipesSlurmClient())

    def run(
        self,
        context: dg.AssetExecutionContext,
        launcher: Launcher,
        *,
        step: str,
        fingerprint: str,
        module: str,
        spec_path: Path,
        work_dir: Path,
        pod_spec: dict | None = None,
        pod_command: list[str] | None = None,
        num_processes: int = 1,
    ) -> tuple[dict, dict[str, Any]]:
        """Run `module` on the spec where `launcher` says; (the reported result, job metadata)."""
        name = slurm.job_name(step, fingerprint)
        extras = {SPEC_PATH_EXTRA: str(spec_path)}
        started = time.perf_counter()
        if isinstance(launcher, SlurmLauncher):
            python = "python" if launcher.setup else None  # setup lines may activate another environment
            job = self.slurm.run(
                context=context,
                command=entry_command(module, spec_path, python=python, num_processes=num_processes),
                launcher=launcher,
                job_name=name,
                work_dir=work_dir / "slurm",
                extras=extras,
            )
            return _reported_result(job.custom_messages, name), {"launcher": "slurm", **job.metadata()}
        if isinstance(launcher, SubprocessLauncher):
            invocation = self.subprocess.get_client().run(
                context=context,
                command=entry_command(module, spec_path, num_processes=num_processes),
                extras=extras,
                env={ENGINE_JOB_ENV: "1"},
            )
        elif isinstance(launcher, K8sLauncher):
            invocation = self.k8s.get_client().run(
                context=context,
                command=pod_command,
                namespace=self.k8s.pod_namespace(launcher.namespace),
                env={ENGINE_JOB_ENV: "1"},
                base_pod_meta={"labels": {"app.kubernetes.io/name": "ual-dagster", "ual-dagster/job": name}},
                base_pod_spec=pod_spec,
                extras=extras,
            )
        else:
            raise TypeError(f"launcher {launcher.kind!r} does not start engine jobs")
        meta = {"launcher": launcher.kind, "job_name": name, "seconds": round(time.perf_counter() - started, 2)}
        return _reported_result(list(invocation.get_custom_messages()), name), meta
