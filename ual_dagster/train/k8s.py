"""The Kubernetes pods that train a LoRA checkpoint or evaluate one (launcher 'k8s').

The step passes `k8s_pod_spec(launcher, state_dir, role=...)` as `base_pod_spec` and
`pod_command(launcher, role=...)` as `command` to dagster_k8s.PipesK8sClient.run, from the
run worker; what the job needs (the training spec, the evaluation request) travels in the
Pipes extras or in a file on the shared volume. Training and evaluation pods are built by
the same function, so both get the same GPU scheduling, shared state and secrets:

- the PVC `launcher.state_pvc` mounted at the same absolute path the code location uses
  (the profile's storage.state_dir), so every artifact path in a spec (base model,
  examples file, output directory) means the same file in both places;
- HF_HOME on that volume (`<state>/hf_home`), so the hub's base model is downloaded once
  for the cluster, not once per pod (and once per pod, by its main process only: see
  ual_dagster.train.trainer.resolve_base_model);
- `nvidia.com/gpu` limits, the GPU-node taint tolerated, the launcher's node selector;
- the launcher's Secret by name through `envFrom` (HF_TOKEN, the judge's key): no value
  is ever copied into the spec;
- a memory-backed /dev/shm, PYTHONUNBUFFERED (Pipes messages and logs arrive as written),
  and HF_HUB_ENABLE_HF_TRANSFER=0 (the image may carry hf_transfer, whose parallel
  writes are a poor fit for a network file system and which gives no resumable download).

Plain dicts with the Kubernetes API's camelCase keys, so they can be read next to
`kubectl get pod -o yaml`; tests/ops/test_k8s_pod_spec.py checks them against the
`kubernetes` client's V1PodSpec model.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath
from typing import Literal

from ual_dagster.config.training import K8sLauncher
from ual_dagster.train.entry_points import ELICIT_ENTRY, EVAL_ENTRY, TRAIN_ENTRY

Role = Literal["train", "eval", "elicit"]

STATE_VOLUME = "ual-state"
SHM_VOLUME = "dshm"
GPU_RESOURCE = "nvidia.com/gpu"
HF_HOME_DIR = "hf_home"
ENTRY_MODULES: dict[str, str] = {"train": TRAIN_ENTRY, "eval": EVAL_ENTRY, "elicit": ELICIT_ENTRY}
ENTRY_MODULE = ENTRY_MODULES["train"]
EVAL_ENTRY_MODULE = ENTRY_MODULES["eval"]
CONTAINER_NAMES: dict[str, str] = {"train": "train", "eval": "eval", "elicit": "elicit"}
CONTAINER_NAME = CONTAINER_NAMES["train"]


def _check_role(role: str) -> None:
    if role not in ENTRY_MODULES:
        raise ValueError(f"role must be one of {sorted(ENTRY_MODULES)}, got {role!r}")


def pod_command(launcher: K8sLauncher, *, role: Role = "train") -> list[str]:
    """The container command: the role's entry module, under `accelerate launch` for distributed training.

    Evaluation is one process on one GPU set (lm-eval and generation do not shard here), so
    an evaluation launcher with `distributed: accelerate` is an error rather than four
    processes each evaluating everything.
    """
    _check_role(role)
    entry = ENTRY_MODULES[role]
    if launcher.distributed == "none":
        return ["python", "-m", entry]
    if role == "eval":
        raise ValueError("evaluation runs in one process: its launcher must have distributed: none, got 'accelerate'")
    command = ["accelerate", "launch", "--num_machines", "1", "--num_processes", str(max(launcher.gpus, 1))]
    if launcher.gpus > 1:
        command.append("--multi_gpu")
    if launcher.accelerate_config:
        command += ["--config_file", launcher.accelerate_config]
    return command + ["-m", entry]


def pod_env(state_dir: str | PurePath) -> list[dict[str, str]]:
    """The environment every job pod gets (values only, none of them secret)."""
    state = PurePosixPath(state_dir)
    return [
        {"name": "HF_HOME", "value": str(state / HF_HOME_DIR)},
        {"name": "HF_HUB_ENABLE_HF_TRANSFER", "value": "0"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def k8s_pod_spec(launcher: K8sLauncher, state_dir: str | PurePath, *, role: Role = "train") -> dict:
    """A V1PodSpec (as a camelCase dict) for one training (role 'train') or evaluation ('eval') job.

    `state_dir` is the resolved storage.state_dir of the profile the definitions were
    built from (StatePaths.for_profile(profile).state_dir): the claim `launcher.state_pvc`
    is mounted there. GPUs are requested as `nvidia.com/gpu` limits (Kubernetes schedules
    extended resources by their limit) and the usual GPU-node taint is tolerated. The
    command is not part of the spec: pass `pod_command(launcher, role=role)` to
    PipesK8sClient.run (it sets the first container's command).
    """
    _check_role(role)
    state = PurePosixPath(state_dir)
    if not state.is_absolute():
        raise ValueError(f"state_dir must be an absolute path (it is mounted in the pod), got {str(state_dir)!r}")

    limits: dict[str, str] = {"memory": launcher.memory}
    if launcher.gpus > 0:
        limits[GPU_RESOURCE] = str(launcher.gpus)
    container: dict = {
        "name": CONTAINER_NAMES[role],
        "image": launcher.image,
        "resources": {"requests": {"cpu": launcher.cpu, "memory": launcher.memory}, "limits": limits},
        "env": pod_env(state),
        "volumeMounts": [
            {"name": STATE_VOLUME, "mountPath": str(state)},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ],
    }
    if launcher.secret:  # by name: the values stay in the cluster's Secret
        container["envFrom"] = [{"secretRef": {"name": launcher.secret}}]

    spec: dict = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": STATE_VOLUME, "persistentVolumeClaim": {"claimName": launcher.state_pvc}},
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": launcher.shm}},
        ],
    }
    if launcher.gpus > 0:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    if launcher.node_selector:
        spec["nodeSelector"] = dict(launcher.node_selector)
    if launcher.service_account:
        spec["serviceAccountName"] = launcher.service_account
    return spec
