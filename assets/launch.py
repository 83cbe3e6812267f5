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

from ual_dagster.config.training import K8sLauncher, Launcher, SubprocessLauncher
from ual_dagster.storage.duckdb_store import ENGINE_JOB_ENV
from ual_dagster.train.entry_points import entry_command

SPEC_PATH_EXTRA = "spec_path"


def job_name(step: str, fingerprint: str) -> str:
    """`ual-<step>-<first 12 characters of the fingerprint>`: what `squeue` or `kubectl get pods` shows."""
    return f"ual-{step}-{fingerprint[:12]}"


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
    """Starts engine jobs through Dagster Pipes for the launcher a profile names: a local
    subprocess (PipesSubprocessClient), a Kubernetes pod (PipesK8sClient) or a Slurm job
    (PipesSlurmClient, assets/slurm.py)."""

    k8s_poll_interval_s: float = 5.0

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
        name = job_name(step, fingerprint)
        extras = {SPEC_PATH_EXTRA: str(spec_path)}
        started = time.perf_counter()
        if isinstance(launcher, SubprocessLauncher):
            invocation = dg.PipesSubprocessClient(env={ENGINE_JOB_ENV: "1"}).run(
                context=context,
                command=entry_command(module, spec_path, num_processes=num_processes),
                extras=extras,
            )
            meta = {"launcher": "subprocess", "job_name": name}
        elif isinstance(launcher, K8sLauncher):
            from dagster_k8s import PipesK8sClient

            invocation = PipesK8sClient(poll_interval=self.k8s_poll_interval_s).run(
                context=context,
                command=pod_command,
                namespace=launcher.namespace,
                env={ENGINE_JOB_ENV: "1"},
                base_pod_meta={"labels": {"app.kubernetes.io/name": "ual-dagster", "ual-dagster/job": name}},
                base_pod_spec=pod_spec,
                extras=extras,
            )
            meta = {"launcher": "k8s", "job_name": name}
        elif launcher.kind == "slurm":
            from assets.slurm import PipesSlurmClient

            python = "python" if launcher.setup else None  # setup lines may activate another environment
            job = PipesSlurmClient().run(
                context=context,
                command=entry_command(module, spec_path, python=python, num_processes=num_processes),
                launcher=launcher,
                job_name=name,
                work_dir=work_dir,
                extras=extras,
            )
            return _reported_result(job.custom_messages, name), {"launcher": "slurm", **job.metadata()}
        else:
            raise TypeError(f"launcher {launcher.kind!r} does not start engine jobs")
        meta["seconds"] = round(time.perf_counter() - started, 2)
        return _reported_result(list(invocation.get_custom_messages()), name), meta
