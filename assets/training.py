"""The "training" group: training_set_<scenario>, base_model and lora_<scenario>_<method>."""

import time

import dagster as dg

from assets.common import DATA_OR_CODE_CHANGED, code_version, finish, one_line_failure
from assets.keys import BASE_MODEL_KEY, PREFLIGHT_KEY, key_str, lora_key, training_set_key, uncertainty_key
from assets.launch import EngineJobsResource
from assets.resources import ArtifactStoreResource, DuckDBStoreResource
from ual_dagster import versions
from ual_dagster.config import Profile
from ual_dagster.config.training import InProcessLauncher, K8sLauncher, Launcher, MethodConfig, SubprocessLauncher
from ual_dagster.fingerprint import stable_hash
from ual_dagster.storage import StatePaths
from ual_dagster.train import base_model as bm
from ual_dagster.train import checkpoints
from ual_dagster.train.corpus import pretraining_texts
from ual_dagster.train.entry_points import TRAIN_ENTRY
from ual_dagster.train.k8s import k8s_pod_spec, pod_command
from ual_dagster.train.records import TrainResult
from ual_dagster.train.training_sets import build_training_set
from ual_dagster.train.versioning import data_parallel, effective_training_config, result_config


def _training_set_asset(profile: Profile, scenario: str) -> dg.AssetsDefinition:
    cfg = profile.scenarios[scenario]
    key = training_set_key(scenario)
    datasets = sorted(cfg.weights)

    @dg.asset(
        key=key,
        group_name="training",  # it reads elicited scores: in "data" the group graph would loop back
        kinds={"duckdb"},
        deps=[uncertainty_key(d) for d in datasets],
        code_version=code_version(versions.TRAINING_SETS, cfg),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="duckdb",
        description=f"Scenario {scenario!r}: a seeded selection of {cfg.size} train-split samples with an ok "
        f"uncertainty score, mixed from {datasets} by the profile's weights (DuckDB table `training_sets`). "
        + (
            "A data set with fewer rows than its share gives all it has (allow_short)."
            if cfg.allow_short
            else "A data set with fewer rows than its share fails this asset, naming both counts."
        ),
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource) -> dg.MaterializeResult:
        store = duckdb.store()
        upstream = {d: store.require_version(key_str(uncertainty_key(d))) for d in datasets}
        with one_line_failure():  # e.g. a data set with fewer rows than the scenario's share of it
            result = build_training_set(scenario, cfg, profile, store, upstream, log=context.log.info)
        return finish(store, key, result.fingerprint, result.metadata, config=cfg)

    return _asset


