"""AlpacaEval: generate a checkpoint's outputs for an instruction set, judge them against
reference outputs with `alpaca_eval.evaluate`, and report the win rate honestly.

Judges: `testbed` (deterministic, knows the valid answers, served over a loopback
OpenAI-compatible server so the real alpaca_eval path runs offline) or `alpaca_eval`
(a standard annotator such as weighted_alpaca_eval_gpt4_turbo, against OpenAI or any
OpenAI-compatible base_url). Items the judge returns no usable verdict for are
counted (`n_unjudged`) and excluded; if none is judged the evaluation raises.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from ual_dagster import versions
from ual_dagster.config import resolve_path
from ual_dagster.config.evaluation import (
    AlpacaEvalConfig,
    GenerationConfig,
    JudgeConfig,
)
from ual_dagster.evaluation.eval_data import EvalData
from ual_dagster.evaluation.judges.client_config import temporary_client_config
from ual_dagster.evaluation.judges.loopback_server import LoopbackServer
from ual_dagster.evaluation.judges.testbed_judge import TestbedJudge
from ual_dagster.evaluation.models import CheckpointHandle, cached_generate
from ual_dagster.evaluation.scores import ItemScore, ScoreRow, clean_number
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log
from ual_dagster.storage import ArtifactStore
from ual_dagster.storage.files import atomic_path
from ual_dagster.train.prompts import render_prompt

BENCHMARK = "alpaca_eval"
JUDGE_CONFIGS_DIR = Path(__file__).parent / "judge_configs"
TESTBED_ANNOTATOR = JUDGE_CONFIGS_DIR / "testbed_judge" / "configs.yaml"


class JudgeError(RuntimeError):
    """The judge produced no usable verdict at all."""


class AlpacaItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instruction: str  # the text the judge sees (instruction plus input, if any); unique per set
    prompt: str  # what the checkpoint is asked, in its training template
    reference: str
    valid_answers: tuple[str, ...] = ()
    item_id: str = ""  # stable across checkpoints: the held-out sample_id, else a hash of the instruction

    @model_validator(mode="before")
    @classmethod
    def _item_id_from_instruction(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("item_id"):
            data = {**data, "item_id": stable_hash("alpaca-instruction", data.get("instruction"))}
        return data


def item_win_scores(annotations: Any) -> dict[str, float | None]:
    """instruction -> that item's win score on the win-rate scale (100 model win, 50 draw,
    0 reference win, weighted preferences in between; None when unjudged), so that
    win_rate is the mean over the judged items (alpaca_eval's AbsoluteScoringRule)."""
    from alpaca_eval import utils

    df = utils.convert_to_dataframe(annotations)
    if df.empty:
        return {}
    if "preference" not in df:
        return {str(instruction): None for instruction in df["instruction"]}
    judged = _judged_mask(df["preference"])
    pref = pd.to_numeric(df["preference"], errors="coerce")
    return {
        str(instruction): 100.0 * ((1.5 if p == 0 else float(p)) - 1.0) if ok else None
        for instruction, ok, p in zip(df["instruction"], judged, pref)
    }


@dataclass
class JudgeResult:
    win_rate: float
    standard_error: float | None
    n_judged: int
    n_unjudged: int
    n_wins: int
    n_wins_base: int
    n_draws: int
    n_annotated: int  # judge calls made in this run (0 when every annotation came from the cache)
    length_controlled: float | None = None
    length_controlled_se: float | None = None
    length_controlled_reason: str | None = None  # why it was not computed
    annotations_path: Path | None = None
    item_scores: dict[str, float | None] = field(default_factory=dict)  # instruction -> win score (see item_win_scores)

    def rows(self, extra_details: dict[str, Any] | None = None) -> list[ScoreRow]:
        details = {
            "n_judged": self.n_judged,
            "n_unjudged": self.n_unjudged,
            "n_wins": self.n_wins,
            "n_wins_base": self.n_wins_base,
            "n_draws": self.n_draws,
            **(extra_details or {}),
        }
        # alpaca_eval's discrete_win_rate is not kept: with a judge that answers win/draw/loss
        # (the testbed judge) it equals win_rate.
        rows = [ScoreRow(BENCHMARK, "win_rate", self.win_rate, self.standard_error, self.n_judged, details)]
        if self.length_controlled is not None or self.length_controlled_reason is not None:
            rows.append(
                ScoreRow(
                    BENCHMARK,
                    "length_controlled_winrate",
                    self.length_controlled,
                    self.length_controlled_se,
                    self.n_judged if self.length_controlled is not None else None,
                    {"not_computed": self.length_controlled_reason} if self.length_controlled_reason else {},
                )
            )
        return rows


# -- instruction sets -----------------------------------------------------------------


def _dedupe(items: list[AlpacaItem]) -> tuple[list[AlpacaItem], int]:
    """AlpacaEval merges outputs on the instruction text, so each may appear once."""
    seen: dict[str, AlpacaItem] = {}
    for it in items:
        seen.setdefault(it.instruction, it)
    return list(seen.values()), len(items) - len(seen)


def load_reference_file(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"alpaca_eval reference file {path}: cannot read JSON ({exc})") from None
    if not isinstance(rows, list):
        raise ValueError(f"alpaca_eval reference file {path}: expected a JSON list of {{instruction, output}}")
    for i, row in enumerate(rows):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("instruction"), str)
            or not isinstance(row.get("output"), str)
        ):
            raise ValueError(f"alpaca_eval reference file {path}: row {i} lacks string 'instruction' and 'output'")
    return rows


