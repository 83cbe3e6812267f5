"""The Kubernetes pod that trains one LoRA checkpoint (launcher 'k8s').

The asset passes `k8s_pod_spec(training.launcher, state_dir)` as `base_pod_spec` and
`pod_command(training.launcher)` as `command` to dagster_k8s.PipesK8sClient.run; the
training spec itself travels in the Pipes extras. The pod mounts the volume that holds the profile's state folder at the
same absolute path the code location uses, so every artifact path in the spec (base
model, examples file, output directory) means the same file in both places, and the
finished adapter is on the shared volume when the pod exits. Plain dicts with the
Kubernetes API's camelCase keys, so they can be read next to `kubectl get pod -o yaml`.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath

from ual_dagster.config.training import K8sLauncher

CONTAINER_NAME = "train"
STATE_VOLUME = "ual-state"
SHM_VOLUME = "dshm"
ENTRY_MODULE = "ual_dagster.train.pipes_entry"
GPU_RESOURCE = "nvidia.com/gpu"


def pod_command(launcher: K8sLauncher) -> list[str]:
    """The container command: the Pipes entry, under `accelerate launch` for multi-GPU."""
    if launcher.distributed == "none":
        return ["python", "-m", ENTRY_MODULE]
    command = ["accelerate", "launch", "--num_machines", "1", "--num_processes", str(max(launcher.gpus, 1))]
    if launcher.gpus > 1:
        command.append("--multi_gpu")
    if launcher.accelerate_config:
        command += ["--config_file", launcher.accelerate_config]
    return command + ["-m", ENTRY_MODULE]


def k8s_pod_spec(launcher: K8sLauncher, state_dir: str | PurePath) -> dict:
    """A V1PodSpec (as a dict) for one training run.

    `state_dir` is the resolved storage.state_dir of the profile the definitions were
    built from (StatePaths.for_profile(profile).state_dir): the claim `launcher.state_pvc`
    is mounted there. GPUs are requested as `nvidia.com/gpu` limits (Kubernetes schedules
    extended resources by their limit) and the usual GPU-node taint is tolerated.
    """
    state = PurePosixPath(state_dir)
    if not state.is_absolute():
        raise ValueError(f"state_dir must be an absolute path (it is mounted in the pod), got {str(state_dir)!r}")

    limits: dict[str, str] = {"memory": launcher.memory}
    if launcher.gpus > 0:
        limits[GPU_RESOURCE] = str(launcher.gpus)
    container: dict = {
        "name": CONTAINER_NAME,
        "image": launcher.image,
        "resources": {"requests": {"cpu": launcher.cpu, "memory": launcher.memory}, "limits": limits},
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
    if launcher.secret:
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
