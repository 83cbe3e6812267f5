"""source_files: notices when a local data file of the profile changes.

A root asset cannot know that its file changed until it runs. This sensor compares each
file's size and modification time with what it saw last (its cursor) and requests the
data set's instruction_sets asset; its new DataVersion (a content hash of the rows) then
drives the data-version-aware automation downstream, and an unchanged content (a touch)
stops right there.
"""

import json

import dagster as dg

from assets.data import instruction_set_key
from ual_dagster.config import Profile, resolve_path


def _signatures(profile: Profile) -> dict[str, list[int] | None]:
    out: dict[str, list[int] | None] = {}
    for name, cfg in profile.datasets.items():
        if cfg.source != "file" or not cfg.path:
            continue
        path = resolve_path(cfg.path)
        try:
            st = path.stat()
            out[name] = [st.st_size, st.st_mtime_ns]
        except OSError:
            out[name] = None  # missing: the asset run will fail naming the file
    return out


def source_files_sensor(profile: Profile) -> dg.SensorDefinition:
    watched = [name for name, cfg in profile.datasets.items() if cfg.source == "file"]

    @dg.sensor(
        name="source_files",
        target=[instruction_set_key(d) for d in watched] or None,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING
        if profile.orchestration.automation and watched
        else dg.DefaultSensorStatus.STOPPED,
        description="Re-reads a local data file when its size or modification time changes.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else {}
        now = _signatures(profile)
        changed = sorted(name for name, sig in now.items() if sig is not None and seen.get(name) != sig)
        context.update_cursor(json.dumps(now, sort_keys=True))
        if not seen:
            # first evaluation: remember the files; the main command or the UI built them
            return dg.SkipReason(f"watching {len(now)} file(s)")
        if not changed:
            return dg.SkipReason("no data file changed")
        return [
            dg.RunRequest(run_key=f"{name}:{now[name]}", asset_selection=[instruction_set_key(name)])
            for name in changed
        ]

    return _sensor
