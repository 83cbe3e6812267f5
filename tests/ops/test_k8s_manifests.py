"""docker/k8s/ and docker/helm/: valid Kubernetes objects that agree with the cluster profile.

No cluster here, so nothing is applied. What reading can tell is checked: every manifest
reads into the `kubernetes` client's model of its kind without losing a key
(conftest.as_k8s_model); the Role allows every call dagster-k8s makes, found in its
source; and the PVC, the service accounts, the namespace, the mount path and the secrets
are the same names in the profile, the manifests, the Helm values and the instance file
docker/dagster-k8s.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from assets.evaluation import evaluation_launcher
from ual_dagster.config import load_profile
from ual_dagster.config.training import K8sLauncher
from ual_dagster.storage import StatePaths

DOCKER = Path(__file__).resolve().parents[2] / "docker"
MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
}
# What each dagster-k8s client call needs from RBAC: (resource, verb).
API_CALLS = {
    "create_namespaced_pod": ("pods", "create"),
    "read_namespaced_pod": ("pods", "get"),
    "list_namespaced_pod": ("pods", "list"),
    "delete_namespaced_pod": ("pods", "delete"),
    "read_namespaced_pod_log": ("pods/log", "get"),
    "list_namespaced_event": ("events", "list"),
    "create_namespaced_job": ("jobs", "create"),
    "read_namespaced_job": ("jobs", "get"),
    "list_namespaced_job": ("jobs", "list"),
    "delete_namespaced_job": ("jobs", "delete"),
    "read_namespaced_job_status": ("jobs/status", "get"),
}
# The keys the chart's schema allows under runLauncher.config.k8sRunLauncher (extra=forbid
# in helm/dagster/schema .../subschema/run_launcher.py, K8sRunLauncherConfig).
K8S_RUN_LAUNCHER_KEYS = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DOCKER / "k8s" / name).read_text()) if d]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    found = {}
    for name in ("rbac.yaml", "pvc.yaml"):
        for doc in _docs(name):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{name}: {key} defined twice"
            found[key] = doc
    return found


@pytest.fixture(scope="module")
def helm() -> dict:
    return yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def instance() -> dict:
    return yaml.safe_load((DOCKER / "dagster-k8s.yaml").read_text())


@pytest.fixture(scope="module")
def cluster():
    profile = load_profile("cluster")
    assert isinstance(profile.training.launcher, K8sLauncher)
    return profile


def test_every_manifest_is_a_valid_object_of_its_kind(objects, k8s_model):
    assert {kind for kind, _ in objects} == set(MODELS)
    for (kind, name), doc in objects.items():
        model = k8s_model(MODELS[kind], doc)
        assert model.metadata.name == name and model.metadata.namespace == "ual"


def test_the_role_allows_every_call_dagster_k8s_makes(objects):
    import dagster_k8s

    source = "\n".join(p.read_text() for p in Path(dagster_k8s.__file__).parent.rglob("*.py"))
    calls = set(re.findall(r"(?:core|batch)_api\.(\w+)\(", source))
    unmapped = calls - set(API_CALLS)
    assert not unmapped, f"dagster-k8s makes calls this test cannot map to RBAC: {sorted(unmapped)}"
    allowed = {
        (resource, verb)
        for rule in objects[("Role", "ual-dagster")]["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {API_CALLS[c] for c in calls}
    assert needed <= allowed, f"missing: {sorted(needed - allowed)}"
    # what the Pipes client needs, as the issue lists it
    assert {("pods", v) for v in ("get", "list", "watch", "create", "delete")} <= allowed
    assert ("pods/log", "get") in allowed
    # and nothing broader than the namespace's pods, logs, events and Jobs
    assert {r for r, _ in allowed} == {"pods", "pods/log", "events", "jobs", "jobs/status"}
    assert "*" not in {v for _, v in allowed}


def test_the_run_workers_account_is_bound_and_the_job_pods_account_has_no_token(objects, helm, instance, cluster):
    binding = objects[("RoleBinding", "ual-dagster")]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ual-dagster"}
    bound = {(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]}
    run_worker = instance["run_launcher"]["config"]["service_account_name"]
    assert run_worker == helm["global"]["serviceAccountName"] == helm["serviceAccount"]["name"] == "ual-dagster"
    assert helm["serviceAccount"]["create"] is False and helm["rbacEnabled"] is False  # rbac.yaml does it
    assert bound == {("ServiceAccount", run_worker, "ual")}
    assert ("ServiceAccount", run_worker) in objects

    # the training and evaluation pods run as the profile's account, which exists and calls no API
    pod_accounts = {cluster.training.launcher.service_account, evaluation_launcher(cluster).service_account}
    assert pod_accounts == {"ual-training"}
    assert objects[("ServiceAccount", "ual-training")]["automountServiceAccountToken"] is False
    assert "ual-training" not in {name for _, name, _ in bound}


def test_one_namespace_everywhere(objects, helm, instance, cluster):
    launchers = [cluster.training.launcher, evaluation_launcher(cluster)]
    namespaces = {doc["metadata"]["namespace"] for doc in objects.values()}
    namespaces |= {s["namespace"] for s in objects[("RoleBinding", "ual-dagster")]["subjects"]}
    namespaces |= {launcher.namespace for launcher in launchers}
    namespaces |= {helm["runLauncher"]["config"]["k8sRunLauncher"]["jobNamespace"]}
    namespaces |= {instance["run_launcher"]["config"]["job_namespace"]}
    assert namespaces == {"ual"}


def _state_mounts(helm: dict) -> list[tuple[str, list[dict], list[dict]]]:
    user = helm["dagster-user-deployments"]["deployments"]
    run = helm["runLauncher"]["config"]["k8sRunLauncher"]
    web = helm["dagsterWebserver"]
    return [
        *((f"user deployment {d['name']}", d["volumeMounts"], d["volumes"]) for d in user),
        ("run launcher", run["volumeMounts"], run["volumes"]),
        ("webserver", web["volumeMounts"], web["volumes"]),
    ]


def test_the_shared_volume_is_the_profiles_claim_at_its_state_dir_everywhere(
    objects, helm, instance, cluster, k8s_model
):
    state_dir = str(StatePaths.for_profile(cluster).state_dir)
    claim = cluster.training.launcher.state_pvc
    assert state_dir == cluster.storage.state_dir == "/mnt/ual-state"
    assert evaluation_launcher(cluster).state_pvc == claim == "ual-state"

    pvc = k8s_model("V1PersistentVolumeClaim", objects[("PersistentVolumeClaim", claim)])
    assert pvc.spec.access_modes == ["ReadWriteMany"]  # pods on several nodes at once
    assert pvc.spec.resources.requests["storage"].endswith("Gi")

    sources = _state_mounts(helm) + [
        (
            "dagster-k8s.yaml",
            instance["run_launcher"]["config"]["volume_mounts"],
            instance["run_launcher"]["config"]["volumes"],
        )
    ]
    for where, mounts, volumes in sources:
        for m in mounts:
            k8s_model("V1VolumeMount", m)
        for v in volumes:
            k8s_model("V1Volume", v)
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}
        paths = {m["name"]: m["mountPath"] for m in mounts}
        assert {paths[name] for name, c in claims.items() if c == claim} == {state_dir}, where

    logs = helm["computeLogManager"]["config"]["customComputeLogManager"]["config"]["base_dir"]
    assert logs == instance["compute_logs"]["config"]["base_dir"]
    assert PurePosixPath(logs).is_relative_to(state_dir)


def test_the_helm_values_render_the_same_instance_as_dagster_k8s_yaml(helm, instance):
    run = helm["runLauncher"]["config"]["k8sRunLauncher"]
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(run) <= K8S_RUN_LAUNCHER_KEYS, f"not in the chart's schema: {sorted(set(run) - K8S_RUN_LAUNCHER_KEYS)}"
    i_run = instance["run_launcher"]["config"]
    assert run["loadInclusterConfig"] is i_run["load_incluster_config"] is True
    assert [s["name"] for s in run["envSecrets"]] == i_run["env_secrets"]
    assert run["resources"] == i_run["run_k8s_config"]["container_config"]["resources"]
    assert helm["global"]["postgresqlSecretName"] == i_run["postgres_password_secret"]
    assert helm["postgresql"]["existingSecret"] == i_run["postgres_password_secret"]
    assert helm["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    queued = helm["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert helm["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"] == 1
    assert all(set(secret) == {"name"} for secret in run["envSecrets"])  # Secrets by name only


def test_the_code_location_serves_the_cluster_profile_and_no_secret_is_in_the_values(helm, cluster):
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"][:2] == ["-m", "assets.definitions"]
    assert deployment["env"]["UAL_PROFILE"] == cluster.name
    assert f"UAL_PROFILE={cluster.name}" in helm["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
    # run pods are specified in full by the run launcher, so nothing is mounted twice
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    # the job pods' Secret is the one the run worker gets
    secrets = {s["name"] for s in helm["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    assert {cluster.training.launcher.secret, evaluation_launcher(cluster).secret} <= secrets

    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        else:
            yield path, node

    secretish = re.compile(r"password|token|api_?key|secret", re.IGNORECASE)
    leaked = [
        (p, v)
        for p, v in walk(helm)
        if secretish.search(p.rsplit(".", 1)[-1]) and isinstance(v, str) and v and not v.startswith("ual-")
    ]
    assert leaked == [], "values that look like secrets; name a Secret instead"
