"""Conventions shared by every asset: keys, code versions, automation, results.

Versions: an asset's code_version hashes its module's CODE_VERSION with the profile
slice it reads, so a config edit marks exactly the affected assets stale in the UI
before anything runs. Its DataVersion is the fingerprint the library computed from
that config and its inputs' fingerprints; the same fingerprint names the artifact or
rows it owns, so a re-run with nothing changed reuses them and downstream stays fresh.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from ual_dagster.fingerprint import canonical_json, stable_hash
from ual_dagster.storage import DuckDBStore

AC = dg.AutomationCondition

# Eager on a *data version* change of a dependency (not on every upstream run) or on a
# change of the asset's own code version; see research/dagster.md §2.3 for the tick table.
_dv_deps = AC.any_deps_updated().replace("newly_updated", AC.data_version_changed())
DATA_OR_CODE_CHANGED = (
    AC.in_latest_time_window()
    & (AC.newly_missing() | _dv_deps | AC.code_version_changed()).since_last_handled()
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
).with_label("data_or_code_changed")


def key_str(key: dg.AssetKey) -> str:
    return key.to_user_string()


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
    reused: bool = False,
    check_results: list[dg.AssetCheckResult] | None = None,
) -> dg.MaterializeResult:
    """Record the asset's fingerprint (downstream reads it) and build its result; the config
    the run actually used goes into both the DuckDB record and the metadata."""
    used = _plain(config) if config is not None else None
    store.record_version(key_str(key), fingerprint, canonical_json(used) if used is not None else None)
    meta: dict[str, Any] = {"fingerprint": fingerprint, "reused": reused, **metadata}
    if used is not None:
        meta["config"] = used
    return dg.MaterializeResult(
        data_version=dg.DataVersion(fingerprint),
        metadata={k: _metadata_value(v) for k, v in meta.items()},
        check_results=check_results or [],
    )


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


@contextmanager
def one_line_failure() -> Iterator[None]:
    """Bad input and unusable state fail the asset with their one-line cause as the Dagster
    failure description (no stack trace of ours around it); bugs keep their traceback."""
    from ual_dagster.config import ProfileError
    from ual_dagster.data.errors import DataSourceError

    try:
        yield
    except (DataSourceError, ProfileError, OSError, RuntimeError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
