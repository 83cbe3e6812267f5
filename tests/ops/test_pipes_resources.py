"""The Pipes clients as configurable resources: they construct from config and hand out the right client."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_k8s import PipesK8sClient

from assets.resources import PipesK8sClientResource, PipesSubprocessClientResource


def test_subprocess_resource_passes_env_and_cwd(tmp_path):
    resource = PipesSubprocessClientResource(env={"UAL_X": "1"}, cwd=str(tmp_path))
    client = resource.get_client()
    assert isinstance(client, dg.PipesSubprocessClient)
    assert client.env == {"UAL_X": "1"} and client.cwd == str(tmp_path)
    assert PipesSubprocessClientResource().get_client().env == {}  # the child inherits the step's environment


def test_k8s_resource_configures_cluster_access_and_polling(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    resource = PipesK8sClientResource(kubeconfig_file=str(kubeconfig), kube_context="gpu", poll_interval=2.5)
    client = resource.get_client()
    assert isinstance(client, PipesK8sClient)
    assert (client.kubeconfig_file, client.kube_context, client.poll_interval) == (str(kubeconfig), "gpu", 2.5)
    assert client.load_incluster_config is None

    incluster = PipesK8sClientResource(load_incluster_config=True).get_client()
    assert incluster.load_incluster_config is True and incluster.poll_interval == 10.0
    with pytest.raises(ValueError, match="load_incluster_config=true excludes kubeconfig_file"):
        PipesK8sClientResource(load_incluster_config=True, kube_context="gpu").get_client()


def test_k8s_resource_namespace_overrides_the_launchers_only_when_set():
    assert PipesK8sClientResource().pod_namespace("ual") == "ual"
    assert PipesK8sClientResource(namespace="ual-gpu").pod_namespace("ual") == "ual-gpu"


def test_resources_are_usable_by_an_asset(tmp_path):
    """Bound as resources, configured per deployment, handed to an asset like any resource."""
    seen = {}

    @dg.asset
    def job(pipes_subprocess: PipesSubprocessClientResource, pipes_k8s: PipesK8sClientResource) -> None:
        seen["subprocess"] = pipes_subprocess.get_client()
        seen["k8s"] = pipes_k8s.get_client()

    result = dg.materialize(
        [job],
        resources={
            "pipes_subprocess": PipesSubprocessClientResource(cwd=str(tmp_path)),
            "pipes_k8s": PipesK8sClientResource(load_incluster_config=True, poll_interval=1.0),
        },
    )
    assert result.success
    assert isinstance(seen["subprocess"], dg.PipesSubprocessClient) and seen["subprocess"].cwd == str(tmp_path)
    assert isinstance(seen["k8s"], PipesK8sClient) and seen["k8s"].poll_interval == 1.0
