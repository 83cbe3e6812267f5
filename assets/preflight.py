"""preflight: the profile's external needs (keys, endpoints, judge, hub access, files, GPU,
disk) checked before anything is loaded, elicited or trained. Every root asset depends on
it, so `*eval_scores+` and the UI run it first; its check is blocking, so a run with
something missing stops here instead of hours later. Its DataVersion is constant, so a
passing preflight never makes anything downstream stale."""

import dagster as dg

from assets.common import DATA_OR_CODE_CHANGED, check, code_version
from assets.keys import PREFLIGHT_KEY
from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.preflight import run_preflight


def preflight_asset(profile: Profile) -> dg.AssetsDefinition:
    @dg.asset(
        key=PREFLIGHT_KEY,
        group_name="preflight",
        code_version=code_version(versions.PREFLIGHT, profile.name),
        automation_condition=DATA_OR_CODE_CHANGED,
        description="API keys, endpoints and models, the judge, hub ids with the token, local files, GPU and disk "
        "(the checks of `python -m ual_dagster preflight`), one metadata line each.",
        check_specs=[dg.AssetCheckSpec("preflight_passed", asset=PREFLIGHT_KEY, blocking=True)],
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:

        checks = run_preflight(profile)
        for c in checks:
            (context.log.info if c.ok else context.log.error)(c.line())
        lines = {c.name: c.detail for c in checks}
        missing = {c.name: c.detail for c in checks if not c.ok}
        return dg.MaterializeResult(
            data_version=dg.DataVersion(versions.PREFLIGHT),
            # reused: it builds nothing, and its constant data version leaves everything downstream as it was
            metadata={"checks": dg.MetadataValue.json(lines), "missing": len(missing), "reused": True},
            check_results=[check("preflight_passed", PREFLIGHT_KEY, not missing, {"missing": missing or "none"})],
        )

    return _asset
