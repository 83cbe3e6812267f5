"""instructions_<dataset>, with its checks."""

import dagster as dg

from assets.common import DATA_OR_CODE_CHANGED, check, code_version, finish, one_line_failure
from assets.keys import PREFLIGHT_KEY, instruction_set_key
from assets.resources import DuckDBStoreResource
from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.data import build_instruction_set
from ual_dagster.data import checks as data_checks


def _instruction_set_asset(profile: Profile, dataset: str) -> dg.AssetsDefinition:
    cfg = profile.datasets[dataset]
    key = instruction_set_key(dataset)
    max_reject_rate = profile.data_checks.max_reject_rate
    check_names = ("unique_sample_ids", "no_empty_outputs", "reject_rate")
    # duplicate ids or empty outputs would train on wrong data: those checks block downstream
    blocking = {"unique_sample_ids", "no_empty_outputs"}

    @dg.asset(
        key=key,
        group_name="data",
        kinds={"duckdb"},
        deps=[PREFLIGHT_KEY],  # runs first; its version is constant, so it never makes this stale
        code_version=code_version(versions.LOADERS, cfg),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="duckdb",
        description=f"Samples of data set {dataset!r} ({cfg.source}, {cfg.entropy} entropy), normalised, "
        "de-duplicated, in DuckDB table `samples`; bad rows in `rejects`.",
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=name in blocking) for name in check_names],
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource) -> dg.MaterializeResult:

        store = duckdb.store()
        with one_line_failure():  # e.g. a missing file, or a data set with (almost) every row rejected
            result = build_instruction_set(dataset, cfg, store, log=context.log.info)
        unique_ok, unique_meta = data_checks.unique_sample_ids(store, dataset)
        empty_ok, empty_meta = data_checks.no_empty_outputs(store, dataset)
        rate_ok, rate_meta = data_checks.reject_rate(result, max_reject_rate)
        return finish(
            store,
            key,
            result.fingerprint,
            result.metadata,
            config=cfg,
            check_results=[
                check("unique_sample_ids", key, unique_ok, unique_meta),
                check("no_empty_outputs", key, empty_ok, empty_meta),
                check("reject_rate", key, rate_ok, rate_meta, warn=True),
            ],
        )

    return _asset


def data_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [_instruction_set_asset(profile, d) for d in profile.datasets]