def load_hub_references(cfg: AlpacaEvalConfig) -> list[dict[str, str]]:
    """The reference outputs as one JSON file of the hub data set. alpaca_eval's own loader
    (`constants.ALPACAEVAL_REFERENCE_OUTPUTS`) runs the data set's loading script, which
    datasets >= 4 refuses (alpaca_eval issue #454); the JSON files beside it need no script."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(cfg.hub_id, cfg.hub_file, repo_type="dataset", revision=cfg.hub_revision)
    return load_reference_file(path)


def build_eval_set(cfg: AlpacaEvalConfig, eval_data: EvalData, prompt_template: str) -> tuple[list[AlpacaItem], int]:
    """(items, number of duplicate instructions dropped)."""
    items: list[AlpacaItem] = []
    if cfg.instructions == "testbed_heldout":
        for name in cfg.datasets:
            for it in eval_data.dataset(name):
                text = f"{it.instruction}\n\n{it.input}" if it.input else it.instruction
                items.append(
                    AlpacaItem(
                        instruction=text,
                        prompt=render_prompt(it.instruction, it.input, prompt_template),
                        reference=it.output,
                        valid_answers=it.valid_answers or (it.output,),
                        item_id=it.sample_id,
                    )
                )
    else:
        if cfg.instructions == "file":
            if not cfg.path:
                raise ValueError("alpaca_eval.instructions 'file' needs alpaca_eval.path")

            refs = load_reference_file(resolve_path(cfg.path))
        else:
            refs = load_hub_references(cfg)
        items = [
            AlpacaItem(
                instruction=r["instruction"],
                prompt=render_prompt(r["instruction"], "", prompt_template),
                reference=r["output"],
            )
            for r in refs
        ]
    items, n_dup = _dedupe(items)
    if cfg.limit is not None:
        items = items[: cfg.limit]
    return items, n_dup


# -- judging --------------------------------------------------------------------------


def _judged_mask(pref: pd.Series) -> pd.Series:
    """A usable AlpacaEval preference: 0 (draw) or a value in [1, 2]."""
    p = pd.to_numeric(pref, errors="coerce")
    return p.notna() & ((p == 0) | ((p >= 1) & (p <= 2)))


def winrate_counting_unjudged(annotations: Any) -> dict[str, Any]:
    """alpaca_eval's get_winrate over the judged items, plus how many were not judged."""
    from alpaca_eval import metrics, utils

    df = utils.convert_to_dataframe(annotations)
    judged = _judged_mask(df["preference"]) if "preference" in df else pd.Series(False, index=df.index)
    n_unjudged = int((~judged).sum())
    if not judged.any():
        raise JudgeError(f"the judge returned no usable verdict for any of the {len(df)} items")
    out = metrics.get_winrate(df[judged].assign(preference=pd.to_numeric(df.loc[judged, "preference"])))
    out["n_unjudged"] = n_unjudged
    return out


