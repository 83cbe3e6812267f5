"""Warn when an asset runs on an upstream that is stale or missing and not part of the run.

A CLI run executes exactly its selection: after a config edit, a bare `--select eval_scores`
republishes the scores of the old checkpoints, and nothing says so. Dagster knows: an
upstream whose code version (which hashes its config slice) or whose dependencies' data
versions moved since it last ran is STALE. Its staleness is not transitive, so every
ancestor outside the run's selection is asked, with the same resolver the UI uses
(an internal API of dagster 1.13). Ancestors inside the selection are rebuilt by this
run and are not asked, so the main command (`*eval_scores+`) pays nothing for this.
"""

from __future__ import annotations

import dagster as dg
from dagster._check import CheckError
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContext


class _InstanceLoadingContext(LoadingContext):
    """The batch-loading scope the resolver needs: one per check, over the run's instance."""

    def __init__(self, instance: dg.DagsterInstance):
        self._instance = instance
        self._loaders: dict = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict:
        return self._loaders


def _resolver(instance: dg.DagsterInstance, asset_graph) -> CachingStaleStatusResolver:
    return CachingStaleStatusResolver(instance, asset_graph, _InstanceLoadingContext(instance))


def unsynced_assets(instance: dg.DagsterInstance, asset_graph) -> set[dg.AssetKey]:
    """The materialisable assets of `asset_graph` that the UI shows as unsynced or never materialised:
    what 'Materialize unsynced' would run. Not transitive: only the assets whose own code version or
    direct dependencies' data versions moved (or that have no materialisation) are listed."""
    resolver = _resolver(instance, asset_graph)
    return {
        key
        for key in asset_graph.get_all_asset_keys()
        if asset_graph.get(key).is_materializable and resolver.get_status(key) != StaleStatus.FRESH
    }


def ancestors(asset_graph, key: dg.AssetKey) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    todo = list(asset_graph.get(key).parent_keys)
    while todo:
        parent = todo.pop()
        if parent in seen or not asset_graph.has(parent):
            continue
        seen.add(parent)
        todo.extend(asset_graph.get(parent).parent_keys)
    return seen


def asset_graph_of(context: dg.AssetExecutionContext):
    """The code location's graph; an in-process `dg.materialize` has no repository, only its job's graph."""
    try:
        return context.repository_def.asset_graph
    except CheckError:
        graph = context.job_def.asset_layer.asset_graph
        # a job's own graph holds its unselected dependencies as unexecutable stubs, without code versions
        return getattr(graph, "source_asset_graph", graph)


def stale_upstream(context: dg.AssetExecutionContext, key: dg.AssetKey) -> list[str]:
    """'<ancestor>: <why>' for every stale or missing ancestor of `key` that this run does not rebuild."""
    asset_graph = asset_graph_of(context)
    if not asset_graph.has(key):
        return []
    # a run without an explicit selection runs its whole job
    selected = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    outside = sorted(
        (a for a in ancestors(asset_graph, key) if a not in selected and asset_graph.get(a).is_materializable),
        key=lambda k: k.to_user_string(),
    )
    if not outside:
        return []
    resolver = _resolver(context.instance, asset_graph)
    found = []
    for ancestor in outside:
        status = resolver.get_status(ancestor)
        if status == StaleStatus.MISSING:
            found.append(f"{ancestor.to_user_string()}: never materialised")
        elif status == StaleStatus.STALE:
            reasons = sorted({c.reason for c in resolver.get_stale_causes(ancestor)})
            found.append(f"{ancestor.to_user_string()}: {'; '.join(reasons) or 'stale'}")
    return found


def warn_if_upstream_stale(key: dg.AssetKey) -> list[str]:
    """Log a warning naming the stale ancestors of `key` (from inside its asset) and return them."""
    try:
        context = dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:  # not inside an asset run (e.g. a direct call in a test)
        return []
    stale = stale_upstream(context, key)
    if stale:
        context.log.warning(
            f"{key.to_user_string()} was built on upstream assets that are stale and not part of this run, so it "
            "may reflect their previous version: "
            + "; ".join(stale)
            + f". Materialise `*{key.to_user_string()}` (or 'Materialize unsynced' in the UI) to rebuild them."
        )
    return stale
