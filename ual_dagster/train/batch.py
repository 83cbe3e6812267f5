"""A padded micro-batch as the loss and the training step see it: torch only.

Kept apart from examples.py (tokenisation, pydantic) so that the loss, the training step
and benchmarks/gpu/ import on a machine with torch alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    shifted_labels: torch.Tensor  # (B, T): label of position t is the token at t + 1
    epsilon: torch.Tensor  # (B,)

    @property
    def target_tokens(self) -> int:
        return int((self.shifted_labels != IGNORE_INDEX).sum())

    @property
    def input_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.shifted_labels, self.epsilon)))
