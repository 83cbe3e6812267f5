"""lm-evaluation-harness on an already loaded checkpoint (HFLM over the PeftModel).

Shipped tasks (`tasks/*.yaml`) read local JSONL files; the YAML is rendered into the
run's work dir with the absolute data path (lm-eval resolves relative `data_files`
against the CWD), and a TaskManager indexes only that folder (fast). A task name
that is not shipped (e.g. `gsm8k` in the paper profile) is taken from lm-eval's own
task index. Each task's results and per-sample records are cached under
`<work_dir>/lm_eval/<key>/`, so an unchanged task makes no forward pass.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ual_dagster import versions
from ual_dagster.config import resolve_path
from ual_dagster.config.evaluation import GenerationConfig, LmEvalTaskConfig
from ual_dagster.evaluation.eval_data import EvalData
from ual_dagster.evaluation.models import CheckpointHandle
from ual_dagster.evaluation.scores import STDERR_FROM_ITEMS, ItemScore, ScoreRow, clean_number, mean_and_stderr
from ual_dagster.fingerprint import stable_hash
from ual_dagster.jsonl import iter_json_objects
from ual_dagster.progress import EVERY_S, Log, Progress
from ual_dagster.storage import ArtifactStore
from ual_dagster.train.prompts import render_prompt

TASKS_DIR = Path(__file__).parent / "tasks"
DATA_PLACEHOLDER = "__UAL_DATA_FILE__"
LM_EVAL_TASKS_PLACEHOLDER = "__LM_EVAL_TASKS__"  # for `include:` of a built-in task
RESULTS_FILE = "results.json"
# lm-eval's own progress bar is tqdm on stderr, which the run's log never sees: the model wrapper
# below reports each batch instead, a line with an ETA at least this often (tests set it to 0)
PROGRESS_EVERY_S = EVERY_S


def shipped_tasks() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def validate_gsm8k_jsonl(path: Path) -> int:
    """Number of rows; raises naming the line when a row is not {question, answer}."""
    if not path.is_file():
        raise FileNotFoundError(f"gsm8k_local: data_path {path} does not exist")
    n = 0
    for lineno, row in iter_json_objects(path):
        if not isinstance(row.get("question"), str) or not isinstance(row.get("answer"), str):
            raise ValueError(f"{path}:{lineno}: expected an object with string fields 'question' and 'answer'")
        n += 1
    if n == 0:
        raise ValueError(f"{path}: no rows")
    return n


def export_testbed_exact(eval_data: EvalData, dataset: str, prompt_template: str, path: Path) -> int:
    """Write the held-out single-answer items as {sample_id, prompt, answer} JSONL."""
    items = eval_data.dataset(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for it in items:
            answer = it.valid_answers[0] if len(it.valid_answers) == 1 else it.output
            prompt = render_prompt(it.instruction, it.input, prompt_template)
            fh.write(
                json.dumps({"sample_id": it.sample_id, "prompt": prompt, "answer": answer}, ensure_ascii=False) + "\n"
            )
    return len(items)


def render_task_yaml(task: str, data_file: Path, out_dir: Path) -> Path:
    """The shipped task YAML with its data path and lm-eval's tasks folder made absolute,
    written into `out_dir`."""
    from lm_eval import tasks as lm_tasks

    text = (TASKS_DIR / f"{task}.yaml").read_text(encoding="utf-8")
    text = text.replace(DATA_PLACEHOLDER, str(data_file.resolve()))
    text = text.replace(LM_EVAL_TASKS_PLACEHOLDER, str(Path(lm_tasks.__file__).parent))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{task}.yaml"
    out.write_text(text, encoding="utf-8")
    return out


# Shipped tasks that `include:` an lm-eval built-in task and change only its prompt and filters.
UPSTREAM_INCLUDE_TASKS = {"gsm8k_ual": "gsm8k/gsm8k.yaml"}


def render_include_task(
    task: str, prompt_template: str, data_file: Path | None, out_dir: Path, revision: str | None = None
) -> Path:
    """The shipped task with its `include:` made absolute, `doc_to_text` in the training
    template and, for offline runs, the data set pointed at a local JSONL; otherwise the
    hub data set is read at `revision` (dataset_kwargs, passed to datasets.load_dataset)."""
    import yaml
    from lm_eval import tasks as lm_tasks

    cfg = yaml.safe_load((TASKS_DIR / f"{task}.yaml").read_text(encoding="utf-8"))
    cfg["include"] = str(Path(lm_tasks.__file__).parent / UPSTREAM_INCLUDE_TASKS[task])
    cfg["doc_to_text"] = render_prompt("{{question}}", "", prompt_template)
    if data_file is not None:
        path = str(data_file.resolve())
        cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": {"test": path, "train": path}})
    elif revision:  # upstream's hub data set, at the pinned commit
        cfg["dataset_kwargs"] = {**(cfg.get("dataset_kwargs") or {}), "revision": revision}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{task}.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


# lm-eval built-in tasks whose YAML is known without indexing lm-eval's whole task tree.
BUILTIN_TASK_YAML = {"gsm8k": "gsm8k/gsm8k.yaml"}


def builtin_task_yaml(task: str) -> Path:
    """The YAML file of an lm-eval built-in task."""
    from lm_eval import tasks as lm_tasks

    if task in BUILTIN_TASK_YAML:
        return Path(lm_tasks.__file__).parent / BUILTIN_TASK_YAML[task]
    entry = lm_tasks.TaskManager(include_defaults=True).task_index.get(task)
    if not entry or not str(entry.get("yaml_path", "")).endswith((".yaml", ".yml")):
        raise ValueError(f"lm_eval task {task!r} is not an lm-eval task defined by one YAML file; cannot pin its data")
    return Path(entry["yaml_path"])


def render_pinned_builtin_task(task: str, revision: str, out_dir: Path) -> Path:
    """An lm-eval built-in task unchanged (same name, prompt, metric) except that its hub
    data set is read at `revision`: `include:` of upstream's YAML plus dataset_kwargs."""
    import yaml

    upstream = yaml.safe_load(builtin_task_yaml(task).read_text(encoding="utf-8")) or {}
    kwargs = {**(upstream.get("dataset_kwargs") or {}), "revision": revision}
    cfg = {"include": str(builtin_task_yaml(task)), "task": task, "dataset_kwargs": kwargs}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{task}.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def results_to_rows(results: dict[str, Any], task: str) -> list[ScoreRow]:
    """lm-eval's `results[task]` as rows: one per '<metric>,<filter>' key, with its stderr."""
    per_task = results["results"][task]
    n = results.get("n-samples", {}).get(task, {}).get("effective")
    rows = []
    for key, value in sorted(per_task.items()):
        if "," not in key or "_stderr," in key:
            continue  # 'alias', 'name', 'sample_len' and the stderr keys themselves
        metric, filt = key.split(",", 1)
        stderr = per_task.get(f"{metric}_stderr,{filt}")
        rows.append(ScoreRow(benchmark=task, metric=key, value=clean_number(value), stderr=clean_number(stderr), n=n))
    return rows


