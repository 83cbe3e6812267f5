"""The `hf_local` backend: an in-process transformers causal LM reads the same prompt.

The prompt goes through the tokenizer's chat template when it has one (else it is used
as plain text), followed by the answer prefix '{"uncertainty": ', so the next token is
the score. u = E[score] / scale_max under the model's next-token distribution restricted
to the score tokens: for each score s, the probability of every single-token spelling of
s ("7" and " 7") is summed; the scores' masses are renormalised. Scores with no
single-token spelling are absent (with scale_max 10 and digit-splitting tokenizers, 10;
use scale_max 9 for such models, SmolLM2 among them). Works offline from a local directory
or a packaged model (`hf_model: packaged:smollm2`, ual_dagster/models).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ual_dagster.config import resolve_path
from ual_dagster.config.elicitation import HFLocalElicitation
from ual_dagster.elicitation.commit import RowCommitter
from ual_dagster.elicitation.outcome import Outcome, RunStats
from ual_dagster.elicitation.prompt import ANSWER_PREFIX, render_prompt
from ual_dagster.elicitation.table import SampleToScore
from ual_dagster.models import is_packaged, resolve_model_dir


def model_source(hf_model: str) -> str:
    """What from_pretrained loads: a packaged model's converted folder, a local path, or a hub id."""

    if is_packaged(hf_model):
        return str(resolve_model_dir(hf_model))
    local = resolve_path(hf_model)
    return str(local) if local.exists() else hf_model


def score_token_ids(tokenizer, scale_max: int) -> dict[int, list[int]]:
    """score -> ids of the single tokens that spell it (with or without a leading space)."""
    ids: dict[int, list[int]] = {}
    for score in range(scale_max + 1):
        for text in (str(score), f" {score}"):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids.get(score, []):
                ids.setdefault(score, []).append(encoded[0])
    if not ids:
        raise ValueError("hf_local: the tokenizer spells no score 0..scale_max as a single token")
    return ids


def model_input_text(tokenizer, prompt: str) -> tuple[str, bool]:
    """(text to encode, whether to add special tokens): chat template when available."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return text + ANSWER_PREFIX, False
    return f"{prompt}\n{ANSWER_PREFIX}", True


def expected_from_logits(
    last_logits, score_ids: dict[int, list[int]], scale_max: int
) -> tuple[float, dict[int, float]]:
    """(u, renormalised score distribution) from one position's logits."""
    import torch

    probs = torch.softmax(last_logits.float(), dim=-1)
    mass = {s: float(probs[ids].sum()) for s, ids in score_ids.items()}
    total = sum(mass.values())
    dist = {s: m / total for s, m in mass.items()}
    return sum(s * p for s, p in dist.items()) / scale_max, dist


def score_with_local_model(
    pending: list[SampleToScore],
    cfg: HFLocalElicitation,
    stats: RunStats,
    committer: RowCommitter,
    log: Callable[[str], None],
) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = model_source(cfg.hf_model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source).to(cfg.hf_device).eval()
    score_ids = score_token_ids(tokenizer, cfg.scale_max)
    max_len = getattr(model.config, "max_position_embeddings", None) or 4096
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    truncated = 0
    log(f"hf_local: {source}, {len(pending)} samples, batches of {cfg.hf_batch_size}, scores {sorted(score_ids)}")

    for start in range(0, len(pending), cfg.hf_batch_size):
        batch = pending[start : start + cfg.hf_batch_size]
        encoded = []
        for sample in batch:
            prompt = render_prompt(cfg.prompt, sample.instruction, sample.input, sample.output, cfg.scale_max)
            text, special = model_input_text(tokenizer, prompt)
            ids = tokenizer.encode(text, add_special_tokens=special)
            if len(ids) > max_len:  # keep the end: the answer position and the task's tail
                ids, truncated = ids[-max_len:], truncated + 1
            encoded.append(ids)
        width = max(len(ids) for ids in encoded)
        # Left padding puts every answer position last; explicit position ids keep pads out of RoPE offsets.
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded], device=cfg.hf_device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=cfg.hf_device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        began = time.monotonic()
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits[:, -1, :]
        elapsed = time.monotonic() - began
        stats.call_latencies_s.append(elapsed)
        stats.prompt_tokens += sum(len(ids) for ids in encoded)
        for sample, ids, row_logits in zip(batch, encoded, logits):
            u, dist = expected_from_logits(row_logits, score_ids, cfg.scale_max)
            outcome = Outcome(
                status="ok",
                uncertainty=min(1.0, max(0.0, u)),
                raw_answer=json.dumps({str(s): round(p, 6) for s, p in sorted(dist.items())}),
                prompt_tokens=len(ids),
                latency_s=elapsed / len(batch),
                attempts=1,
            )
            committer.add(sample, outcome)
        committer.flush()
    return {"hf_model": source, "forward_passes": len(stats.call_latencies_s), "truncated_prompts": truncated}
