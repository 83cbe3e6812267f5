"""`python -m ual_dagster.train.pipes_entry [--spec spec.json]`: training under Dagster Pipes.

The spec (a run.TrainSpec) comes from `--spec`, else from the Pipes extras: "spec_path"
(a JSON file on a volume the process sees) or "train_spec" (the spec inline), e.g.
PipesK8sClient().run(..., extras={"spec_path": "/state/.../train_spec.json"}).
An optional extra "data_version" (the checkpoint fingerprint) is reported as the
materialization's data version. Logs and the final metadata stream back to Dagster;
outside Dagster the Pipes context is a no-op and this is a plain training script.

Under `accelerate launch` only the main process (RANK 0) opens Pipes and talks to
Dagster, so messages are not duplicated; the other processes only read the extras.
"""

from __future__ import annotations

import argparse
import os

from ual_dagster.train.run import TrainSpec, run_training

SPEC_EXTRA = "train_spec"
SPEC_PATH_EXTRA = "spec_path"
DATA_VERSION_EXTRA = "data_version"


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


def materialization_metadata(result) -> dict:
    """Small summary of a TrainResult for the Dagster UI (dicts as Pipes JSON metadata)."""
    meta = {
        "steps": result.steps,
        "final_loss": result.final_loss,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "resumed_from_step": result.resumed_from_step,
        "adapter_path": result.adapter_path,
        "eps_mean": result.eps_stats["mean"],
        "eps_histogram": result.eps_stats["histogram"],
        "loss_curve": {str(r["step"]): round(r["loss"], 4) for r in result.curve},
        **{k: v for k, v in result.metadata.items() if k != "run_key"},
    }
    return {k: {"raw_value": v, "type": "json"} if isinstance(v, dict) else v for k, v in meta.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="path of a TrainSpec JSON file (default: the Pipes extra 'train_spec')")
    args = parser.parse_args(argv)

    if not _is_main_process():
        run_training(spec_from(args.spec, _extras_without_messages()))
        return

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        # Outside Dagster `pipes` is a MagicMock whose extras are not a dict.
        extras = dict(pipes.extras) if isinstance(pipes.extras, dict) else {}
        result = run_training(spec_from(args.spec, extras), log=pipes.log.info)
        pipes.report_asset_materialization(
            metadata=materialization_metadata(result), data_version=extras.get(DATA_VERSION_EXTRA)
        )


if __name__ == "__main__":
    main()