def doc_item_id(doc: dict[str, Any]) -> str:
    """The item's stable id: the testbed's sample_id, else a content hash of the document
    (e.g. a GSM8K question and answer), identical for every checkpoint."""
    sid = doc.get("sample_id")
    return str(sid) if sid else stable_hash("lm-eval-doc", doc)


def samples_to_items(task: str, samples: Sequence[dict[str, Any]]) -> list[ItemScore]:
    """One ItemScore per (logged sample, metric): lm-eval logs a record per document and
    filter, with each metric's per-document value under the metric's name."""
    items = []
    for rec in samples:
        item_id = doc_item_id(rec.get("doc") or {})
        for metric in rec.get("metrics", []):
            items.append(ItemScore(task, item_id, f"{metric},{rec['filter']}", clean_number(rec.get(metric))))
    return items


def fill_stderr_from_items(rows: Sequence[ScoreRow], items: Sequence[ItemScore]) -> list[ScoreRow]:
    """Give a row without lm-eval's stderr (bootstrap_iters = 0) the sd/sqrt(n) of its items,
    where the row is their mean (mean-aggregated metrics such as exact_match)."""
    out = []
    for row in rows:
        values = [i.value for i in items if i.metric == row.metric and i.value is not None]
        mean, se = mean_and_stderr(values)
        if row.stderr is None and se is not None and row.value is not None and abs(mean - row.value) <= 1e-9:
            row = ScoreRow(
                row.benchmark, row.metric, row.value, se, row.n, {**row.details, "stderr": STDERR_FROM_ITEMS}
            )
        out.append(row)
    return out


@dataclass
class LmEvalTaskResult:
    task: str
    rows: list[ScoreRow]
    artifact_dir: Path
    cache_hit: bool
    seconds: float
    items: list[ItemScore] = field(default_factory=list)


