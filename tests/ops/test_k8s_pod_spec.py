"""The training and evaluation pods for PipesK8sClient: built from the profile, valid Kubernetes.

Each spec is read into the `kubernetes` client's V1PodSpec model and written back
(conftest.as_k8s_model): a key the API does not know would be dropped on the way (and so
is caught), a required field left out raises. The specs also go through dagster_k8s.pipes.build_pod_body, the function
PipesK8sClient.run uses, so a field dagster-k8s would overwrite fails here and not on the
cluster.
"""

from __future__ import annotations

import json

import pytest
from dagster_k8s.pipes import build_pod_body

from assets.evaluation import evaluation_launcher, evaluation_pod_command
from ual_dagster.config import ProfileError, load_profile
from ual_dagster.config.loader import resolve_profile_path
from ual_dagster.config.training import InProcessLauncher, K8sLauncher, SubprocessLauncher, TrainingConfig
from ual_dagster.storage import StatePaths
from ual_dagster.train.k8s import ENTRY_MODULE, EVAL_ENTRY_MODULE, k8s_pod_spec, pod_command

FAKE_SECRETS = {"HF_TOKEN": "hf_do-not-leak-0123", "OPENAI_API_KEY": "sk-do-not-leak-4567"}


def _rendered(role: str) -> tuple[K8sLauncher, str, dict]:
    """The launcher, state dir and pod spec of `role` as the cluster profile renders them."""
    profile = load_profile("cluster")
    launcher = profile.training.launcher if role == "train" else evaluation_launcher(profile)
    assert isinstance(launcher, K8sLauncher)
    state_dir = str(StatePaths.for_profile(profile).state_dir)
    return launcher, state_dir, k8s_pod_spec(launcher, state_dir, role=role)


def _cluster_launcher() -> K8sLauncher:
    launcher = load_profile("cluster").training.launcher
    assert isinstance(launcher, K8sLauncher)
    return launcher


def test_cluster_profile_loads_offline_and_trains_on_kubernetes():
    p = load_profile("cluster")
    # steps are run-worker processes; training and evaluation go to GPU pods through Pipes
    assert p.orchestration.executor == "multiprocess"
    assert isinstance(p.evaluation.launcher, K8sLauncher) and p.evaluation.launcher.gpus == 1
    launcher = p.training.launcher
    assert isinstance(launcher, K8sLauncher) and launcher.distributed == "accelerate"
    assert launcher.gpus == 4 and launcher.state_pvc == "ual-state" and launcher.image
    assert p.storage.state_dir == "/mnt/ual-state"
    # The paper profile's optimiser step: 32 samples, here spread over 4 GPUs.
    paper = load_profile("paper").training
    assert p.training.batch_size * p.training.grad_accum * launcher.gpus == paper.batch_size * paper.grad_accum


