"""`python -m ual_dagster.train.pipes_entry [--spec spec.json]`: training under Dagster Pipes.

The spec (a records.TrainSpec) comes from `--spec`, else from the Pipes extras: "spec_path"
(a JSON file on a volume the process sees) or "train_spec" (the spec inline), e.g.
PipesK8sClient().run(..., extras={"spec_path": "/state/.../train_spec.json"}).
Logs stream back to Dagster, and the TrainResult is reported as a Pipes custom message:
the step takes the result from there, not from a file that an earlier run may have left.
Outside Dagster the Pipes context is a no-op and this is a plain training script. The
process never opens DuckDB for writing (docs/deployment.md, "Who writes").

Under `accelerate launch` only the main process (RANK 0) opens Pipes and talks to
Dagster, so messages are not duplicated; the other processes only read the extras.
"""

from __future__ import annotations

import argparse
import os

from ual_dagster.cluster.job_entry import SPEC_PATH_EXTRA
from ual_dagster.storage.duckdb_store import forbid_duckdb_writes
from ual_dagster.train.records import TrainSpec
from ual_dagster.train.run import run_training

SPEC_EXTRA = "train_spec"


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def spec_from(spec_arg: str | None, extras: dict) -> TrainSpec:
    if spec_arg:
        return TrainSpec.load(spec_arg)
    if extras.get(SPEC_PATH_EXTRA):
        return TrainSpec.load(extras[SPEC_PATH_EXTRA])
    if extras.get(SPEC_EXTRA):
        return TrainSpec.model_validate(extras[SPEC_EXTRA])
    raise SystemExit(f"pipes_entry: no spec: pass --spec or the Pipes extra {SPEC_PATH_EXTRA!r} or {SPEC_EXTRA!r}")


def _extras_without_messages() -> dict:
    """The Pipes extras, read without opening a message channel (non-main ranks)."""
    from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader

    params = PipesEnvVarParamsLoader()
    if not params.is_dagster_pipes_process():
        return {}
    with PipesDefaultContextLoader().load_context(params.load_context_params()) as data:
        return dict(data.get("extras") or {})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="path of a TrainSpec JSON file (default: the Pipes extra 'train_spec')")
    args = parser.parse_args(argv)
    forbid_duckdb_writes()

    if not _is_main_process():
        run_training(spec_from(args.spec, _extras_without_messages()))
        return

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        # Outside Dagster `pipes` is a MagicMock whose extras are not a dict.
        extras = dict(pipes.extras) if isinstance(pipes.extras, dict) else {}
        result = run_training(spec_from(args.spec, extras), log=pipes.log.info)
        pipes.report_custom_message(result.model_dump(mode="json"))


if __name__ == "__main__":
    main()