@dataclass
class LmEvalResult:
    tasks: list[LmEvalTaskResult] = field(default_factory=list)

    @property
    def rows(self) -> list[ScoreRow]:
        return [r for t in self.tasks for r in t.rows]

    @property
    def items(self) -> list[ItemScore]:
        return [i for t in self.tasks for i in t.items]


def _read_samples(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"lm-eval per-sample records {path} are missing from a finished artifact")
    return [rec for _, rec in iter_json_objects(path)]


def _prepare_data(task: LmEvalTaskConfig, eval_data: EvalData, prompt_template: str, data_dir: Path) -> Path | None:
    if task.name == "gsm8k_local":
        if not task.data_path:
            raise ValueError("lm_eval task gsm8k_local needs 'data_path' (a JSONL of {question, answer})")

        path = resolve_path(task.data_path)
        validate_gsm8k_jsonl(path)
        return path
    if task.name in UPSTREAM_INCLUDE_TASKS:
        if not task.data_path:
            return None  # upstream's hub data set

        path = resolve_path(task.data_path)
        validate_gsm8k_jsonl(path)
        return path
    if task.name == "testbed_exact_heldout":
        path = data_dir / f"testbed_exact_heldout-{task.dataset}.jsonl"
        export_testbed_exact(eval_data, task.dataset, prompt_template, path)
        return path
    if task.name in shipped_tasks():
        raise ValueError(f"shipped lm_eval task {task.name!r} has no data preparation")
    return None  # an lm-eval built-in task, which loads its own data


def run_lm_eval(
    handle: CheckpointHandle,
    checkpoint_fp: str,
    tasks: Sequence[LmEvalTaskConfig],
    eval_data: EvalData,
    generation: GenerationConfig,
    work_dir: str | Path,
    prompt_template: str = "alpaca",
    bootstrap_iters: int = 0,
    log: Log = None,
) -> LmEvalResult:
    work_dir = Path(work_dir)
    artifacts = ArtifactStore(work_dir)
    out = LmEvalResult()
    for task in tasks:
        t0 = time.perf_counter()
        data_file = _prepare_data(task, eval_data, prompt_template, work_dir / "lm_eval_data")
        key = stable_hash(
            versions.LM_EVAL,
            checkpoint_fp,
            # an unset revision keeps the key of runs before the field existed
            task.model_dump(mode="json", exclude={"revision"} if task.revision is None else None),
            _task_data_sha(task.name, data_file),
            generation.max_new_tokens,
            generation.batch_size,
            bootstrap_iters,
            prompt_template,
        )
        adir = artifacts.path("lm_eval", key)
        if artifacts.is_finished("lm_eval", key):
            rows = [ScoreRow(**r) for r in json.loads((adir / RESULTS_FILE).read_text())["rows"]]
            items = samples_to_items(task.name, _read_samples(adir / f"samples_{task.name}.jsonl"))
            rows = fill_stderr_from_items(rows, items)
            out.tasks.append(LmEvalTaskResult(task.name, rows, adir, True, round(time.perf_counter() - t0, 3), items))
            if log:
                log(f"lm-eval {task.name}: cached ({adir})")
            continue
        adir = artifacts.open("lm_eval", key)
        results = _simple_evaluate(handle, task, data_file, generation, adir, bootstrap_iters, log, prompt_template)
        rows = results_to_rows(results, task.name)
        samples = results.get("samples", {}).get(task.name, [])
        with (adir / f"samples_{task.name}.jsonl").open("w", encoding="utf-8") as fh:
            for rec in samples:
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        items = samples_to_items(task.name, _read_samples(adir / f"samples_{task.name}.jsonl"))
        (adir / RESULTS_FILE).write_text(
            json.dumps(
                {
                    "rows": [r.as_json() for r in rows],
                    "results": results["results"][task.name],
                    "n-samples": results.get("n-samples", {}).get(task.name),
                },
                indent=2,
                default=str,
            )
        )
        seconds = round(time.perf_counter() - t0, 3)
        artifacts.finish("lm_eval", key, {"task": task.name, "checkpoint": checkpoint_fp, "seconds": seconds})
        out.tasks.append(LmEvalTaskResult(task.name, fill_stderr_from_items(rows, items), adir, False, seconds, items))
        if log:
            log(f"lm-eval {task.name}: " + ", ".join(f"{r.metric}={r.value}" for r in rows) + f" ({seconds}s)")
    return out


def _task_data_sha(task: str, data_file: Path | None) -> str | None:
    """Cache-key part for a task's inputs; an include task's own YAML counts too."""
    data = _file_sha(data_file) if data_file else None
    if task in UPSTREAM_INCLUDE_TASKS:
        return f"{_file_sha(TASKS_DIR / f'{task}.yaml')}:{data}"
    return data


