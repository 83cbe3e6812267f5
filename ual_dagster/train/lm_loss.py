"""The trainer's loss of one micro-batch: through the logits, or straight from the lm_head's input.

`training.loss_impl` picks the path:

- `logits`: `model(...).logits` -> `uncertainty_smoothed_loss`. The model materialises
  (B, T, V) logits and autograd their gradient.
- `linear`: a forward pre-hook on the lm_head records its input and hands it an empty
  slice, so the model runs as usual but computes no logits; the loss is then
  `uncertainty_smoothed_linear_loss(lm_head input, lm_head.weight, ..., bias=lm_head.bias)`.
  Same value and gradients, no (tokens x V) tensor, and prompt / padding positions
  never enter the lm_head matmul.
- `auto` (default): `linear` wherever the model allows it, else `logits`, with the
  reason logged and recorded in the run's metadata.

The linear path computes `F.linear(lm_head input)` and nothing after it. It refuses
(auto falls back) when the model's logits are not exactly that:

- the lm_head is not a plain `nn.Linear`: e.g. LoRA on `lm_head` (`target_modules`
  naming it) or `modules_to_save`, whose adapter the weight alone would skip;
- the model transforms the logits after the lm_head; in transformers 5.x:
  `final_logit_softcapping` (Gemma 2 / 3 / 3n / 4, VaultGemma, T5Gemma, Nanochat,
  Mistral-Large-4, Inkling2, MuseSpark), `logit_scale` (Cohere, Cohere2, Cohere2-MoE,
  Cohere-Compass), `logits_scaling` (Granite and its MoE / hybrid variants,
  HyperCLOVA X; MiniCPM3 divides the hidden states by it *before* the lm_head, which
  the linear path would handle, but the attribute alone cannot tell, so it falls back
  too), `lm_head_multiplier` (Falcon-H1), `output_multiplier` (MuseSpark). Each is
  checked on the (text) config and only counts when set to a value that changes the
  logits (softcapping not None, a scale not 1);
- a probe disagrees: on one training sequence, in eval mode and without gradients,
  the model's own logits must equal `F.linear` of the captured lm_head input. This
  catches transformations the list above does not know.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ual_dagster.train.batch import Batch
from ual_dagster.train.loss import TokenNLL, uncertainty_smoothed_linear_loss, uncertainty_smoothed_loss

LOSS_IMPLS = ("auto", "logits", "linear")

# Config attribute -> the value at which the model leaves its logits unchanged.
LOGIT_TRANSFORMS = {
    "final_logit_softcapping": None,
    "logit_scale": 1.0,
    "logits_scaling": 1.0,
    "lm_head_multiplier": 1.0,
    "output_multiplier": 1.0,
}


@contextmanager
def capture_lm_head_input(head: torch.nn.Module, skip: bool):
    """Record each input of `head` in the yielded list; with skip, hand `head` an empty
    slice of it so the (..., V) logits are never computed."""
    inputs: list[torch.Tensor] = []

    def pre_hook(_module, args):
        inputs.append(args[0])
        if skip:
            return (args[0][..., :0, :], *args[1:])
        return None

    handle = head.register_forward_pre_hook(pre_hook)
    try:
        yield inputs
    finally:
        handle.remove()


def linear_head_unsupported(model) -> str | None:
    """Why the linear path cannot stand in for this model's logits, or None (static checks)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return "the model exposes no output embedding (get_output_embeddings() is None)"
    if type(head) is not torch.nn.Linear:
        return (
            f"its lm_head is a {type(head).__module__}.{type(head).__name__}, not a plain torch.nn.Linear "
            "(LoRA or modules_to_save on lm_head?): the lm_head weight alone would leave its adapter out"
        )
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    configs = [base.config]
    if hasattr(base.config, "get_text_config"):
        configs.append(base.config.get_text_config())
    for config in configs:
        for attr, identity in LOGIT_TRANSFORMS.items():
            value = getattr(config, attr, identity)
            if value != identity:
                return f"its config sets {attr} = {value}: the model transforms the logits after the lm_head"
    return None


