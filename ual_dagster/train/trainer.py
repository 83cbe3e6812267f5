"""LoRA fine-tuning with per-sample label smoothing: SFT, LS and UAL through one code path.

The methods differ only in each example's `epsilon`. The loop is plain torch with an
accelerate.Accelerator for device placement, bf16 autocast and multi-GPU (run under
`accelerate launch`; on a CPU it is one process). Gradient accumulation divides the
summed token losses by the target-token count of the whole accumulated batch, so k
micro-batches give the same update as one batch k times larger.

Checkpoints every `save_every_steps` (see resume.py) let a killed run continue from
its last saved step and end where an uninterrupted run ends. A finished run writes
`train_result.json` last; calling again returns it without training.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ual_dagster.config.training import TrainingConfig
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Progress
from ual_dagster.storage.files import atomic_path, atomic_write_text
from ual_dagster.train.base_model import revision_kwargs, split_model_ref
from ual_dagster.train.batch import Batch
from ual_dagster.train.examples import IGNORE_INDEX, Schedule, TokenizedExample, collate, tokenize_example
from ual_dagster.train.lm_loss import MicroBatchLoss
from ual_dagster.train.loss import TokenNLL
from ual_dagster.train.records import ADAPTER_DIR, RESULT_FILE, TrainExample, TrainResult
from ual_dagster.train.resume import (
    latest_checkpoint,
    load_checkpoint,
    remove_checkpoints,
    save_checkpoint,
)
from ual_dagster.train.step import optimizer_step
from ual_dagster.train.versioning import result_config

# Weight formats a hub repository may carry next to its safetensors (Llama-2's *.bin doubles
# its 13.5 GB); with safetensors present, which transformers loads, these are not downloaded.
OTHER_WEIGHT_FORMATS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.onnx", "*.gguf")


def run_key(base_path: str, examples: list[TrainExample], cfg: TrainingConfig) -> str:
    """Identity of a run's inputs; a checkpoint from other inputs is never resumed."""
    return stable_hash(str(base_path), result_config(cfg), [e.model_dump() for e in examples])


def eps_stats(examples: list[TrainExample], bin_width: float = 0.05) -> dict:
    """min / max / mean of the examples' eps and a histogram of the non-empty bins."""
    values = [e.epsilon for e in examples]
    hist: dict[str, int] = {}
    for v in values:
        lo = math.floor(v / bin_width + 1e-9) * bin_width
        label = f"{lo:.2f}-{lo + bin_width:.2f}"
        hist[label] = hist.get(label, 0) + 1
    return {
        "min": min(values),
        "max": max(values),
        "mean": sum(values) / len(values),
        "histogram": dict(sorted(hist.items())),
    }


def hub_ignore_patterns(files: list[str]) -> list[str]:
    """What snapshot_download may skip in a repository with these files: other weight formats
    when safetensors are there, nothing otherwise."""
    return list(OTHER_WEIGHT_FORMATS) if any(f.endswith(".safetensors") for f in files) else []


def download_hub_model(repo_id: str, revision: str | None, *, local_files_only: bool) -> str:
    """The local snapshot directory of `repo_id` at `revision`, downloaded into HF_HOME unless
    `local_files_only` (then only the cache is read, and a missing snapshot raises)."""
    # the hub client: only a process that downloads a base model needs it
    from huggingface_hub import HfApi, constants, snapshot_download

    if local_files_only or constants.HF_HUB_OFFLINE:
        return snapshot_download(repo_id, revision=revision, local_files_only=True)
    files = HfApi().list_repo_files(repo_id, revision=revision)
    return snapshot_download(repo_id, revision=revision, ignore_patterns=hub_ignore_patterns(files) or None)


def resolve_base_model(base_path: str, revision: str | None, *, state) -> str:
    """The local directory every process loads the base model from.

    A directory (the tiny profile's built model, a local model) is used as it is. A hub id
    is downloaded by the main process alone, while the other processes wait
    (`state.main_process_first()`: accelerate's Accelerator or PartialState, a barrier
    across the ranks of `accelerate launch`); they then read the same snapshot from the
    cache without a request of their own. So four ranks fetch a 13.5 GB model once, not
    four times into the same cache at once, and every rank loads the pinned `revision`.
    """
    if Path(base_path).expanduser().exists():
        return str(base_path)
    with state.main_process_first():
        return download_hub_model(base_path, revision, local_files_only=not state.is_main_process)


