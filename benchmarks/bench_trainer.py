"""Training throughput of train_lora (SFT, eps = 0) against a plain transformers Trainer.

Both train the same tiny Llama (the tiny profile's architecture, random weights, a
tokenizer trained here on the data), with the same LoRA config, batch size, sequence
length, optimizer settings and examples: the first N Alpaca samples from the shared
data folder (by path), tokenised once by `tokenize_example` (response-only labels).
The Trainer computes transformers' own causal-LM loss; train_lora its chunked
smoothed loss with eps = 0.

Throughput = non-padding input tokens / wall time of the training loop only (model
loading excluded): train_lora's own `tokens_per_s`; for the Trainer, tokens counted by
the collator between the on_train_begin and on_train_end callbacks. The two run in
alternating rounds in this one process; the median of each is reported.

Usage: python benchmarks/bench_trainer.py [--examples 256] [--rounds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca" / "alpaca_5000.json"


def load_examples(n: int):
    from ual_dagster.train.records import TrainExample

    rows = json.loads(ALPACA.read_text())[:n]
    return [TrainExample(instruction=r["instruction"], input=r["input"], output=r["output"], epsilon=0.0) for r in rows]


def build_base(tmp: Path, examples) -> str:
    from ual_dagster.config.training import BaseModelConfig, TinyModelConfig
    from ual_dagster.storage.artifacts import ArtifactStore
    from ual_dagster.train.base_model import build_base_model
    from ual_dagster.train.prompts import render_text

    texts = [render_text(e.instruction, e.input, e.output, "alpaca") for e in examples]
    cfg = BaseModelConfig(source="build_tiny", tiny=TinyModelConfig(pretrain_steps=0))
    return build_base_model(cfg, texts, ArtifactStore(tmp / "artifacts")).path


def run_train_lora(base: str, examples, cfg, out: Path) -> float:
    from ual_dagster.train.trainer import train_lora

    return train_lora(base, examples, cfg, out).tokens_per_s


def run_hf_trainer(base: str, examples, cfg, out: Path) -> float:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from ual_dagster.train.examples import Schedule, tokenize_example

    schedule = Schedule(len(examples), cfg.batch_size, cfg.grad_accum, cfg.epochs, cfg.seed)
    tok = AutoTokenizer.from_pretrained(base)
    data = [tokenize_example(e, tok, cfg.prompt_template, cfg.max_length) for e in examples]
    dataset = [{"input_ids": d.input_ids, "labels": d.labels} for d in data]
    counter = {"tokens": 0, "on": False, "t0": 0.0, "t1": 0.0}

    def collate(rows):
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        if counter["on"]:
            counter["tokens"] += int(mask.sum())
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            counter["on"], counter["t0"] = True, time.perf_counter()

        def on_train_end(self, *a, **k):
            counter["on"], counter["t1"] = False, time.perf_counter()

    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=math.ceil(cfg.warmup_ratio * schedule.total_steps),
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=get_peft_model(model, lora), args=args, train_dataset=dataset, data_collator=collate, callbacks=[Clock()]
    )
    trainer.train()
    return counter["tokens"] / (counter["t1"] - counter["t0"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=float, default=3.0)
    a = p.parse_args()

    from ual_dagster.config import load_profile

    examples = load_examples(a.examples)
    cfg = load_profile("tiny").training.model_copy(update={"epochs": a.epochs, "precision": "fp32"})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = build_base(tmp, examples)
        print(
            f"tiny Llama (random weights), {len(examples)} Alpaca examples, batch {cfg.batch_size}, "
            f"max_length {cfg.max_length}, LoRA r={cfg.lora.r} on {len(cfg.lora.target_modules)} modules, "
            f"{a.epochs} epoch(s), {a.rounds} rounds"
        )
        ours, theirs = [], []
        for r in range(a.rounds):
            theirs.append(run_hf_trainer(base, examples, cfg, tmp / f"hf{r}"))
            ours.append(run_train_lora(base, examples, cfg, tmp / f"ours{r}"))
            print(f"round {r + 1}: train_lora {ours[-1]:.0f} tok/s, transformers Trainer {theirs[-1]:.0f} tok/s")
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"train_lora (sft)     {o:9.0f} tokens/s")
    print(f"transformers Trainer {t:9.0f} tokens/s")
    print(f"ratio train_lora / Trainer = {o / t:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