class _AnnotationCounter(logging.Handler):
    """Counts 'Annotating N examples' from alpaca_eval's log (judge calls actually made)."""

    PATTERN = re.compile(r"Annotating (\d+) examples")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        m = self.PATTERN.search(record.getMessage())
        if m:
            self.n += int(m.group(1))


@contextmanager
def _count_annotations() -> Iterator[_AnnotationCounter]:
    root = logging.getLogger()
    counter = _AnnotationCounter()
    old_level = root.level
    root.addHandler(counter)
    root.setLevel(min(old_level or logging.WARNING, logging.INFO))
    try:
        yield counter
    finally:
        root.removeHandler(counter)
        root.setLevel(old_level)


def _annotator_config(judge: JudgeConfig, out_dir: Path) -> str:
    """A built-in annotator name, or a path to a copy whose model is replaced by `judge.model`."""
    if judge.model is None:
        return judge.annotator
    from alpaca_eval import constants

    src = Path(judge.annotator)
    if not src.is_file():
        src = Path(constants.EVALUATORS_CONFIG_DIR) / judge.annotator / "configs.yaml"
    raw = yaml.safe_load(src.read_text())
    ((name, body),) = raw.items()
    body["completions_kwargs"]["model_name"] = judge.model
    body["completions_kwargs"].setdefault("price_per_token", 0)
    template = Path(body["prompt_template"])
    if not template.is_absolute():
        body["prompt_template"] = str(src.parent.parent / template)
    dst = out_dir / "annotator" / f"{name}_{re.sub(r'[^A-Za-z0-9_.-]', '_', judge.model)}" / "configs.yaml"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump({name: body}))
    return str(dst)