def _mixed_precision(cfg: TrainingConfig) -> str:
    if cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_available()):
        return "bf16" if torch.cuda.is_available() else "no"
    return "no"


def _load_model(base_path: str, cfg: TrainingConfig, mixed: str, revision: str | None = None):
    """Tokenizer and LoRA-wrapped model. `base_path` may be a model_ref `<hub id>@<revision>`;
    the revision (or an explicit one) reaches the tokenizer, the model and the PEFT config."""
    # peft and transformers (seconds to import): only a process that trains loads them
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, ref_revision = split_model_ref(base_path)
    revision = revision or ref_revision
    tokenizer = AutoTokenizer.from_pretrained(path, **revision_kwargs(revision))
    if tokenizer.pad_token_id is None:  # e.g. Llama-2: padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    # Frozen base weights in bf16 on a GPU; the LoRA weights stay fp32 (peft upcasts them).
    dtype = torch.bfloat16 if mixed == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **revision_kwargs(revision))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)  # LoRA A matrices are drawn from the global RNG
    lora = PeftLoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
        revision=revision,  # saved in adapter_config.json: the base revision the adapter belongs to
    )
    return tokenizer, get_peft_model(model, lora, **revision_kwargs(revision))


def _make_scheduler(optimizer, cfg: TrainingConfig, total_steps: int):
    from transformers import get_scheduler  # heavy: only a process that trains loads it

    name = "constant_with_warmup" if cfg.lr_scheduler == "constant" else cfg.lr_scheduler
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


@dataclass
class _Setup:
    """What the training loop runs on: the LoRA model, its optimiser and LR schedule (prepared
    by accelerate), the tokenised examples and the seeded schedule of their micro-batches."""

    accelerator: Any
    tokenizer: Any
    model: Any
    trainable: list
    optimizer: Any
    scheduler: Any
    tokenized: list[TokenizedExample]
    schedule: Schedule
    mixed: str


@dataclass
class _Start:
    """Where the loop starts: step 0, or a resumed checkpoint's step with its curve and token count."""

    step: int = 0
    curve: list[dict] = field(default_factory=list)
    tokens: int = 0


