"""source_files: notices when a local data file of the profile changes.

A root asset cannot know that its file changed until it runs. This sensor compares each
file's size and modification time with what it saw last (its cursor) and requests the
data set's instruction_sets asset; its new DataVersion (a content hash of the rows) then
drives the data-version-aware automation downstream, and an unchanged content (a touch)
stops right there.

uncertainty_batches: finishes what elicitation.mode: batch started (see its docstring).
"""

import json

import dagster as dg

from assets.keys import instruction_set_key, uncertainty_key
from assets.resources import DuckDBStoreResource
from ual_dagster.config import Profile, resolve_path
from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation.batch_tables import open_batches
from ual_dagster.elicitation.elicitor import elicitor_fingerprint
from ual_dagster.plan import automation_on
from ual_dagster.storage import DuckDBStore


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
        if automation_on(profile) and watched
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


def uncertainty_batches_sensor(profile: Profile) -> dg.SensorDefinition:
    """Requests uncertainty_<dataset> when one of its Batch API batches finishes (elicitation.mode: batch).

    The asset submits and waits at most batch_wait_s; this sensor does the rest of the
    waiting: it polls the open batches recorded in DuckDB (read-only) and asks for one run
    per batch and terminal status (the run key), which collects the results. A submission
    a killed run left unsent is handed to a run at once.
    """
    cfg = profile.elicitation
    batch_mode = isinstance(cfg, OpenAIElicitation) and cfg.mode == "batch"
    poll_s = cfg.batch_poll_interval_s if isinstance(cfg, OpenAIElicitation) else 30

    @dg.sensor(
        name="uncertainty_batches",
        target=[uncertainty_key(d) for d in profile.datasets],
        minimum_interval_seconds=int(max(30, poll_s)),
        default_status=dg.DefaultSensorStatus.RUNNING
        if automation_on(profile) and batch_mode
        else dg.DefaultSensorStatus.STOPPED,
        description="Materialises an uncertainty asset when its OpenAI Batch API batch finishes.",
    )
    def _sensor(context: dg.SensorEvaluationContext, duckdb: DuckDBStoreResource):
        if not batch_mode:
            return dg.SkipReason("elicitation.mode is not 'batch'")
        # the openai client loads only in batch mode
        from ual_dagster.elicitation.batch import TERMINAL, poll_open_batches

        try:
            found = open_batches(DuckDBStore(duckdb.database, lock_wait_s=5.0), elicitor_fingerprint(cfg))
        except Exception as exc:  # the database is busy with a writer: try at the next tick
            return dg.SkipReason(f"could not read open batches: {exc}")
        found = [b for b in found if b.dataset in profile.datasets]
        if not found:
            return dg.SkipReason("no open batches")
        requests, waiting = [], []
        for batch, status, done, total in poll_open_batches(cfg, found):
            if status in TERMINAL or status == "preparing":
                requests.append(
                    dg.RunRequest(
                        run_key=f"{batch.batch_id or batch.submission_id}:{status}",
                        asset_selection=[uncertainty_key(batch.dataset)],
                        tags={"ual/reason": "batch_finished", "ual/batch": batch.batch_id or batch.submission_id},
                    )
                )
            else:
                waiting.append(f"{batch.batch_id} {status} ({done}/{total} done)")
        context.log.info("; ".join(waiting) or "no batch still running")
        return requests or dg.SkipReason("; ".join(waiting))

    return _sensor