def judge_outputs(
    model_outputs: Sequence[dict[str, str]],
    reference_outputs: Sequence[dict[str, str]],
    judge: JudgeConfig,
    out_dir: str | Path,
    valid_answers: dict[str, Sequence[str]] | None = None,
    testbed_responder: Any = None,
    log: Log = None,
) -> JudgeResult:
    """Run `alpaca_eval.evaluate` on fixed outputs; annotations are cached in `out_dir`.

    `valid_answers` (instruction -> answers) is required by the testbed judge;
    `testbed_responder` replaces its reply function (tests inject faults with it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    caching_path = out_dir / "annotations_cache.json"
    if judge.kind == "testbed":
        if valid_answers is None:
            raise ValueError("the testbed judge needs the valid answers of every instruction")
        respond = testbed_responder or TestbedJudge(valid_answers).respond
        with LoopbackServer(respond, model="ual-testbed-judge") as server:
            with temporary_client_config(server.api_key, server.base_url, judge.max_retries, judge.timeout_s) as cc:
                return _evaluate(
                    model_outputs, reference_outputs, str(TESTBED_ANNOTATOR), judge, cc, out_dir, caching_path, log
                )
    api_key = os.environ.get(judge.api_key_env)
    if not api_key:
        raise RuntimeError(f"judge {judge.annotator}: environment variable {judge.api_key_env} is not set")
    with temporary_client_config(api_key, judge.base_url, judge.max_retries, judge.timeout_s) as cc:
        return _evaluate(
            model_outputs, reference_outputs, _annotator_config(judge, out_dir), judge, cc, out_dir, caching_path, log
        )


def _evaluate(
    model_outputs: Sequence[dict[str, str]],
    reference_outputs: Sequence[dict[str, str]],
    annotator: str,
    judge: JudgeConfig,
    client_config: Path,
    out_dir: Path,
    caching_path: Path,
    log: Log,
) -> JudgeResult:
    from alpaca_eval import evaluate

    with _count_annotations() as counter:
        leaderboard, annotations = evaluate(
            model_outputs=list(model_outputs),
            reference_outputs=list(reference_outputs),
            annotators_config=annotator,
            output_path=str(out_dir),
            precomputed_leaderboard=None,
            is_cache_leaderboard=False,
            fn_metric=winrate_counting_unjudged,
            sort_by="win_rate",
            is_return_instead_of_print=True,
            caching_path=str(caching_path),
            annotation_kwargs={"client_config_path": str(client_config), "num_procs": judge.concurrency},
        )
    _forget_unjudged(caching_path)
    row = leaderboard.iloc[0]
    result = JudgeResult(
        win_rate=float(row["win_rate"]),
        standard_error=clean_number(row.get("standard_error")),
        n_judged=int(row["n_total"]),
        n_unjudged=int(row["n_unjudged"]),
        n_wins=int(row["n_wins"]),
        n_wins_base=int(row["n_wins_base"]),
        n_draws=int(row["n_draws"]),
        n_annotated=counter.n,
        annotations_path=out_dir / "annotations.json",
        item_scores=item_win_scores(annotations),
    )
    if judge.length_controlled:
        _add_length_controlled(result, annotations)
    if log:
        log(
            f"alpaca_eval: win rate {result.win_rate:.2f} ± {result.standard_error} over {result.n_judged} judged, "
            f"{result.n_unjudged} unjudged, {result.n_annotated} judge calls"
        )
    return result


def _forget_unjudged(caching_path: Path) -> None:
    """Drop failed annotations from the cache, so a later run asks the judge again for those only.

    (alpaca_eval caches a failed annotation as -1 and would otherwise never retry it;
    its own switch for this, is_store_missing_annotations=False, fails on an empty cache.)
    """
    if not caching_path.is_file():
        return
    cached = pd.read_json(caching_path, dtype=False)
    if cached.empty or "preference" not in cached:
        return
    keep = cached[_judged_mask(cached["preference"])]
    if len(keep) == len(cached):
        return
    if keep.empty:
        caching_path.unlink()
    else:
        with atomic_path(caching_path) as tmp:
            keep.to_json(tmp, orient="records", indent=2)


def _add_length_controlled(result: JudgeResult, annotations: Any) -> None:
    """LC win rate needs files from the Hugging Face hub; when it cannot run, say why."""
    try:
        from alpaca_eval import metrics, utils

        df = utils.convert_to_dataframe(annotations)
        lc = metrics.get_length_controlled_winrate(df[_judged_mask(df["preference"])])
        result.length_controlled = clean_number(lc["length_controlled_winrate"])
        result.length_controlled_se = clean_number(lc.get("lc_standard_error"))
        if result.length_controlled is None:
            result.length_controlled_reason = "get_length_controlled_winrate returned no finite value"
    except Exception as exc:  # noqa: BLE001 - any failure means "not computed", reported with its reason
        result.length_controlled_reason = f"{type(exc).__name__}: {str(exc)[:300]}"


# -- a checkpoint end to end -------------------------------------------------------------


@dataclass
class AlpacaEvalResult:
    rows: list[ScoreRow]
    artifact_dir: Path
    cache_hit: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    items: list[ItemScore] = field(default_factory=list)


def win_rate_items(items: Sequence[AlpacaItem], scores: dict[str, float | None]) -> list[ItemScore]:
    """Every evaluated item's win score (None when the judge gave no usable verdict)."""
    return [ItemScore(BENCHMARK, it.item_id, "win_rate", scores.get(it.instruction)) for it in items]