def train_lora(
    base_path: str,
    examples: list[TrainExample],
    cfg: TrainingConfig,
    out_dir: Path,
    log: Callable[[str], None] | None = None,
    progress_every: int = 10,
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Fine-tune LoRA adapters on `examples`; the adapter is saved to out_dir/adapter.

    `base_path` is a model directory or a hub model_ref `<hub id>@<revision>` (base_model.model_ref);
    the main process fetches that revision before any process loads it (resolve_base_model).

    on_step is called with each step's curve row after the step (and after any
    checkpoint of that step is saved): progress reporting.
    """
    log = log or (lambda _msg: None)
    if not examples:
        raise ValueError("train_lora: no training examples")
    out_dir = Path(out_dir)
    key = run_key(base_path, examples, cfg)
    done = _finished_result(out_dir, key)
    if done is not None:
        log(f"training already finished in {out_dir}; reusing its result")
        return done

    run = _set_up(base_path, examples, cfg)
    start = _resume(run, out_dir, key, log)
    log(
        f"training {len(examples)} examples, {run.schedule.total_steps} steps "
        f"(batch {cfg.batch_size} x accum {cfg.grad_accum} x {run.accelerator.num_processes} processes, "
        f"precision {run.mixed})"
    )
    loss_fn = _loss_fn(run, cfg, log)
    curve, tokens_run, loop_seconds = _train_steps(run, loss_fn, cfg, out_dir, key, start, log, progress_every, on_step)
    run.accelerator.wait_for_everyone()

    result = _result(run, examples, loss_fn, out_dir, key, start, curve, tokens_run, loop_seconds)
    if run.accelerator.is_main_process:
        _save_adapter(run.accelerator.unwrap_model(run.model), run.tokenizer, out_dir)
        atomic_write_text(out_dir / RESULT_FILE, json.dumps(result.model_dump(), indent=1, sort_keys=True))
        remove_checkpoints(out_dir)
    log(f"finished: {result.steps} steps, final loss {result.final_loss:.4f}, {result.tokens_per_s:.0f} tok/s")
    return result


def _finished_result(out_dir: Path, key: str) -> TrainResult | None:
    """The result a finished run of the same inputs left in out_dir, if any."""
    result_path = out_dir / RESULT_FILE
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        if done.get("metadata", {}).get("run_key") == key:
            return TrainResult.model_validate(done)
    return None


def _set_up(base_path: str, examples: list[TrainExample], cfg: TrainingConfig) -> _Setup:
    """The accelerator, the base model with its LoRA adapter, the tokenised examples, the optimiser
    and the LR schedule, in the order that fixes the seeded LoRA initialisation."""
    from accelerate import Accelerator  # heavy: loaded only by a process that trains, not by a reused result

    mixed = _mixed_precision(cfg)
    accelerator = Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())
    # a hub base is a model_ref `<hub id>@<revision>` (base_model.model_ref): the main process
    # downloads that revision once, every rank loads the local snapshot and records the revision
    hub_id, ref_revision = split_model_ref(str(base_path))
    local = resolve_base_model(hub_id, ref_revision, state=accelerator)
    tokenizer, model = _load_model(local, cfg, mixed, revision=ref_revision)
    tokenized = [tokenize_example(e, tokenizer, cfg.prompt_template, cfg.max_length) for e in examples]
    # batch_size is per device; the schedule deals global batches and each process takes its slice.
    schedule = Schedule(
        len(tokenized), cfg.batch_size * accelerator.num_processes, cfg.grad_accum, cfg.epochs, cfg.seed
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = _make_scheduler(optimizer, cfg, schedule.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    return _Setup(accelerator, tokenizer, model, trainable, optimizer, scheduler, tokenized, schedule, mixed)


def _resume(run: _Setup, out_dir: Path, key: str, log: Callable[[str], None]) -> _Start:
    """Load the latest checkpoint of this run's inputs into the model, optimiser and scheduler;
    a checkpoint from other inputs is removed and the run starts from step 0."""
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None:
        return _Start()
    model = run.accelerator.unwrap_model(run.model)
    state = load_checkpoint(ckpt, model, run.optimizer, run.scheduler, run_key=key)
    if state is None:
        log(f"ignoring checkpoint {ckpt} from other inputs; starting from step 0")
        remove_checkpoints(out_dir)
        return _Start()
    start = _Start(state["step"], state["progress"]["curve"], state["progress"]["tokens"])
    log(f"resuming from checkpoint {ckpt.name} (step {start.step}/{run.schedule.total_steps})")
    return start


def _loss_fn(run: _Setup, cfg: TrainingConfig, log: Callable[[str], None]) -> MicroBatchLoss:
    """The micro-batch loss: from the lm_head's input where the model allows it (lm_loss.py)."""
    probe_ids = torch.tensor([run.tokenized[0].input_ids], device=run.accelerator.device)
    model = run.accelerator.unwrap_model(run.model)
    loss_fn = MicroBatchLoss.for_model(run.model, model, cfg.loss_impl, cfg.loss_chunk_tokens, probe_ids)
    log(f"loss through the {loss_fn.impl} path: {loss_fn.reason}")
    return loss_fn


