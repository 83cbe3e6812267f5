"""One optimizer step of the trainer: torch only (accelerate is passed in).

`train_lora` calls `optimizer_step` once per step, and benchmarks/gpu/ times the same
function, so the benchmark measures the trainer's own loop on a machine without the
project's other dependencies (pydantic, dagster, duckdb).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ual_dagster.train.batch import Batch
from ual_dagster.train.loss import TokenNLL


@dataclass(frozen=True)
class StepTotals:
    """What one optimizer step saw on this process."""

    loss_sum: float  # summed token losses of this process's micro-batches
    local_targets: int  # target tokens of this process
    input_tokens: int  # non-padding input tokens of this process
    eps_sum: float
    eps_n: int
    lr: float  # the learning rate the step used

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.local_targets, 1)


def optimizer_step(
    model,
    loss_fn: Callable[[Batch, float], torch.Tensor],
    batches: Sequence[Batch],
    accelerator,
    optimizer,
    scheduler,
    trainable: list[torch.Tensor],
    max_grad_norm: float | None,
    nll: TokenNLL | None = None,
) -> StepTotals:
    """Forward and backward over the step's micro-batches (already on the device), clip,
    step the optimizer and the scheduler, zero the gradients.

    The loss of every micro-batch is divided by the target-token count of the whole step
    (over all processes, divided by their number since DDP averages), so k micro-batches
    give the same update as one batch k times larger. Gradients are all-reduced once,
    on the last micro-batch. `nll`: passed to the loss, which adds the plain token NLL of the
    same targets to it (the training curve's `nll`).
    """
    n_procs = accelerator.num_processes
    local_targets = torch.tensor(sum(b.target_tokens for b in batches), device=accelerator.device)
    global_targets = accelerator.reduce(local_targets, "sum") if n_procs > 1 else local_targets
    normalizer = max(float(global_targets), 1.0) / n_procs
    loss_sum, input_tokens, eps_sum, eps_n = 0.0, 0, 0.0, 0
    for i, batch in enumerate(batches):
        with accelerator.no_sync(model) if i < len(batches) - 1 else nullcontext():
            loss = loss_fn(batch, normalizer) if nll is None else loss_fn(batch, normalizer, nll)
            accelerator.backward(loss)
        loss_sum += float(loss.detach()) * normalizer
        input_tokens += batch.input_tokens
        eps_sum += float(batch.epsilon.sum())
        eps_n += batch.epsilon.numel()
    if max_grad_norm is not None:
        accelerator.clip_grad_norm_(trainable, max_grad_norm)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepTotals(loss_sum, int(local_targets), input_tokens, eps_sum, eps_n, lr)
