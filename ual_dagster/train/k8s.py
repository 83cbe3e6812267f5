"""The Kubernetes pod that trains one LoRA checkpoint (launcher 'k8s').

The asset passes `k8s_pod_spec(...)` as `base_pod_spec` and `pod_command(...)` as
`command` to dagster_k8s.PipesK8sClient.run; the training spec itself travels in the
Pipes extras. The pod mounts the volume that holds the profile's state folder at the
same absolute path the code location uses, so every artifact path in the spec (base
model, examples file, output directory) means the same file in both places, and the
finished adapter is on the shared volume when the pod exits. Plain dicts with the
Kubernetes API's camelCase keys, so they can be read next to `kubectl get pod -o yaml`.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ual_dagster.config import active_profile, resolve_path
from ual_dagster.config.training import TrainingConfig

CONTAINER_NAME = "train"
STATE_VOLUME = "ual-state"
SHM_VOLUME = "dshm"
ENTRY_MODULE = "ual_dagster.train.pipes_entry"
GPU_RESOURCE = "nvidia.com/gpu"


def pod_command(cfg: TrainingConfig) -> list[str]:
    """The container command: the Pipes entry, under `accelerate launch` for multi-GPU."""
    if cfg.distributed == "none":
        return ["python", "-m", ENTRY_MODULE]
    command = ["accelerate", "launch", "--num_machines", "1", "--num_processes", str(max(cfg.k8s_gpus, 1))]
    if cfg.k8s_gpus > 1:
        command.append("--multi_gpu")
    if cfg.accelerate_config:
        command += ["--config_file", cfg.accelerate_config]
    return command + ["-m", ENTRY_MODULE]


def k8s_pod_spec(cfg: TrainingConfig, state_dir: str | PurePosixPath | None = None) -> dict:
    """A V1PodSpec (as a dict) for one training run.

    `state_dir` is the profile's resolved storage.state_dir (default: the active
    profile's): the claim `cfg.k8s_state_pvc` is mounted there. GPUs are requested as
    `nvidia.com/gpu` limits (Kubernetes schedules extended resources by their limit)
    and the usual GPU-node taint is tolerated.
    """
    if state_dir is None:
        state_dir = str(resolve_path(active_profile().storage.state_dir))
    if not cfg.k8s_image or not cfg.k8s_state_pvc:
        raise ValueError(
            "training.k8s_image and training.k8s_state_pvc must be set to train on Kubernetes "
            f"(got k8s_image={cfg.k8s_image!r}, k8s_state_pvc={cfg.k8s_state_pvc!r})"
        )
    state = PurePosixPath(state_dir)
    if not state.is_absolute():
        raise ValueError(f"state_dir must be an absolute path (it is mounted in the pod), got {str(state_dir)!r}")

    limits: dict[str, str] = {"memory": cfg.k8s_memory}
    if cfg.k8s_gpus > 0:
        limits[GPU_RESOURCE] = str(cfg.k8s_gpus)
    container: dict = {
        "name": CONTAINER_NAME,
        "image": cfg.k8s_image,
        "resources": {"requests": {"cpu": cfg.k8s_cpu, "memory": cfg.k8s_memory}, "limits": limits},
        "env": [
            # Hub downloads (a 7B base model) land once on the shared volume, not per pod.
            {"name": "HF_HOME", "value": str(state / "hf_home")},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "volumeMounts": [
            {"name": STATE_VOLUME, "mountPath": str(state)},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ],
    }
    if cfg.k8s_secret:
        container["envFrom"] = [{"secretRef": {"name": cfg.k8s_secret}}]

    spec: dict = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": STATE_VOLUME, "persistentVolumeClaim": {"claimName": cfg.k8s_state_pvc}},
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": cfg.k8s_shm}},
        ],
    }
    if cfg.k8s_gpus > 0:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    if cfg.k8s_node_selector:
        spec["nodeSelector"] = dict(cfg.k8s_node_selector)
    if cfg.k8s_service_account:
        spec["serviceAccountName"] = cfg.k8s_service_account
    return spec
