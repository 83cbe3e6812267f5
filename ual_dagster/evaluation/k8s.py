"""Evaluation on Kubernetes GPU pods, dispatched through Dagster Pipes from the run worker.

An evaluation (or token_clustering) step under a k8s launcher starts one GPU pod with
dagster_k8s.PipesK8sClient, the same way a training step does: the pod spec comes from
ual_dagster.train.k8s.k8s_pod_spec(launcher, state_dir, role="eval"), so it gets the GPU
toleration and node selector, the shared state volume with HF_HOME on it, and the Secret
by name. The pod runs `python -m ual_dagster.evaluation.job_entry`, writes only
content-addressed files under the state folder and reports through Pipes; the step
process writes DuckDB. No step needs a pod of its own (`k8s_job_executor`) for this.
"""

from __future__ import annotations

from pathlib import PurePath

from ual_dagster.config import Profile
from ual_dagster.config.training import K8sLauncher
from ual_dagster.train.k8s import k8s_pod_spec, pod_command


def evaluation_launcher(profile: Profile) -> K8sLauncher | None:
    """The K8sLauncher evaluation pods are built from; None when evaluation does not run on Kubernetes."""
    launcher = profile.evaluation.launcher
    return launcher if isinstance(launcher, K8sLauncher) else None


def evaluation_pod_spec(launcher: K8sLauncher, state_dir: str | PurePath) -> dict:
    """The V1PodSpec dict of one evaluation pod (PipesK8sClient.run's base_pod_spec)."""
    return k8s_pod_spec(launcher, state_dir, role="eval")


def evaluation_pod_command(launcher: K8sLauncher) -> list[str]:
    """`python -m ual_dagster.evaluation.job_entry` (PipesK8sClient.run's command)."""
    return pod_command(launcher, role="eval")
