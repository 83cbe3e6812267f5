"""Everything configured for one checkpoint: lm-eval tasks and AlpacaEval, one model load."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ual_dagster import versions
from ual_dagster.config.evaluation import EvaluationConfig
from ual_dagster.evaluation.alpaca import run_alpaca_eval
from ual_dagster.evaluation.eval_data import EvalData
from ual_dagster.evaluation.lm_eval_runner import run_lm_eval
from ual_dagster.evaluation.models import CheckpointHandle
from ual_dagster.evaluation.scores import ItemScore, ScoreRow
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log

# v2: per-item results, testbed_likelihood, exact match stderr from items, no discrete_win_rate


@dataclass
class EvalResult:
    """A checkpoint's aggregate rows and the per-item values they are computed from.

    `items` pair up across checkpoints by (benchmark, item_id, metric); every row except
    alpaca_eval's length_controlled_winrate (a regression over items, not a mean) is
    the mean of its items' non-None values.
    """

    fingerprint: str
    rows: list[ScoreRow]
    metadata: dict[str, Any] = field(default_factory=dict)
    items: list[ItemScore] = field(default_factory=list)


def evaluation_fingerprint(checkpoint_fp: str, cfg: EvaluationConfig, eval_data: EvalData, prompt_template: str) -> str:
    """hash(code version, checkpoint, evaluation config, evaluation data); names the eval_scores rows."""
    # The clustering section is read by token_clustering, not here.
    cfg_slice = cfg.model_dump(mode="json", exclude={"clustering"})
    return stable_hash(versions.EVALUATION, checkpoint_fp, cfg_slice, eval_data.fingerprint, prompt_template)


def evaluate_checkpoint(
    base_path: str | Path,
    adapter_path: str | Path | None,
    checkpoint_fp: str,
    cfg: EvaluationConfig,
    eval_data: EvalData,
    work_dir: str | Path,
    log: Log = None,
    prompt_template: str = "alpaca",
) -> EvalResult:
    """Run the configured lm-eval tasks and AlpacaEval; every stage is cached under `work_dir`.

    `work_dir` is a root shared by all checkpoints (e.g. `<artifacts>/evaluation`):
    generations, lm-eval results and judge annotations are stored under it by their
    own keys, so a re-run with nothing changed loads no model and makes no forward pass.
    """
    t0 = time.perf_counter()
    fp = evaluation_fingerprint(checkpoint_fp, cfg, eval_data, prompt_template)
    rows: list[ScoreRow] = []
    items: list[ItemScore] = []
    metadata: dict[str, Any] = {"eval_fingerprint": fp, "checkpoint": checkpoint_fp}
    with CheckpointHandle(base_path, adapter_path, cfg.device, log) as handle:
        if cfg.lm_eval:
            lm = run_lm_eval(
                handle,
                checkpoint_fp,
                cfg.lm_eval,
                eval_data,
                cfg.generation,
                work_dir,
                prompt_template,
                cfg.bootstrap_iters,
                log,
            )
            rows += lm.rows
            items += lm.items
            metadata["lm_eval_cached_tasks"] = [t.task for t in lm.tasks if t.cache_hit]
            metadata["lm_eval_samples"] = {t.task: str(t.artifact_dir / f"samples_{t.task}.jsonl") for t in lm.tasks}
        if cfg.alpaca_eval is not None:
            ae = run_alpaca_eval(
                handle,
                checkpoint_fp,
                cfg.alpaca_eval,
                eval_data,
                cfg.generation,
                work_dir,
                prompt_template,
                generator_name=checkpoint_fp,
                log=log,
            )
            rows += ae.rows
            items += ae.items
            metadata.update(ae.metadata)
            metadata["alpaca_eval_cache_hit"] = ae.cache_hit
            metadata["alpaca_eval_dir"] = str(ae.artifact_dir)
        if cfg.answer_likelihood is not None:
            from ual_dagster.evaluation.answer_likelihood import run_answer_likelihood

            lk = run_answer_likelihood(
                handle, checkpoint_fp, cfg.answer_likelihood, eval_data, work_dir, prompt_template, log
            )
            rows += lk.rows
            items += lk.items
            metadata["answer_likelihood_cache_hit"] = lk.cache_hit
            metadata["answer_likelihood_seconds"] = lk.seconds
        metadata["model_loaded"] = handle.is_loaded
        metadata["model_load_seconds"] = handle.load_seconds
    metadata["seconds"] = round(time.perf_counter() - t0, 3)
    metadata["scores"] = {f"{r.benchmark}/{r.metric}": r.value for r in rows}
    return EvalResult(fp, rows, metadata, items)