def _cached_item_scores(adir: Path, stored: dict[str, Any]) -> dict[str, float | None]:
    """Per-item win scores of a finished judge artifact: stored with its scores, or, for an
    artifact written before they were, re-read from the judge annotations it holds."""
    if "item_scores" in stored:
        return stored["item_scores"]
    found = sorted(adir.rglob("annotations.json"))
    if not found:
        raise FileNotFoundError(f"alpaca_eval artifact {adir} has neither per-item scores nor annotations.json")
    return item_win_scores(json.loads(found[0].read_text(encoding="utf-8")))


def run_alpaca_eval(
    handle: CheckpointHandle,
    checkpoint_fp: str,
    cfg: AlpacaEvalConfig,
    eval_data: EvalData,
    generation: GenerationConfig,
    work_dir: str | Path,
    prompt_template: str = "alpaca",
    generator_name: str = "checkpoint",
    log: Log = None,
) -> AlpacaEvalResult:
    """Generate (cached by checkpoint, generation config and prompts), then judge (cached)."""
    work_dir = Path(work_dir)
    t0 = time.perf_counter()
    items, n_dup = build_eval_set(cfg, eval_data, prompt_template)
    if not items:
        raise ValueError("alpaca_eval: the evaluation instruction set is empty")
    gen = cached_generate(handle, checkpoint_fp, [it.prompt for it in items], generation, work_dir / "generations", log)
    judge_key = stable_hash(
        versions.ALPACA_EVAL,
        gen.cache_key,
        # prices are plan's, not the judge's: a new price never re-judges (and pays) again
        cfg.model_dump(
            mode="json", exclude={"judge": {"price_per_1k_prompt_tokens", "price_per_1k_completion_tokens"}}
        ),
        [(it.instruction, it.reference, it.valid_answers) for it in items],
    )
    artifacts = ArtifactStore(work_dir)
    adir = artifacts.path("alpaca_eval", judge_key)
    if artifacts.is_finished("alpaca_eval", judge_key):
        stored = json.loads((adir / "scores.json").read_text())
        rows = [ScoreRow(**r) for r in stored["rows"] if r["metric"] != "discrete_win_rate"]
        items_out = win_rate_items(items, _cached_item_scores(adir, stored))
        return AlpacaEvalResult(rows, adir, True, stored["metadata"], items_out)
    adir = artifacts.open("alpaca_eval", judge_key)
    model_outputs = [
        {"instruction": it.instruction, "output": out, "generator": generator_name}
        for it, out in zip(items, gen.outputs)
    ]
    references = [{"instruction": it.instruction, "output": it.reference, "generator": "reference"} for it in items]
    valid = {it.instruction: list(it.valid_answers) for it in items} if cfg.judge.kind == "testbed" else None
    result = judge_outputs(model_outputs, references, cfg.judge, adir, valid_answers=valid, log=log)
    metadata = {
        "alpaca_eval_items": len(items),
        "alpaca_eval_duplicate_instructions_dropped": n_dup,
        "alpaca_eval_generation_cache_hit": gen.cache_hit,
        "alpaca_eval_judge_calls": result.n_annotated,
        "alpaca_eval_unjudged": result.n_unjudged,
        "alpaca_eval_seconds": round(time.perf_counter() - t0, 3),
    }
    rows = result.rows({"duplicate_instructions_dropped": n_dup})
    (adir / "scores.json").write_text(
        json.dumps(
            {"rows": [r.as_json() for r in rows], "metadata": metadata, "item_scores": result.item_scores}, indent=2
        )
    )
    artifacts.finish("alpaca_eval", judge_key, {"checkpoint": checkpoint_fp, "judge": cfg.judge.kind})
    return AlpacaEvalResult(rows, adir, False, metadata, win_rate_items(items, result.item_scores))