def _train_steps(
    run: _Setup,
    loss_fn: MicroBatchLoss,
    cfg: TrainingConfig,
    out_dir: Path,
    key: str,
    start: _Start,
    log: Callable[[str], None],
    progress_every: int,
    on_step: Callable[[dict], None] | None,
) -> tuple[list[dict], int, float]:
    """Optimizer steps from start.step to the end, saving a resumable checkpoint every
    save_every_steps; (the whole curve, tokens run in this call, seconds of the loop)."""
    accelerator, schedule = run.accelerator, run.schedule
    curve = start.curve
    run.model.train()
    tokens_run, loop_started = 0, time.perf_counter()
    progress = Progress("LoRA training", schedule.total_steps, log, start=start.step)
    for step in range(start.step, schedule.total_steps):
        step_started = time.perf_counter()
        batches = _step_batches(run, step, cfg.batch_size)
        # Forward / backward of each micro-batch, clip, optimizer and scheduler step (step.py).
        step_nll = TokenNLL()  # the plain NLL of the same tokens, from the same pass
        totals = optimizer_step(
            run.model,
            loss_fn,
            batches,
            accelerator,
            run.optimizer,
            run.scheduler,
            run.trainable,
            cfg.max_grad_norm,
            step_nll,
        )
        lr, step_tokens = totals.lr, totals.input_tokens
        step_loss = totals.mean_loss  # mean token loss of this process
        tokens_run += step_tokens
        row = {
            "step": step + 1,
            "loss": step_loss,
            # comparable across methods: -log p(target) without smoothing, mean over the same tokens
            "nll": step_nll.total / max(totals.local_targets, 1),
            "lr": lr,
            "tokens": start.tokens + tokens_run,
            "tokens_per_s": step_tokens / max(time.perf_counter() - step_started, 1e-9),
            "eps_mean": totals.eps_sum / max(totals.eps_n, 1),
        }
        curve.append(row)
        note = f"loss {step_loss:.4f}, lr {lr:.2e}, {row['tokens_per_s']:.0f} tok/s"
        progress.advance(note=note, force=(step + 1) % progress_every == 0)
        if (step + 1) % cfg.save_every_steps == 0 and step + 1 < schedule.total_steps and accelerator.is_main_process:
            save_checkpoint(
                out_dir,
                step + 1,
                accelerator.unwrap_model(run.model),
                run.optimizer,
                run.scheduler,
                {"run_key": key, "curve": curve, "tokens": start.tokens + tokens_run},
            )
        if on_step is not None:
            on_step(row)
    return curve, tokens_run, time.perf_counter() - loop_started


def _step_batches(run: _Setup, step: int, batch_size: int) -> list[Batch]:
    """This process's micro-batches of optimizer step `step`, on its device."""
    rank = run.accelerator.process_index
    batches = []
    for mb in run.schedule.micro_batches_of_step(step):
        global_idx = run.schedule.indices(mb)
        idx = global_idx[rank * batch_size : (rank + 1) * batch_size]
        batch = collate([run.tokenized[i] for i in idx or global_idx[:1]], run.tokenizer.pad_token_id)
        if not idx:
            # The epoch's last global batch left this process nothing: it still runs a
            # (fully masked, zero-gradient) micro-batch so every process makes the same
            # collective calls.
            batch.shifted_labels.fill_(IGNORE_INDEX)
            batch.epsilon.zero_()
        batches.append(batch.to(run.accelerator.device))
    return batches


def _result(
    run: _Setup,
    examples: list[TrainExample],
    loss_fn: MicroBatchLoss,
    out_dir: Path,
    key: str,
    start: _Start,
    curve: list[dict],
    tokens_run: int,
    loop_seconds: float,
) -> TrainResult:
    """The TrainResult of a finished run (written as train_result.json)."""
    tail = curve[-min(5, len(curve)) :]
    return TrainResult(
        steps=run.schedule.total_steps,
        final_loss=curve[-1]["loss"],
        curve=curve,
        tokens_per_s=tokens_run / max(loop_seconds, 1e-9),
        eps_stats=eps_stats(examples),
        resumed_from_step=start.step,
        adapter_path=str(out_dir / ADAPTER_DIR),
        metadata={
            "run_key": key,
            "examples": len(examples),
            "examples_without_response_tokens": sum(t.response_truncated_away for t in run.tokenized),
            "mean_loss_last_5_steps": sum(r["loss"] for r in tail) / len(tail),
            "train_seconds_this_run": round(loop_seconds, 2),
            "precision": run.mixed,
            "loss_impl": loss_fn.impl,
            "processes": run.accelerator.num_processes,
            "trainable_parameters": sum(p.numel() for p in run.trainable),
        },
    )


def _save_adapter(model, tokenizer, out_dir: Path) -> None:
    with atomic_path(out_dir / ADAPTER_DIR) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
