"""Conventions shared by every asset: keys, code versions, automation, results.

Versions: an asset's code_version hashes its step's version (ual_dagster/versions.py) with the profile
slice it reads, so a config edit marks exactly the affected assets stale in the UI
before anything runs. Its DataVersion is the fingerprint the library computed from
that config and its inputs' fingerprints; the same fingerprint names the artifact or
rows it owns, so a re-run with nothing changed reuses them and downstream stays fresh.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from assets.keys import PREFLIGHT_KEY, key_str
from assets.staleness import ancestors, asset_graph_of, warn_if_upstream_stale
from ual_dagster.config import ProfileError
from ual_dagster.data.errors import DataSourceError
from ual_dagster.figures import curve_markdown, histogram_markdown
from ual_dagster.fingerprint import canonical_json, stable_hash
from ual_dagster.storage import DuckDBStore

AC = dg.AutomationCondition

# Eager on a *data version* change of a dependency (not on every upstream run) or on a
# change of the asset's own code version: Dagster's eager() with `newly_updated` swapped for
# `data_version_changed()` (its documented "respecting data versioning" recipe), plus
# `code_version_changed()`, which is true for one tick and so sits inside since_last_handled();
# tests/orchestration/test_automation.py checks it tick by tick.
_dv_deps = AC.any_deps_updated().replace("newly_updated", AC.data_version_changed())
DATA_OR_CODE_CHANGED = (
    AC.in_latest_time_window()
    & (AC.newly_missing() | _dv_deps | AC.code_version_changed()).since_last_handled()
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
).with_label("data_or_code_changed")


def code_version(module_version: str, *config: Any) -> str:
    return stable_hash(module_version, *config, length=12)


def _plain(config: Any) -> Any:
    """JSON-able form of a config section, or of a list of them."""
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    if isinstance(config, list | tuple):
        return [_plain(c) for c in config]
    return config


def finish(
    store: DuckDBStore,
    key: dg.AssetKey,
    fingerprint: str,
    metadata: dict[str, Any],
    *,
    config: Any = None,
    reused: bool | None = None,
    check_results: list[dg.AssetCheckResult] | None = None,
) -> dg.MaterializeResult:
    """Record the asset's fingerprint (downstream reads it) and build its result; the config
    the run actually used goes into both the DuckDB record and the metadata.

    `reused`: whether the step found its output already built. Left None, it is whether
    the fingerprint equals the one recorded before this run: the same rows or artifact,
    nothing downstream changes (cheap steps that re-derive their output, such as reading a
    data file, say so on a no-op run). Metadata whose name holds `_histogram` or `loss_curve`
    is also drawn (`<name>_plot`), and stale upstream assets outside the run are named
    (`stale_upstream`, plus a warning in the log).
    """

    if reused is None:
        reused = store.get_version(key_str(key)) == fingerprint
    used = _plain(config) if config is not None else None
    store.record_version(key_str(key), fingerprint, canonical_json(used) if used is not None else None)
    meta: dict[str, Any] = {"fingerprint": fingerprint, "reused": reused, **metadata, **plots_of(metadata)}
    stale = warn_if_upstream_stale(key)
    if stale:
        meta["stale_upstream"] = stale
    if used is not None:
        meta["config"] = used
    return dg.MaterializeResult(
        data_version=dg.DataVersion(fingerprint),
        metadata={k: _metadata_value(v) for k, v in meta.items()},
        check_results=check_results or [],
    )


def plots_of(metadata: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    """Pictures of the histograms and loss curves in `metadata`, as Markdown images the UI shows.

    A histogram is {bin label: count} (or a dict holding one under "histogram", as the
    trainer's eps statistics do); a loss curve is {step: loss}.
    """

    plots: dict[str, dg.MetadataValue] = {}
    for name, value in metadata.items():
        if not isinstance(value, dict):
            continue
        if "_histogram" in name:  # also per-seed names such as eps_histogram_seed_0
            bins = value.get("histogram", value)
            if isinstance(bins, dict) and bins and all(isinstance(v, int | float) for v in bins.values()):
                plots[f"{name}_plot"] = dg.MetadataValue.md(histogram_markdown(bins, name.replace("_", " ")))
        elif "loss_curve" in name and value and all(isinstance(v, int | float) for v in value.values()):
            plots[f"{name}_plot"] = dg.MetadataValue.md(curve_markdown(value, name.replace("_", " ")))
    return plots


def _metadata_value(value: Any) -> Any:
    if isinstance(value, dict | list) and not isinstance(value, dg.MetadataValue):
        return dg.MetadataValue.json(value)
    return value


def check(
    name: str, key: dg.AssetKey, passed: bool, metadata: dict[str, Any], *, warn: bool = False
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=key,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.WARN if warn else dg.AssetCheckSeverity.ERROR,
        metadata={k: _metadata_value(v) for k, v in metadata.items()},
    )


MISSING_NAMED = 3  # how many missing upstream assets a failure names


def missing_upstream_failure(store: DuckDBStore, asset: str) -> dg.Failure:
    """The failure of a step whose upstream `asset` was never built: one line with how many of the
    step's upstream assets are missing, the first few (in build order) and the command that
    builds them. Outside a run (a direct call) it names `asset` alone."""
    try:
        context = dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        context = None
    target, missing = asset, [asset]
    if context is not None:
        key = context.asset_key
        graph = asset_graph_of(context)
        if graph.has(key):
            recorded = store.recorded_assets()
            depth: dict[dg.AssetKey, int] = {}

            def level(k: dg.AssetKey) -> int:  # distance from the roots: build order
                if k not in depth:
                    parents = [p for p in graph.get(k).parent_keys if graph.has(p)]
                    depth[k] = 1 + max((level(p) for p in parents), default=-1)
                return depth[k]

            # preflight records no fingerprint (its data version is constant): never "missing"
            absent = [
                a
                for a in ancestors(graph, key)
                if a != PREFLIGHT_KEY and graph.get(a).is_materializable and key_str(a) not in recorded
            ]
            names = [key_str(a) for a in sorted(absent, key=lambda a: (level(a), key_str(a)))]
            target, missing = key_str(key), names or [asset]
    shown = ", ".join(missing[:MISSING_NAMED]) + (
        f" and {len(missing) - MISSING_NAMED} more" if len(missing) > MISSING_NAMED else ""
    )
    n = len(missing)
    return dg.Failure(
        description=f"{target}: {n} upstream asset{'s' if n != 1 else ''} never materialised ({shown}); "
        f"build {'them' if n != 1 else 'it'} with: dagster asset materialize --select '*{target}'",
        allow_retries=False,
    )


@contextmanager
def one_line_failure() -> Iterator[None]:
    """Bad input and unusable state fail the asset with their one-line cause as the Dagster
    failure description (no stack trace of ours around it); bugs keep their traceback."""

    try:
        yield
    except (DataSourceError, ProfileError, OSError, RuntimeError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
