"""The training pod for PipesK8sClient: built from the profile, accepted by dagster-k8s.

The spec goes through dagster_k8s.pipes.build_pod_body, the function PipesK8sClient.run
uses, so a key the Kubernetes models do not know, or a field dagster-k8s would
overwrite, fails here and not on the cluster.
"""

from __future__ import annotations

import pytest
from dagster_k8s.pipes import build_pod_body

from ual_dagster.config import ProfileError, load_profile
from ual_dagster.config.loader import resolve_profile_path
from ual_dagster.config.training import TrainingConfig
from ual_dagster.train.k8s import ENTRY_MODULE, k8s_pod_spec, pod_command


def _cluster_training() -> TrainingConfig:
    return load_profile("cluster").training


def test_cluster_profile_loads_offline_and_trains_on_kubernetes():
    p = load_profile("cluster")
    assert p.orchestration.executor == "k8s"  # a pod per step: evaluation steps get GPU pods too (docs/paper.md)
    assert p.training.launcher == "k8s" and p.training.distributed == "accelerate"
    assert p.training.k8s_gpus == 4 and p.training.k8s_state_pvc and p.training.k8s_image
    assert p.storage.state_dir == "/mnt/ual-state"
    # The paper profile's optimiser step: 32 samples, here spread over 4 GPUs.
    paper = load_profile("paper").training
    assert p.training.batch_size * p.training.grad_accum * p.training.k8s_gpus == paper.batch_size * paper.grad_accum


def test_pod_spec_passes_dagster_k8s_and_requests_gpus_and_shared_state():
    cfg = _cluster_training()
    pod = build_pod_body(
        pod_name="train-abc",
        image=None,  # the spec carries training.k8s_image
        command=pod_command(cfg),
        env_vars={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msgs"},
        base_pod_meta=None,
        base_pod_spec=k8s_pod_spec(cfg, "/mnt/ual-state"),
    )
    spec = pod.spec
    (container,) = spec.containers
    assert container.image == cfg.k8s_image
    assert container.command == [
        "accelerate",
        "launch",
        "--num_machines",
        "1",
        "--num_processes",
        "4",
        "--multi_gpu",
        "-m",
        ENTRY_MODULE,
    ]
    assert container.resources.limits["nvidia.com/gpu"] == "4"
    assert container.resources.requests == {"cpu": "16", "memory": "160Gi"}
    assert spec.restart_policy == "Never"
    assert any(t.key == "nvidia.com/gpu" for t in spec.tolerations)
    assert spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert spec.service_account_name == "ual-training"

    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    volumes = {v.name: v for v in spec.volumes}
    assert mounts["ual-state"] == "/mnt/ual-state"
    assert volumes["ual-state"].persistent_volume_claim.claim_name == "ual-state"
    assert mounts["dshm"] == "/dev/shm" and volumes["dshm"].empty_dir.medium == "Memory"

    env = {e.name: e.value for e in container.env}
    assert env["HF_HOME"] == "/mnt/ual-state/hf_home"
    assert env["DAGSTER_PIPES_CONTEXT"] == "ctx"  # dagster-k8s appended its own variables
    # The secret is referenced by name only: its values never enter the spec.
    assert [s.secret_ref.name for s in container.env_from] == ["ual-secrets"]


def test_single_gpu_and_cpu_pods():
    base = _cluster_training().model_dump()
    one = TrainingConfig.model_validate({**base, "k8s_gpus": 1, "distributed": "none"})
    assert pod_command(one) == ["python", "-m", ENTRY_MODULE]
    accel_one = TrainingConfig.model_validate({**base, "k8s_gpus": 1, "accelerate_config": "/opt/ual/acc.yaml"})
    assert "--multi_gpu" not in pod_command(accel_one)
    assert pod_command(accel_one)[-4:] == ["--config_file", "/opt/ual/acc.yaml", "-m", ENTRY_MODULE]

    cpu = TrainingConfig.model_validate({**base, "k8s_gpus": 0, "distributed": "none", "k8s_secret": None})
    spec = k8s_pod_spec(cpu, "/mnt/ual-state")
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert "tolerations" not in spec and "envFrom" not in spec["containers"][0]


def test_state_dir_defaults_to_the_active_profiles(monkeypatch):
    monkeypatch.setenv("UAL_PROFILE", "cluster")
    spec = k8s_pod_spec(_cluster_training())
    assert spec["containers"][0]["volumeMounts"][0]["mountPath"] == "/mnt/ual-state"


def test_k8s_launcher_without_image_or_volume_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="k8s_state_pvc"):
        TrainingConfig(launcher="k8s", k8s_image="img:1")
    bad = tmp_path / "bad.yaml"
    text = resolve_profile_path("cluster").read_text().replace("  k8s_state_pvc: ual-state\n", "")
    bad.write_text(text)
    with pytest.raises(ProfileError, match="k8s_state_pvc"):
        load_profile(str(bad))
    with pytest.raises(ValueError, match="absolute"):
        k8s_pod_spec(_cluster_training(), "relative/state")