def test_pod_spec_passes_dagster_k8s_and_requests_gpus_and_shared_state():
    cfg = _cluster_launcher()
    pod = build_pod_body(
        pod_name="train-abc",
        image=None,  # the spec carries training.launcher.image
        command=pod_command(cfg),
        env_vars={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msgs"},
        base_pod_meta=None,
        base_pod_spec=k8s_pod_spec(cfg, "/mnt/ual-state"),
    )
    spec = pod.spec
    (container,) = spec.containers
    assert container.image == cfg.image
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
    base = _cluster_launcher()
    one = base.model_copy(update={"gpus": 1, "distributed": "none"})
    assert pod_command(one) == ["python", "-m", ENTRY_MODULE]
    accel_one = base.model_copy(update={"gpus": 1, "accelerate_config": "/opt/ual/acc.yaml"})
    assert "--multi_gpu" not in pod_command(accel_one)
    assert pod_command(accel_one)[-4:] == ["--config_file", "/opt/ual/acc.yaml", "-m", ENTRY_MODULE]

    cpu = base.model_copy(update={"gpus": 0, "distributed": "none", "secret": None})
    spec = k8s_pod_spec(cpu, "/mnt/ual-state")
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert "tolerations" not in spec and "envFrom" not in spec["containers"][0]


def test_launcher_shorthand_and_kinds():
    assert TrainingConfig(launcher="in_process").launcher == InProcessLauncher()
    assert TrainingConfig(launcher="subprocess").launcher == SubprocessLauncher(distributed="none")
    assert TrainingConfig().launcher == InProcessLauncher()
    accel = TrainingConfig.model_validate({"launcher": {"kind": "subprocess", "distributed": "accelerate"}})
    assert accel.launcher == SubprocessLauncher(distributed="accelerate")
    # a dump round-trips (the training spec travels as JSON to the Pipes entry point)
    cluster = load_profile("cluster").training
    assert TrainingConfig.model_validate_json(cluster.model_dump_json()) == cluster


def test_k8s_launcher_without_image_or_volume_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = resolve_profile_path("cluster").read_text().replace("    state_pvc: ual-state\n", "")
    bad.write_text(text)
    with pytest.raises(
        ProfileError, match=r"key 'training.launcher.state_pvc': required but missing \(for kind 'k8s'\)"
    ):
        load_profile(str(bad))
    bad.write_text("extends: tiny\nname: b\ntraining: {launcher: k8s}\n")
    with pytest.raises(ProfileError, match="key 'training.launcher.image': required but missing"):
        load_profile(str(bad))
    bad.write_text("extends: tiny\nname: b\ntraining: {launcher: {kind: subprocess, gpus: 2}}\n")
    with pytest.raises(ProfileError, match="key 'training.launcher.gpus': not a key of kind 'subprocess'"):
        load_profile(str(bad))
    with pytest.raises(ValueError, match="absolute"):
        k8s_pod_spec(_cluster_launcher(), "relative/state")


def test_the_old_flat_k8s_keys_say_where_they_moved(tmp_path):
    bad = tmp_path / "old.yaml"
    bad.write_text("extends: tiny\nname: old\ntraining: {launcher: in_process, k8s_image: img, k8s_gpus: 2}\n")
    with pytest.raises(ProfileError, match=r"k8s_image, k8s_gpus moved into training.launcher: .*image: \.\.\., gpus"):
        load_profile(str(bad))


def test_the_pod_mounts_the_state_dir_of_the_profile_the_definitions_were_built_from(tmp_path, monkeypatch):
    """build_definitions(profile) with an explicit profile: UAL_PROFILE (another profile) plays no part."""
    from assets.definitions import build_definitions
    from assets.keys import lora_key

    state = tmp_path / "explicit-state"
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(f"extends: cluster\nname: explicit\nstorage: {{state_dir: {state}}}\n")
    monkeypatch.setenv("UAL_PROFILE", "cluster")  # its state_dir is /mnt/ual-state
    profile = load_profile(str(explicit))
    defs = build_definitions(profile)
    key = lora_key("mixed", "ual")
    pod = defs.resolve_assets_def(key).metadata_by_key[key]["training_pod"].data
    (container,) = pod["containers"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["ual-state"] == str(state)
    assert {e["name"]: e["value"] for e in container["env"]}["HF_HOME"] == str(state / "hf_home")


def test_the_validator_catches_unknown_keys_and_missing_required_fields(k8s_model):
    spec = k8s_pod_spec(_cluster_launcher(), "/mnt/ual-state")
    k8s_model("V1PodSpec", spec)
    misspelt = {**spec, "nodeSelectors": {"a": "b"}}
    with pytest.raises(AssertionError, match="keys the Kubernetes API does not know"):
        k8s_model("V1PodSpec", misspelt)
    nested = json.loads(json.dumps(spec))
    nested["containers"][0]["resources"]["limit"] = {"cpu": "1"}
    with pytest.raises(AssertionError, match="keys the Kubernetes API does not know"):
        k8s_model("V1PodSpec", nested)
    with pytest.raises(ValueError, match="containers"):
        k8s_model("V1PodSpec", {k: v for k, v in spec.items() if k != "containers"})
    nameless = json.loads(json.dumps(spec))
    del nameless["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):
        k8s_model("V1PodSpec", nameless)


@pytest.mark.parametrize("role", ["train", "eval"])
def test_cluster_pods_are_valid_v1_pod_specs_with_gpus_shared_state_and_no_secret_values(role, monkeypatch, k8s_model):
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    launcher, state_dir, spec = _rendered(role)
    pod = k8s_model("V1PodSpec", spec)

    (container,) = pod.containers
    assert container.name == role and container.image == launcher.image
    assert launcher.gpus >= 1 and container.resources.limits["nvidia.com/gpu"] == str(launcher.gpus)
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"} == launcher.node_selector
    assert pod.restart_policy == "Never"

    # the state volume at the same absolute path as in the code location, the HF cache on it
    assert state_dir == "/mnt/ual-state"
    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    claims = {v.name: v.persistent_volume_claim.claim_name for v in pod.volumes if v.persistent_volume_claim}
    assert mounts["ual-state"] == state_dir and claims == {"ual-state": launcher.state_pvc}
    env = {e.name: e.value for e in container.env}
    assert env == {"HF_HOME": f"{state_dir}/hf_home", "HF_HUB_ENABLE_HF_TRANSFER": "0", "PYTHONUNBUFFERED": "1"}
    assert env["HF_HOME"].startswith(mounts["ual-state"] + "/")
    assert mounts["dshm"] == "/dev/shm"

    # the Secret by name only: no value from the environment anywhere in the spec
    assert [s.secret_ref.name for s in container.env_from] == [launcher.secret] == ["ual-secrets"]
    assert all(e.value_from is None for e in container.env)
    text = json.dumps(spec)
    assert not [name for name, value in FAKE_SECRETS.items() if value in text]


def test_evaluation_pod_runs_the_job_entry_through_dagster_k8s():
    launcher, state_dir, spec = _rendered("eval")
    assert evaluation_pod_command(launcher) == ["python", "-m", EVAL_ENTRY_MODULE]
    assert EVAL_ENTRY_MODULE == "ual_dagster.evaluation.job_entry"
    pod = build_pod_body(
        pod_name="eval-abc",
        image=None,
        command=evaluation_pod_command(launcher),
        env_vars={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msgs"},
        base_pod_meta=None,
        base_pod_spec=spec,
    )
    (container,) = pod.spec.containers
    assert container.command == ["python", "-m", EVAL_ENTRY_MODULE]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert {e.name for e in container.env} >= {"HF_HOME", "DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"}
    # evaluation is one process: accelerate is refused, not silently run four times
    with pytest.raises(ValueError, match="distributed: none"):
        pod_command(launcher.model_copy(update={"distributed": "accelerate"}), role="eval")
    with pytest.raises(ValueError, match="role must be one of"):
        k8s_pod_spec(launcher, state_dir, role="serve")


def test_cluster_evaluation_pods_use_the_training_image_volume_and_secret():
    profile = load_profile("cluster")
    train, evaluation = profile.training.launcher, evaluation_launcher(profile)
    same = ("image", "state_pvc", "namespace", "secret", "service_account")
    assert {k: getattr(evaluation, k) for k in same} == {k: getattr(train, k) for k in same}
    assert (evaluation.gpus, evaluation.memory, evaluation.distributed) == (1, "64Gi", "none")
    assert evaluation_launcher(load_profile("tiny")) is None
