"""Load a checkpoint (base model + LoRA adapter) once, and generate from it with caching.

A checkpoint is loaded lazily through `CheckpointHandle`: evaluation stages whose
results are already cached never load the model at all, and the first stage that
misses loads it once for all the others. Only one handle holds a model at a time
(loading another releases the previous one), so two copies of a 7B base model never
sit in memory together.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ual_dagster import versions
from ual_dagster.config.evaluation import GenerationConfig
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log, Progress
from ual_dagster.storage.files import atomic_write_text
from ual_dagster.train.base_model import revision_kwargs, split_model_ref
from ual_dagster.train.prompts import prompt_token_ids


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("evaluation.device is 'cuda' but no CUDA device is available")
    return torch.device(device)


@dataclass
class LoadedCheckpoint:
    model: Any  # PeftModel, or a PreTrainedModel when there is no adapter
    tokenizer: Any
    device: torch.device


def load_checkpoint(
    base_path: str | Path, adapter_path: str | Path | None, device: str = "auto", revision: str | None = None
) -> LoadedCheckpoint:
    """The base model with the adapter applied (not merged: the adapter stays inspectable).

    `base_path` may be a model_ref `<hub id>@<revision>` (train/base_model.py); that revision,
    or an explicit `revision`, reaches the tokenizer and the model, and must match the base
    revision the adapter was trained on (its adapter_config.json)."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, ref_revision = split_model_ref(base_path)
    revision = revision or ref_revision
    dev = resolve_device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path, **revision_kwargs(revision))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **revision_kwargs(revision))
    if adapter_path is not None:
        trained_on = PeftConfig.from_pretrained(str(adapter_path)).revision
        if revision and trained_on and trained_on != revision:
            raise ValueError(f"adapter {adapter_path} was trained on {path}@{trained_on}, not on revision {revision}")
        model = PeftModel.from_pretrained(model, str(adapter_path))
    model.to(dev).eval()
    return LoadedCheckpoint(model=model, tokenizer=tokenizer, device=dev)