def base_model_asset(profile: Profile) -> dg.AssetsDefinition:

    cfg = profile.base_model

    @dg.asset(
        key=BASE_MODEL_KEY,
        group_name="training",
        kinds={"pytorch"},
        deps=[PREFLIGHT_KEY],  # the hub download is the first external need
        code_version=code_version(versions.BASE_MODEL, cfg),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool="train",
        description=(
            "The base model: built and pre-trained locally (tiny profile: tokenizer + small Llama on a "
            "testbed corpus) or resolved from a hub id and revision."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext, duckdb: DuckDBStoreResource, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        store, arts = duckdb.store(), artifacts.store()
        texts = pretraining_texts(profile) if cfg.source == "build_tiny" else []
        result = bm.build_base_model(cfg, texts, arts, log=context.log.info)
        checkpoints.record_base_model(store, result.fingerprint, str(result.path), cfg.source)
        meta = {"path": str(result.path), **result.metadata}
        return finish(store, BASE_MODEL_KEY, result.fingerprint, meta, config=cfg, reused=bool(meta.get("reused")))

    return _asset


def _lora_asset(profile: Profile, scenario: str, method: str) -> dg.AssetsDefinition:

    method_cfg: MethodConfig = profile.methods[method]
    train_cfg = effective_training_config(profile.training, method_cfg)
    seeds = list(profile.experiment.seeds)
    # a matched LS control reads the UAL method it matches: its config is part of this variant's
    matched = profile.methods[method_cfg.match] if method_cfg.match else None
    key = lora_key(scenario, method)
    # launcher k8s: the pod mounts the state folder of the profile these definitions are built from
    pod_spec = training_pod_spec(profile, train_cfg.launcher)

    @dg.asset(
        key=key,
        group_name="training",
        kinds={"pytorch", "peft"},
        deps=[training_set_key(scenario), BASE_MODEL_KEY],
        # the fields that change the weights (as in the checkpoint fingerprint): not the launcher
        code_version=code_version(versions.LORA, result_config(train_cfg), method_cfg, matched, seeds),
        automation_condition=DATA_OR_CODE_CHANGED,
        pool=compute_pool(train_cfg.launcher),
        description=f"LoRA adapters for scenario {scenario!r} trained with method {method!r} "
        f"({method_cfg.kind}), one per seed {seeds}; each directory is named by the fingerprint of its inputs "
        "(seed included), reused when unchanged, resumed from its last checkpoint after a crash.",
        metadata={"training_pod": dg.MetadataValue.json(pod_spec)} if pod_spec else None,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        duckdb: DuckDBStoreResource,
        artifacts: ArtifactStoreResource,
        engine_jobs: EngineJobsResource,
    ) -> dg.MaterializeResult:
        store, arts = duckdb.store(), artifacts.store()
        base_fp = store.require_version(key_str(BASE_MODEL_KEY))
        per_seed: dict[str, dict] = {}
        fps: dict[int, str] = {}
        eps_mean: dict[int, float] = {}
        trained = 0
        for seed in seeds:
            plan = checkpoints.plan_checkpoint(
                store,
                arts,
                scenario=scenario,
                method=method,
                methods=profile.methods,
                train_cfg=train_cfg,
                base_fp=base_fp,
                seed=seed,
            )
            fps[seed], eps_mean[seed] = plan.fingerprint, plan.eps_summary["eps_mean"]
            if plan.finished:
                context.log.info(f"lora {scenario}/{method} seed {seed}: {plan.fingerprint} already trained, reusing")
                per_seed[str(seed)] = {"checkpoint": plan.fingerprint, "reused": True, **plan.reuse_metadata()}
                continue
            started = time.perf_counter()
            result, job = _launch(context, plan, plan.train_cfg.launcher, pod_spec, engine_jobs)
            seconds = round(time.perf_counter() - started, 2)
            meta = checkpoints.complete_checkpoint(store, arts, plan, result, seconds=seconds)
            per_seed[str(seed)] = {
                "checkpoint": plan.fingerprint,
                "reused": False,
                **meta,
                **({"job": job} if job else {}),
            }
            trained += 1
        checkpoints.record_variant_checkpoints(store, scenario, method, fps)
        fingerprint = stable_hash("lora-variant", sorted(fps.items()))
        first = per_seed[str(seeds[0])]
        meta = {
            "seeds": seeds,
            "trained": trained,
            "checkpoints": {s: v["checkpoint"] for s, v in per_seed.items()},
            "eps_mean": first.get("eps_mean", eps_mean[seeds[0]]),
            "per_seed": {
                s: {k: v for k, v in m.items() if k not in ("eps_histogram", "loss_curve")} for s, m in per_seed.items()
            },
        }
        for extra in ("eps_histogram", "loss_curve"):
            if extra in first:
                meta[f"{extra}_seed_{seeds[0]}"] = first[extra]
        return finish(store, key, fingerprint, meta, config=[train_cfg, method_cfg], reused=trained == 0)

    return _asset


def compute_pool(launcher: Launcher) -> str | None:
    """The pool of a step whose heavy work runs where `launcher` says: `train` (this machine's
    cores or GPUs, one step at a time by default) for in_process and subprocess; none for a
    cluster launcher, whose scheduler decides what runs, so up to orchestration.max_concurrent
    jobs are queued at once. Such a step writes DuckDB only after its job, in short
    transactions, from the one run worker (docs/deployment.md, "Who writes")."""
    return "train" if isinstance(launcher, InProcessLauncher | SubprocessLauncher) else None


def training_pod_spec(profile: Profile, launcher: Launcher) -> dict | None:
    """The pod a k8s launcher trains in, mounting `profile`'s state folder; None for local launchers."""
    if not isinstance(launcher, K8sLauncher):
        return None
    return k8s_pod_spec(launcher, StatePaths.for_profile(profile).state_dir)


def _launch(
    context: dg.AssetExecutionContext,
    plan: checkpoints.CheckpointPlan,
    launcher: Launcher,
    pod_spec: dict | None,
    engine_jobs: EngineJobsResource,
):
    """Run the training where the profile says: in this process, or as an engine job (a local
    subprocess, a Kubernetes pod, a Slurm job) through Dagster Pipes, which runs
    `python -m ual_dagster.train.pipes_entry` and reports the TrainResult; (result, job metadata)."""
    from ual_dagster.train.run import run_training  # torch: loaded only by a step that trains here

    if isinstance(launcher, InProcessLauncher):
        return run_training(plan.spec, log=context.log.info), {}
    payload, job = engine_jobs.run(
        context,
        launcher,
        step="train",
        fingerprint=plan.fingerprint,
        module=TRAIN_ENTRY,
        spec_path=plan.write_spec(),
        work_dir=plan.out_dir,
        pod_spec=pod_spec,
        pod_command=pod_command(launcher) if isinstance(launcher, K8sLauncher) else None,
        num_processes=_processes(launcher),
    )
    return TrainResult.model_validate(payload), job


def _processes(launcher: Launcher) -> int:
    """The processes an engine job starts (the data-parallel count of its checkpoint's fingerprint)."""
    processes = data_parallel(launcher)
    if processes == "all local GPUs":
        import torch  # only a step that starts a local multi-GPU job counts GPUs

        return max(torch.cuda.device_count(), 1)
    return int(processes)


def training_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return (
        [_training_set_asset(profile, s) for s in profile.scenarios]
        + [base_model_asset(profile)]
        + [_lora_asset(profile, s, m) for s in profile.scenarios for m in profile.methods]
    )