def _simple_evaluate(
    handle: CheckpointHandle,
    task: LmEvalTaskConfig,
    data_file: Path | None,
    generation: GenerationConfig,
    adir: Path,
    bootstrap_iters: int,
    log: Log,
    prompt_template: str = "alpaca",
) -> dict[str, Any]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if task.name in UPSTREAM_INCLUDE_TASKS:
        render_include_task(task.name, prompt_template, data_file, adir / "tasks", revision=task.revision)
        manager = TaskManager(include_path=str(adir / "tasks"), include_defaults=False)
    elif data_file is not None:
        render_task_yaml(task.name, data_file, adir / "tasks")
        manager = TaskManager(include_path=str(adir / "tasks"), include_defaults=False)
    elif task.revision:  # a built-in task, its hub data set pinned
        render_pinned_builtin_task(task.name, task.revision, adir / "tasks")
        manager = TaskManager(include_path=str(adir / "tasks"), include_defaults=False)
    else:
        if log:
            log(f"lm-eval {task.name}: not a shipped task, indexing lm-eval's built-in tasks")
        manager = TaskManager(include_defaults=True)
    loaded = handle.get()
    # add_bos_token: contexts start with bos, as in training (whatever the tokenizer's post-processor does).
    # revision: the base model's pinned hub revision, recorded by lm-eval as model_revision
    # (the weights were loaded at it by the handle; lm-eval loads nothing itself here).
    lm = _progress_lm(HFLM)(
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=generation.batch_size,
        add_bos_token=True,
        revision=getattr(handle, "revision", None) or "main",
        progress_label=f"lm-eval {task.name}",
        progress_log=log,
    )
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task.name],
        task_manager=manager,
        num_fewshot=task.num_fewshot or None,
        limit=task.limit,
        bootstrap_iters=bootstrap_iters,
        gen_kwargs={"max_gen_toks": generation.max_new_tokens},
        log_samples=True,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    if results is None or task.name not in results.get("results", {}):
        raise RuntimeError(f"lm-eval returned no results for task {task.name!r}")
    return results


def _progress_lm(hflm: type) -> type:
    """`hflm` (lm-eval's HFLM, imported only where lm-eval runs) reporting its progress to `log`:
    each request type lm-eval asks for (generate_until, loglikelihood, loglikelihood_rolling) is
    one Progress over its requests, advanced by every batch the model runs, with a heartbeat
    line (and its ETA) at least every PROGRESS_EVERY_S seconds. lm-eval's own tqdm bar (stderr
    only) is switched off: these lines replace it."""

    class ProgressHFLM(hflm):
        def __init__(self, *args: Any, progress_label: str, progress_log: Log, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._progress_label, self._progress_log = progress_label, progress_log
            self._progress: Progress | None = None

        def _tracked(self, what: str, requests: Sequence[Any], run: Any) -> Any:
            if self._progress_log is None:
                return run()
            total = len(requests)
            label = f"{self._progress_label} {what}"
            with Progress(label, total, self._progress_log, unit="requests", every_s=PROGRESS_EVERY_S) as progress:
                self._progress = progress
                try:
                    out = run()
                finally:
                    self._progress = None
                progress.update(total)  # the last line says done
            return out

        def _advance(self, rows: int) -> None:
            progress = self._progress
            if progress is not None:  # batches can outnumber requests (rolling windows): done only at the end
                progress.update(min(progress.done + rows, max(0, progress.total - 1)))

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return self._tracked("generate", requests, lambda: super(ProgressHFLM, self).generate_until(requests, True))

        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return self._tracked(
                "loglikelihood", requests, lambda: super(ProgressHFLM, self).loglikelihood(requests, True)
            )

        def loglikelihood_rolling(self, requests: Any, disable_tqdm: bool = False) -> Any:
            run = lambda: super(ProgressHFLM, self).loglikelihood_rolling(requests, True)  # noqa: E731
            return self._tracked("loglikelihood_rolling", requests, run)

        def _model_generate(self, context: Any, max_length: int, stop: list[str], **kwargs: Any) -> Any:
            out = super()._model_generate(context, max_length, stop, **kwargs)
            self._advance(int(context.shape[0]))
            return out

        def _model_call(self, inps: Any, attn_mask: Any = None, labels: Any = None) -> Any:
            out = super()._model_call(inps, attn_mask, labels)
            self._advance(int(inps.shape[0]))
            return out

    return ProgressHFLM