class CheckpointHandle:
    """Loads the checkpoint on first use; at most one handle holds a model at a time."""

    _holder: "CheckpointHandle | None" = None

    def __init__(
        self,
        base_path: str | Path,
        adapter_path: str | Path | None,
        device: str = "auto",
        log: Log = None,
        revision: str | None = None,
    ):
        path, ref_revision = split_model_ref(base_path)
        self.base_path = Path(path)
        self.revision = revision or ref_revision  # the hub revision of the base model (None: local)
        self.adapter_path = Path(adapter_path) if adapter_path is not None else None
        self.device = device
        self.log = log
        self._loaded: LoadedCheckpoint | None = None
        self.load_seconds: float | None = None

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def get(self) -> LoadedCheckpoint:
        if self._loaded is None:
            if CheckpointHandle._holder is not None and CheckpointHandle._holder is not self:
                CheckpointHandle._holder.release()
            t0 = time.perf_counter()
            self._loaded = load_checkpoint(self.base_path, self.adapter_path, self.device, revision=self.revision)
            self.load_seconds = round(time.perf_counter() - t0, 3)
            CheckpointHandle._holder = self
            if self.log:
                self.log(f"loaded checkpoint {self.adapter_path or self.base_path} in {self.load_seconds}s")
        return self._loaded

    def release(self) -> None:
        if self._loaded is None:
            return
        self._loaded = None
        if CheckpointHandle._holder is self:
            CheckpointHandle._holder = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> "CheckpointHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """Cut `text` at the earliest stop string (the stop string itself is dropped)."""
    cut = len(text)
    for stop in stop_strings:
        idx = text.find(stop)
        if idx != -1:
            cut = min(cut, idx)
    return text[:cut].strip()


@torch.no_grad()
def generate(loaded: LoadedCheckpoint, prompts: Sequence[str], cfg: GenerationConfig, seed: int = 0) -> list[str]:
    """Batched generation with left padding; greedy when temperature is 0.

    A row stops at eos or once it ends in one of `cfg.stop_strings` (transformers' stop-string
    criterion, which pads the finished rows while the others go on); the stop string is then
    cut from the decoded text.
    """
    tok, model = loaded.tokenizer, loaded.model
    eos_id = tok.eos_token_id
    # Similar lengths share a batch, so little compute is spent on padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    torch.manual_seed(seed)
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        ids = [prompt_token_ids(tok, prompts[i]) for i in idx]
        prompt_len = max(len(x) for x in ids)
        # Left padding: every prompt ends where generation starts.
        enc = {
            "input_ids": torch.tensor([[tok.pad_token_id] * (prompt_len - len(x)) + x for x in ids]),
            "attention_mask": torch.tensor([[0] * (prompt_len - len(x)) + [1] * len(x) for x in ids]),
        }
        enc = {k: v.to(loaded.device) for k, v in enc.items()}
        sampling = {"do_sample": True, "temperature": cfg.temperature} if cfg.temperature > 0 else {"do_sample": False}
        out = model.generate(
            **enc,
            max_new_tokens=cfg.max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=eos_id,
            stop_strings=list(cfg.stop_strings) or None,
            tokenizer=tok,
            **sampling,
        )
        for row, i in zip(out[:, prompt_len:], idx):
            ids = row.tolist()
            if eos_id is not None and eos_id in ids:
                ids = ids[: ids.index(eos_id)]
            outputs[i] = truncate_at_stop(tok.decode(ids, skip_special_tokens=True), cfg.stop_strings)
    return outputs


@dataclass
class GenerationResult:
    outputs: list[str]
    cache_key: str
    cache_hit: bool
    path: Path
    seconds: float


def generation_cache_key(checkpoint_fp: str, cfg: GenerationConfig, prompts: Sequence[str]) -> str:
    return stable_hash(versions.GENERATION, checkpoint_fp, cfg.model_dump(mode="json"), list(prompts))


def cached_generate(
    handle: CheckpointHandle,
    checkpoint_fp: str,
    prompts: Sequence[str],
    cfg: GenerationConfig,
    cache_dir: str | Path,
    log: Log = None,
) -> GenerationResult:
    """Outputs for `prompts`, from `<cache_dir>/<key>.json` when present (no model load, no forward pass).

    Progress is appended per batch to `<key>.partial.jsonl`, so a killed run resumes
    with the batches it already finished.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = generation_cache_key(checkpoint_fp, cfg, prompts)
    final = cache_dir / f"{key}.json"
    t0 = time.perf_counter()
    if final.is_file():
        outputs = json.loads(final.read_text(encoding="utf-8"))["outputs"]
        return GenerationResult(outputs, key, True, final, round(time.perf_counter() - t0, 3))

    partial = cache_dir / f"{key}.partial.jsonl"
    done: dict[int, str] = {}
    if partial.is_file():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a crash: everything after it is redone
            done[int(rec["i"])] = rec["output"]
    todo = [i for i in range(len(prompts)) if i not in done]
    if log and done:
        log(f"generation {key}: resuming, {len(done)} of {len(prompts)} outputs already on disk")
    loaded = handle.get() if todo else None
    step = cfg.batch_size * 4  # a flush interval: several batches per partial write
    progress = Progress(f"generation {key}", len(prompts), log, unit="outputs", start=len(done))
    with partial.open("a", encoding="utf-8") as fh, progress:
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            outs = generate(loaded, [prompts[i] for i in chunk], cfg)
            for i, text in zip(chunk, outs):
                done[i] = text
                fh.write(json.dumps({"i": i, "output": text}, ensure_ascii=False) + "\n")
            fh.flush()
            progress.update(len(done))
    outputs = [done[i] for i in range(len(prompts))]
    record = {"checkpoint": checkpoint_fp, "generation": cfg.model_dump(mode="json"), "outputs": outputs}
    atomic_write_text(final, json.dumps(record, ensure_ascii=False))
    partial.unlink(missing_ok=True)
    return GenerationResult(outputs, key, False, final, round(time.perf_counter() - t0, 3))
