"""Dagster resources: one ConfigurableResource per external system the assets touch.

The library underneath (`DuckDBStore`, `ArtifactStore`) works without
Dagster; these thin wrappers make the systems configurable and swappable per
deployment (a test points them at a temp dir, a cluster at a shared volume).
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from assets.common import missing_upstream_failure
from ual_dagster.storage import ArtifactStore, DuckDBStore


class StepStore(DuckDBStore):
    """The store as an asset step sees it: an upstream that was never built fails the step with
    one line (how many upstream assets are missing, the first few, the command that builds
    them) instead of a traceback."""

    def require_version(self, asset: str) -> str:
        fp = self.get_version(asset)
        if fp is None:
            raise missing_upstream_failure(self, asset)
        return fp


class DuckDBStoreResource(dg.ConfigurableResource):
    """The project's DuckDB file (samples, rejects, uncertainty, training sets, curves, scores)."""

    database: str

    def store(self) -> DuckDBStore:
        return StepStore(self.database)


class ArtifactStoreResource(dg.ConfigurableResource):
    """Content-addressed directories for models, adapters, generations and reports."""

    root: str

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root)


class PipesSubprocessClientResource(dg.ConfigurableResource):
    """Starts a job as a local child process through Dagster Pipes (launcher 'subprocess').

    `env` is added to the child's environment (which otherwise inherits the step's);
    `cwd` is its working directory (None: the step's).
    """

    env: dict[str, str] | None = Field(None, description="extra environment variables for the child process")
    cwd: str | None = Field(None, description="working directory of the child process; None: the step's")

    def get_client(self) -> dg.PipesSubprocessClient:
        return dg.PipesSubprocessClient(env=self.env, cwd=self.cwd)


class PipesK8sClientResource(dg.ConfigurableResource):
    """Starts a job as a Kubernetes pod through Dagster Pipes (launcher 'k8s'), from the run worker.

    Cluster access: `load_incluster_config: true` inside the cluster (the run worker's
    service account, docker/k8s/rbac.yaml), or a kubeconfig file and context from outside;
    with none of them set, the in-cluster config is used when KUBERNETES_SERVICE_HOST is
    set, else the default kubeconfig. dagster-k8s is imported only when a client is made
    (it is the optional extra `k8s`), so loading the definitions does not need it.
    """

    namespace: str | None = Field(
        None,
        description="namespace for the job pods, overriding the launcher's (a deployment can move them "
        "without editing the profile); None: the launcher's namespace",
    )
    load_incluster_config: bool | None = Field(
        None, description="true: the pod's service account; false: kubeconfig_file/kube_context; None: detect"
    )
    kubeconfig_file: str | None = Field(None, description="kubeconfig path (outside the cluster)")
    kube_context: str | None = Field(None, description="kubeconfig context (outside the cluster)")
    poll_interval: float = Field(10.0, gt=0, description="seconds between pod status polls")

    def pod_namespace(self, launcher_namespace: str) -> str:
        """Where a job pod goes: this resource's namespace if set, else the launcher's."""
        return self.namespace or launcher_namespace

    def get_client(self):  # -> dagster_k8s.PipesK8sClient (imported lazily)
        from dagster_k8s import PipesK8sClient

        if self.load_incluster_config and (self.kubeconfig_file or self.kube_context):
            raise ValueError(
                "PipesK8sClientResource: load_incluster_config=true excludes kubeconfig_file and kube_context"
            )
        return PipesK8sClient(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            kube_context=self.kube_context,
            poll_interval=self.poll_interval,
        )
