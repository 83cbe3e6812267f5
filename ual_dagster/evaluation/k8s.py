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
    """The K8sLauncher evaluation pods are built from; None when evaluation does not run on Kubernetes.

    `evaluation.launcher` as a K8sLauncher is used as it is. The older form
    (`evaluation.launcher: k8s` with `evaluation.k8s_pod`) borrows the image, volume,
    namespace, Secret, service account and /dev/shm size of a k8s training launcher.
    """
    launcher = profile.evaluation.launcher
    if isinstance(launcher, K8sLauncher):
        return launcher
    if launcher != "k8s":
        return None
    pod = profile.evaluation.k8s_pod
    training = profile.training.launcher
    if not isinstance(training, K8sLauncher):
        raise ValueError(
            "evaluation.launcher 'k8s' borrows its image and state volume from training.launcher, "
            f"which is {training.kind!r}: give evaluation a launcher of kind k8s of its own"
        )
    return K8sLauncher(
        image=pod.image or training.image,
        state_pvc=training.state_pvc,
        namespace=training.namespace,
        gpus=pod.gpus,
        distributed="none",
        secret=training.secret,
        cpu=pod.cpu,
        memory=pod.memory,
        shm=training.shm,
        node_selector=dict(pod.node_selector),
        service_account=training.service_account,
    )


def evaluation_pod_spec(launcher: K8sLauncher, state_dir: str | PurePath) -> dict:
    """The V1PodSpec dict of one evaluation pod (PipesK8sClient.run's base_pod_spec)."""
    return k8s_pod_spec(launcher, state_dir, role="eval")


def evaluation_pod_command(launcher: K8sLauncher) -> list[str]:
    """`python -m ual_dagster.evaluation.job_entry` (PipesK8sClient.run's command)."""
    return pod_command(launcher, role="eval")


def evaluation_op_tags(profile: Profile) -> None:
    """No step tags any more: evaluation pods are started through Pipes, not by k8s_job_executor.

    Kept only while assets/evaluation.py still passes `op_tags=evaluation_op_tags(profile)`;
    it always returns None. Remove it together with that call.
    """
    del profile
    return None
