"""Training examples as the trainer feeds them: tokenisation with response-only labels,
batches, and the seeded schedule of which examples each micro-batch holds.

The prompt format is prompts.py's (shared with evaluation); the example records are
records.py's. Both are plain Python; this module needs torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ual_dagster.train.batch import IGNORE_INDEX, Batch
from ual_dagster.train.prompts import prompt_token_ids, render_prompt
from ual_dagster.train.records import TrainExample


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # aligned with input_ids; the causal shift is done when batching
    epsilon: float
    response_truncated_away: bool


def tokenize_example(example: TrainExample, tokenizer, template: str, max_length: int) -> TokenizedExample:
    """bos + prompt + response + eos, truncated to max_length; labels only on the response.

    Prompt and response are tokenised separately so the label boundary is exact and the
    prompt tokens match what evaluation feeds the model.
    """
    prompt_ids = prompt_token_ids(tokenizer, render_prompt(example.instruction, example.input, template))
    response = tokenizer(example.output, add_special_tokens=False)
    response_ids = response["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_length]
    return TokenizedExample(ids, labels, float(example.epsilon), len(prompt_ids) >= max_length)


def collate(examples: list[TokenizedExample], pad_token_id: int) -> Batch:
    """Right-pad to the longest example. Labels are shifted here (not the logits), so the
    loss reads the model's logits without a (B, T-1, V) copy."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, : n - 1] = torch.tensor(e.labels[1:n])
    eps = torch.tensor([e.epsilon for e in examples], dtype=torch.float32)
    return Batch(ids, mask, labels, eps)


@dataclass(frozen=True)
class Schedule:
    """Which examples each micro-batch holds: a seeded permutation per epoch.

    Micro-batch k of the run is a pure function of (seed, k), so a resumed run only
    needs the index of the next micro-batch to continue with exactly the same data.
    """

    n_examples: int
    batch_size: int
    grad_accum: int
    epochs: float
    seed: int

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_examples / self.batch_size)

    @property
    def total_micro_batches(self) -> int:
        return max(1, math.ceil(self.epochs * self.batches_per_epoch))

    @property
    def total_steps(self) -> int:
        return math.ceil(self.total_micro_batches / self.grad_accum)

    def micro_batches_of_step(self, step: int) -> range:
        start = step * self.grad_accum
        return range(start, min(start + self.grad_accum, self.total_micro_batches))

    def indices(self, micro_batch: int) -> list[int]:
        epoch, k = divmod(micro_batch, self.batches_per_epoch)
        order = torch.randperm(self.n_examples, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        return order[k * self.batch_size : (k + 1) * self.batch_size].tolist()
