"""Teacher-forced log-probabilities of the valid answers: metrics that see a distribution.

Greedy validity and exact match look at one decoded answer per item, so they cannot see
how a checkpoint spreads its probability. For each held-out testbed item this scores
every valid answer a as the checkpoint was trained to produce it (bos + prompt in the
training template, then the answer's tokens and eos; prompt and answer tokenised
separately, as in training) and reports, on the benchmark `testbed_likelihood`:

- `log_p_answer` (items with one valid answer): log p(answer | prompt);
- `log_p_valid_set` (items with several): log sum_a p(a | prompt), the mass on the set
  of valid answers (the answers end in eos, so no answer is a prefix of another and the
  sum is a probability);
- `valid_set_entropy` (items with several): the entropy of p restricted to the valid
  set and renormalised, divided by log k: 1 when the checkpoint spreads its valid mass
  evenly over the k answers (the testbed's intrinsic distribution), 0 when it puts it
  all on one.

Each aggregate is the mean of its items, with stderr sd/sqrt(n) over items. Answers are
the exact stored strings (the judge's case and full-stop folding is not applied).

Cost: each prompt is run once (batched, left-padded, logits of its last column only);
its key/value cache is shared by all of its answers, which are run in batches over their
own few tokens. At tiny scale (300 items, ~3,700 answers) this is a few seconds on CPU.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ual_dagster import versions
from ual_dagster.config.evaluation import AnswerLikelihoodConfig
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.models import CheckpointHandle, LoadedCheckpoint
from ual_dagster.evaluation.scores import ItemScore, ScoreRow, item_mean_row
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log
from ual_dagster.storage import ArtifactStore
from ual_dagster.train.prompts import prompt_token_ids, render_prompt

BENCHMARK = "testbed_likelihood"
LOG_P_ANSWER = "log_p_answer"
LOG_P_VALID_SET = "log_p_valid_set"
VALID_SET_ENTROPY = "valid_set_entropy"
METRICS = (LOG_P_ANSWER, LOG_P_VALID_SET, VALID_SET_ENTROPY)
ITEMS_FILE = "items.json"


def answers_of(item: HeldoutItem) -> tuple[str, ...]:
    return item.valid_answers or (item.output,)


@torch.no_grad()
def answer_logprobs(
    loaded: LoadedCheckpoint, prompts: Sequence[list[int]], answers: Sequence[tuple[int, list[int]]], batch_size: int
) -> list[float]:
    """sum_t log p(answer_t | prompt, answer_<t) for each (prompt index, answer ids) in `answers`.

    Each prompt is run once; its key/value cache is then shared by all of its answers,
    which cost one forward pass over their own tokens only.
    """
    from transformers import DynamicCache

    model, pad, dev = loaded.model, loaded.tokenizer.pad_token_id, loaded.device
    out = [0.0] * len(answers)
    by_prompt: dict[int, list[int]] = {}
    for j, (n, _) in enumerate(answers):
        by_prompt.setdefault(n, []).append(j)
    # Prompts of similar length share a pass (little padding); a group's answers run in batches.
    order = sorted(by_prompt, key=lambda n: len(prompts[n]))
    group = max(1, batch_size // 8)
    for start in range(0, len(order), group):
        chunk = order[start : start + group]
        p_max = max(len(prompts[n]) for n in chunk)
        # Left padding: every prompt ends in the last column, where the first answer token is predicted.
        p_mask = torch.tensor([[0] * (p_max - len(prompts[n])) + [1] * len(prompts[n]) for n in chunk], device=dev)
        p_ids = torch.tensor([[pad] * (p_max - len(prompts[n])) + prompts[n] for n in chunk], device=dev)
        # Positions count real tokens only, as in training (bos at 0).
        p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
        res = model(input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(res.logits[:, -1].float(), dim=-1)  # (prompts, vocab)
        kv = [(layer.keys, layer.values) for layer in res.cache.layers]
        p_len = p_mask.sum(-1)
        rows = [(c, j) for c, n in enumerate(chunk) for j in by_prompt[n]]
        for b in range(0, len(rows), batch_size):
            batch = rows[b : b + batch_size]
            sel = torch.tensor([c for c, _ in batch], device=dev)
            ans = [answers[j][1] for _, j in batch]
            total = first[sel, torch.tensor([a[0] for a in ans], device=dev)]
            rest = max(len(a) for a in ans) - 1  # tokens fed after the prompt: all but the last
            if rest > 0:
                a_ids = torch.tensor([a[:-1] + [pad] * (rest - len(a) + 1) for a in ans], device=dev)
                a_mask = torch.tensor([[1] * (len(a) - 1) + [0] * (rest - len(a) + 1) for a in ans], device=dev)
                targets = torch.tensor([a[1:] + [-1] * (rest - len(a) + 1) for a in ans], device=dev)
                cache = DynamicCache(ddp_cache_data=[(k.index_select(0, sel), v.index_select(0, sel)) for k, v in kv])
                a_pos = p_len[sel].unsqueeze(1) + torch.arange(rest, device=dev).unsqueeze(0)
                logits = model(
                    input_ids=a_ids,
                    attention_mask=torch.cat([p_mask[sel], a_mask], dim=1),
                    position_ids=a_pos,
                    cache=cache,
                    use_cache=True,
                ).logits.float()
                logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                total = total + (logp * (targets >= 0)).sum(-1)
            for (_, j), v in zip(batch, total.tolist()):
                out[j] = v
    return out


def item_scores(item_id: str, answer_logprobs: Sequence[float]) -> list[ItemScore]:
    """The metrics of one item from the log-probabilities of its valid answers."""
    if len(answer_logprobs) == 1:
        return [ItemScore(BENCHMARK, item_id, LOG_P_ANSWER, float(answer_logprobs[0]))]
    lp = torch.tensor(answer_logprobs, dtype=torch.float64)
    total = torch.logsumexp(lp, 0)
    q = torch.exp(lp - total)
    entropy = float(-(q * torch.log(q.clamp(min=1e-300))).sum()) / math.log(len(lp))
    return [
        ItemScore(BENCHMARK, item_id, LOG_P_VALID_SET, float(total)),
        ItemScore(BENCHMARK, item_id, VALID_SET_ENTROPY, entropy),
    ]


def rows_from_items(items: Sequence[ItemScore]) -> list[ScoreRow]:
    present = {i.metric for i in items}
    return [item_mean_row(BENCHMARK, m, items) for m in METRICS if m in present]


@dataclass
class LikelihoodResult:
    rows: list[ScoreRow]
    items: list[ItemScore]
    artifact_dir: Path
    cache_hit: bool
    seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)


def selected_items(cfg: AnswerLikelihoodConfig, eval_data: EvalData) -> list[HeldoutItem]:
    return [it for name in cfg.datasets for it in eval_data.dataset(name)[: cfg.limit]]


def run_answer_likelihood(
    handle: CheckpointHandle,
    checkpoint_fp: str,
    cfg: AnswerLikelihoodConfig,
    eval_data: EvalData,
    work_dir: str | Path,
    prompt_template: str = "alpaca",
    log: Log = None,
) -> LikelihoodResult:
    """Score every selected held-out item; cached under `<work_dir>/answer_likelihood/<key>/`."""
    t0 = time.perf_counter()
    items = selected_items(cfg, eval_data)
    prompts = [render_prompt(it.instruction, it.input, prompt_template) for it in items]
    key = stable_hash(
        versions.ANSWER_LIKELIHOOD,
        checkpoint_fp,
        cfg.model_dump(mode="json", exclude={"batch_size"}),
        [(it.sample_id, p, answers_of(it)) for it, p in zip(items, prompts)],
    )
    artifacts = ArtifactStore(Path(work_dir))
    adir = artifacts.path("answer_likelihood", key)
    if artifacts.is_finished("answer_likelihood", key):
        scores = [ItemScore(**r) for r in json.loads((adir / ITEMS_FILE).read_text(encoding="utf-8"))]
        return LikelihoodResult(rows_from_items(scores), scores, adir, True, round(time.perf_counter() - t0, 3))
    loaded = handle.get()
    tok = loaded.tokenizer
    prompt_ids = [prompt_token_ids(tok, p) for p in prompts]
    pairs = [
        (n, tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        for n, it in enumerate(items)
        for a in answers_of(it)
    ]
    logps = answer_logprobs(loaded, prompt_ids, pairs, cfg.batch_size)
    per_item: list[list[float]] = [[] for _ in items]
    for (n, _), lp in zip(pairs, logps):
        per_item[n].append(lp)
    scores = [s for it, lps in zip(items, per_item) for s in item_scores(it.sample_id, lps)]
    adir = artifacts.open("answer_likelihood", key)
    (adir / ITEMS_FILE).write_text(
        json.dumps(
            [{"benchmark": s.benchmark, "item_id": s.item_id, "metric": s.metric, "value": s.value} for s in scores]
        ),
        encoding="utf-8",
    )
    seconds = round(time.perf_counter() - t0, 3)
    artifacts.finish(
        "answer_likelihood", key, {"checkpoint": checkpoint_fp, "sequences": len(pairs), "seconds": seconds}
    )
    rows = rows_from_items(scores)
    if log:
        log(
            f"answer likelihood: {len(items)} items, {len(pairs)} answer sequences in {seconds}s: "
            + ", ".join(f"{r.metric}={r.value:.4g}" for r in rows if r.value is not None)
        )
    return LikelihoodResult(rows, scores, adir, False, seconds, {"sequences": len(pairs)})