@torch.no_grad()
def probe_mismatch(model, head: torch.nn.Linear, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> str | None:
    """Run the model once (eval mode: no dropout, no RNG drawn) and compare its logits
    with F.linear of the lm_head's captured input; a reason when they differ."""
    was_training = model.training
    model.eval()
    try:
        with capture_lm_head_input(head, skip=False) as inputs:
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    finally:
        model.train(was_training)
    if len(inputs) != 1:
        return f"the lm_head ran {len(inputs)} times in one forward (expected once)"
    mine = torch.nn.functional.linear(inputs[0], head.weight, head.bias).float()
    theirs = logits.float()
    if mine.shape != theirs.shape:
        return f"the model's logits {tuple(theirs.shape)} are not the lm_head's output {tuple(mine.shape)}"
    tol = 1e-4 if head.weight.dtype == torch.float32 else 1e-2
    scale = float(theirs.abs().max().clamp(min=1.0))
    if not torch.allclose(mine, theirs, rtol=tol, atol=tol * scale):
        diff = float((mine - theirs).abs().max())
        return f"its logits differ from the lm_head's output by up to {diff:.3g} (the model transforms them)"
    return None


class MicroBatchLoss:
    """loss = self(batch, normalizer): the smoothed loss of one micro-batch, by `impl`."""

    def __init__(self, model, head: torch.nn.Linear | None, impl: str, reason: str, logits_chunk_tokens: int):
        self.model, self.head, self.impl, self.reason = model, head, impl, reason
        self.logits_chunk_tokens = logits_chunk_tokens

    @classmethod
    def for_model(
        cls, model, unwrapped, requested: str, logits_chunk_tokens: int, probe_ids: torch.Tensor
    ) -> "MicroBatchLoss":
        """model: what the trainer calls (possibly wrapped by accelerate); unwrapped: the
        PEFT / transformers model under it; probe_ids: one (1, T) training sequence.

        logits_chunk_tokens (training.loss_chunk_tokens) is the logits path's chunk, sized
        for the cache; the linear path keeps its own default (`linear_chunk_tokens`), sized
        so that each pass over the lm_head weight serves enough rows (see docs/loss.md)."""
        if requested not in LOSS_IMPLS:
            raise ValueError(f"training.loss_impl must be one of {LOSS_IMPLS}, got {requested!r}")
        if requested == "logits":
            return cls(model, None, "logits", "training.loss_impl is 'logits'", logits_chunk_tokens)
        reason = linear_head_unsupported(unwrapped)
        head = None if reason else unwrapped.get_output_embeddings()
        if reason is None:
            reason = probe_mismatch(model, head, probe_ids, torch.ones_like(probe_ids))
        if reason is None:
            why = "the model's logits are its lm_head's output"
            return cls(model, head, "linear", f"training.loss_impl is {requested!r} and {why}", logits_chunk_tokens)
        if requested == "linear":
            raise ValueError(
                f"training.loss_impl 'linear' does not fit this model: {reason}. "
                "Use 'auto' (falls back to the logits) or 'logits'."
            )
        return cls(
            model, None, "logits", f"training.loss_impl 'auto' fell back to the logits: {reason}", logits_chunk_tokens
        )

    def __call__(self, batch: Batch, normalizer: float, nll: TokenNLL | None = None) -> torch.Tensor:
        if self.impl == "logits":
            logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            return uncertainty_smoothed_loss(
                logits,
                batch.shifted_labels,
                batch.epsilon,
                chunk_tokens=self.logits_chunk_tokens,
                normalizer=normalizer,
                nll=nll,
            )
        with capture_lm_head_input(self.head, skip=True) as inputs:
            self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        if len(inputs) != 1:
            raise RuntimeError(f"the lm_head ran {len(inputs)} times in one forward; the probe saw it run once")
        weight, bias = self.head.weight, self.head.bias
        # Under autocast the lm_head would run in the autocast dtype; here the trainer loads
        # the weights in the compute dtype, so the weight's dtype is that dtype.
        hidden = inputs[0].to(weight.dtype)
        return uncertainty_smoothed_linear_loss(
            hidden,
            weight,
            batch.shifted_labels,
            batch.epsilon,
            bias=bias,
            normalizer=normalizer,
            nll=nll,
        )
