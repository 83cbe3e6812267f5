"""`python -m ual_dagster.train.pipes_entry [--spec spec.json]`: training under Dagster Pipes.

The spec (a run.TrainSpec as JSON) comes from `--spec` or, without it, from the Pipes
extra "train_spec" (e.g. PipesK8sClient(...).run(extras={"train_spec": spec.to_json()})).
An optional extra "data_version" (the checkpoint fingerprint) is reported as the
materialization's data version. Logs and the final metadata stream back to Dagster;
outside Dagster the Pipes context is a no-op and this is a plain training script.

Under `accelerate launch` only the main process (RANK 0) talks to Dagster, so messages
are not duplicated; the other processes read the spec from `--spec`.
"""

from __future__ import annotations

import argparse
import os

from ual_dagster.train.run import TrainSpec, run_training

SPEC_EXTRA = "train_spec"
DATA_VERSION_EXTRA = "data_version"


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def materialization_metadata(result) -> dict:
    """Small JSON-able summary of a TrainResult for the Dagster UI."""
    return {
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="path of a TrainSpec JSON file (default: the Pipes extra 'train_spec')")
    args = parser.parse_args(argv)

    if not _is_main_process():
        if not args.spec:
            raise SystemExit("pipes_entry: processes other than RANK 0 need --spec")
        run_training(TrainSpec.load(args.spec))
        return

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        if args.spec:
            spec = TrainSpec.load(args.spec)
        else:
            raw = pipes.get_extra(SPEC_EXTRA)
            spec = TrainSpec.from_json(raw)
        result = run_training(spec, log=pipes.log.info)
        extras = pipes.extras if isinstance(pipes.extras, dict) else {}
        pipes.report_asset_materialization(
            metadata=materialization_metadata(result), data_version=extras.get(DATA_VERSION_EXTRA)
        )


if __name__ == "__main__":
    main()
