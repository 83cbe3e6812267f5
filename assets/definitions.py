"""The code location: every asset, check, schedule and sensor of the active profile.

The profile (env UAL_PROFILE: `tiny` by default, `paper`, `cluster` or a YAML path) decides
which data sets, scenarios and methods exist, so the asset graph is built from it here.
"""

import os
import sys
from pathlib import Path

import dagster as dg

from assets.data import data_assets
from assets.elicitation import reelicitation_schedule, uncertainty_assets
from assets.evaluation import evaluation_assets
from assets.keys import evaluation_key
from assets.launch import EngineJobsResource
from assets.preflight import preflight_asset
from assets.resources import ArtifactStoreResource, DuckDBStoreResource
from assets.runs import dead_run_sweep, sweeping_executor
from assets.sensors import source_files_sensor, uncertainty_batches_sensor
from assets.training import training_assets
from ual_dagster.config import Profile, ProfileError, active_profile
from ual_dagster.plan import automation_on, unattended_judge_refusal
from ual_dagster.storage import StatePaths

PROFILE_TAG = "ual/profile"


def automation_target(profile: Profile) -> dg.AssetSelection:
    """What the automation sensor may materialise: everything, except the per-checkpoint
    evaluations when their judge is paid and its planned cost is over the unattended limit
    (orchestration.max_unattended_cost_usd): those run only when a person asks. Paid
    elicitation is refused inside the uncertainty assets, which plan before any call."""
    if unattended_judge_refusal(profile) is None:
        return dg.AssetSelection.all()
    evals = [evaluation_key(s, m) for s in profile.scenarios for m in profile.methods]
    return dg.AssetSelection.all() - dg.AssetSelection.assets(*evals)


def build_definitions(profile: Profile | None = None) -> dg.Definitions:
    """All definitions of `profile` (default: the active one); tests pass their own."""
    profile = profile or active_profile()
    paths = StatePaths.for_profile(profile)  # created on first use, not at load time
    assets = [
        preflight_asset(profile),
        *data_assets(profile),
        *uncertainty_assets(profile),
        *training_assets(profile),
        *evaluation_assets(profile),
    ]
    automation = dg.AutomationConditionSensorDefinition(
        "ual_automation",
        target=automation_target(profile),
        # off by default where elicitation or the judge costs money (ual_dagster.plan.automation_on)
        default_status=dg.DefaultSensorStatus.RUNNING if automation_on(profile) else dg.DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=60,
        description="Materialises an asset when a dependency's data version or its own code version changed.",
    )
    if profile.orchestration.executor == "in_process":
        executor = dg.in_process_executor
    else:
        executor = dg.multiprocess_executor.configured({"max_concurrent": profile.orchestration.max_concurrent})
    # every asset names its profile (a tag, shown on the asset's page and searchable in the catalog)
    assets = [a.map_asset_specs(lambda spec: spec.merge_attributes(tags={PROFILE_TAG: profile.name})) for a in assets]
    return dg.Definitions(
        assets=assets,
        schedules=[reelicitation_schedule(profile)],
        sensors=[
            automation,
            source_files_sensor(profile),
            uncertainty_batches_sensor(profile),
            dead_run_sweep,
        ],
        resources={
            "duckdb": DuckDBStoreResource(database=str(paths.duckdb)),
            "artifacts": ArtifactStoreResource(root=str(paths.artifacts)),
            "engine_jobs": EngineJobsResource.default(),
        },
        # every run first sweeps the runs a killed process left behind (assets/runs.py)
        executor=sweeping_executor(executor),
        # the code location is always `ual_dagster`: these say which profile it was built from
        metadata={"ual/profile": profile.name, "ual/profile_file": str(profile.source_path or "(built in code)")},
    )


def _definitions_or_exit() -> dg.Definitions:
    """The active profile's definitions. A profile error in the `dagster` CLI becomes its one-line
    message (the CLI would print ~80 lines of import traceback around it) unless --debug-like
    UAL_DEBUG=1 is set; the webserver and daemon show the error in their code-location panel."""
    try:
        return build_definitions()
    except (ProfileError, FileNotFoundError) as exc:
        if Path(sys.argv[0]).name == "dagster" and os.environ.get("UAL_DEBUG") != "1":
            raise SystemExit(f"error: {exc}") from None
        raise


defs = _definitions_or_exit()
