"""Evaluation on Kubernetes GPU pods: the step tags that give each evaluation step its own pod.

With `orchestration.executor: k8s` every Dagster step runs in a pod of its own
(dagster_k8s.k8s_job_executor); the `dagster-k8s/config` tag below makes the pods of the
evaluation and token_clustering steps GPU pods in the CUDA image, instead of the CPU run
worker, which has neither a GPU nor the memory for a 7B model.
"""

from __future__ import annotations

import json

from ual_dagster.config import Profile
from ual_dagster.config.training import K8sLauncher

K8S_CONFIG_TAG = "dagster-k8s/config"


def evaluation_pod_config(profile: Profile) -> dict:
    pod = profile.evaluation.k8s_pod
    # a k8s training launcher lends its image and Secret: the same CUDA image, the same HF_TOKEN
    training_pod = profile.training.launcher if isinstance(profile.training.launcher, K8sLauncher) else None
    image = pod.image or (training_pod.image if training_pod else None)
    secret = training_pod.secret if training_pod else None
    resources = {
        "requests": {"cpu": pod.cpu, "memory": pod.memory, "nvidia.com/gpu": str(pod.gpus)},
        "limits": {"memory": pod.memory, "nvidia.com/gpu": str(pod.gpus)},
    }
    container: dict = {"resources": resources}
    if image:
        container["image"] = image
    if secret:  # HF_TOKEN for gated base models, OPENAI_API_KEY for the judge
        container["env_from"] = [{"secret_ref": {"name": secret}}]
    spec: dict = {"container_config": container}
    if pod.node_selector:
        spec["pod_spec_config"] = {"node_selector": dict(pod.node_selector)}
    return spec


def evaluation_op_tags(profile: Profile) -> dict[str, str] | None:
    """Tags for the evaluation steps: a GPU pod under launcher k8s, none otherwise."""
    if profile.evaluation.launcher != "k8s":
        return None
    return {K8S_CONFIG_TAG: json.dumps(evaluation_pod_config(profile), sort_keys=True)}
