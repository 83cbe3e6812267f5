"""One checkpoint's evaluation or token clustering as a job: a spec file in, a result file out.

The same `run_eval_job(spec)` runs in the Dagster step's process (launcher in_process) or,
through `python -m ual_dagster.evaluation.job_entry`, in a local subprocess, a Kubernetes
pod or a Slurm job. Either way it reads only files (the base model, the adapter, the
held-out items exported by `write_eval_data`) and writes only files under the state folder:
caches keyed by content and its result JSON. The Dagster step turns the result into DuckDB
rows; a job never opens DuckDB (docs/deployment.md, "Who writes").
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from ual_dagster.cluster.job_entry import JobSpec
from ual_dagster.config.evaluation import EvaluationConfig
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.scores import ItemScore, ScoreRow
from ual_dagster.progress import Log
from ual_dagster.storage.files import atomic_write_text

SPEC_FILE = "job_spec.json"
RESULT_FILE = "job_result.json"


class EvalJobSpec(JobSpec):
    """What an evaluation job needs; crosses process, pod and node boundaries as JSON."""

    task: Literal["evaluate", "cluster"]
    base_path: str
    adapter_path: str | None
    checkpoint_fp: str
    evaluation: dict  # an EvaluationConfig as JSON
    eval_data_path: str  # held-out items, written by write_eval_data
    work_dir: str  # evaluate: the shared cache root (<artifacts>/evaluation); cluster: its artifact folder
    prompt_template: str = "alpaca"
    label: str | None = None
    result_path: str


def write_eval_data(data: EvalData, root: str | Path) -> Path:
    """The held-out items as one JSON file named by their content hash (written once)."""
    path = Path(root) / f"{data.fingerprint}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        items = {name: [asdict(it) for it in rows] for name, rows in data.items.items()}
        atomic_write_text(path, json.dumps(items, ensure_ascii=False, sort_keys=True))
    return path


def read_eval_data(path: str | Path) -> EvalData:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    data = EvalData(
        {
            name: [HeldoutItem(**{**it, "valid_answers": tuple(it["valid_answers"])}) for it in rows]
            for name, rows in raw.items()
        }
    )
    if Path(path).stem != data.fingerprint:
        raise ValueError(f"{path}: its items hash to {data.fingerprint}, not to the file's name")
    return data


def run_eval_job(spec: EvalJobSpec, log: Log = None) -> dict[str, Any]:
    """Run the spec, write its result JSON atomically, and return it.

    The result: {"task", "fingerprint", "rows": [ScoreRow JSON], "items": [ItemScore JSON],
    "metadata"}; `result_from_json` reads it back.
    """
    cfg = EvaluationConfig.model_validate(spec.evaluation)
    data = read_eval_data(spec.eval_data_path)
    if spec.task == "evaluate":
        from ual_dagster.evaluation.checkpoint_eval import evaluate_checkpoint

        res = evaluate_checkpoint(
            spec.base_path,
            spec.adapter_path,
            spec.checkpoint_fp,
            cfg,
            data,
            spec.work_dir,
            log=log,
            prompt_template=spec.prompt_template,
        )
        fingerprint, rows, items, metadata = res.fingerprint, res.rows, res.items, res.metadata
    else:
        from ual_dagster.evaluation.clustering import ClusteringInputError, cluster_checkpoint

        try:
            res = cluster_checkpoint(
                spec.base_path,
                spec.adapter_path,
                spec.checkpoint_fp,
                cfg.clustering,
                data,
                spec.work_dir,
                device=cfg.device,
                prompt_template=spec.prompt_template,
                label=spec.label,
                log=log,
            )
        except ClusteringInputError as exc:  # bad probe data: a kept outcome, not a crash
            result = {"task": spec.task, "fingerprint": None, "rows": [], "items": [], "metadata": {}}
            result["input_error"] = str(exc)
            _write(spec.result_path, result)
            return result
        fingerprint, rows, items, metadata = res.fingerprint, res.rows, [], res.metadata
    result = {
        "task": spec.task,
        "fingerprint": fingerprint,
        "rows": [r.as_json() for r in rows],
        "items": [asdict(i) for i in items],
        "metadata": json.loads(json.dumps(metadata, default=str)),
    }
    _write(spec.result_path, result)
    return result


def _write(path: str | Path, result: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps(result, ensure_ascii=False))


def result_rows(result: dict[str, Any]) -> tuple[list[ScoreRow], list[ItemScore]]:
    """The score rows and per-item values of a job's result."""
    rows = [ScoreRow(**r) for r in result["rows"]]
    items = [ItemScore(**i) for i in result["items"]]
    return rows, items
