"""The base model to fine-tune: a tiny locally trained Llama, a hub model or a local one.

build_tiny trains a byte-level BPE tokenizer and pre-trains a small LlamaForCausalLM
on the given texts (the tiny profile's instruction sets rendered with the fine-tuning
prompt template), so the whole pipeline runs offline on a CPU. The result lives in the
content-addressed artifact dir `base_model/<fingerprint>` and is reused when finished.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ual_dagster import versions
from ual_dagster.config.training import BaseModelConfig, TinyModelConfig
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Progress
from ual_dagster.storage.artifacts import ArtifactStore

# Bump when the tokenizer, architecture or pre-training code changes what is built.
ARTIFACT_KIND = "base_model"
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
# Files whose names and sizes identify a local model directory.
LOCAL_MODEL_FILES = ("config.json", "*.safetensors", "*.bin", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class BaseModelResult:
    fingerprint: str
    path: str  # a directory for from_pretrained, or a hub reference "<hub id>@<revision>" (model_ref)
    metadata: dict = field(default_factory=dict)
    revision: str | None = None  # the hub revision `path` carries (None: a local folder or an unpinned id)


def model_ref(path: str, revision: str | None) -> str:
    """One string that names what from_pretrained loads: `path`, or `<hub id>@<revision>`.

    The base model's path travels as a plain string (DuckDB's base_models table, the
    training spec JSON of a subprocess or pod, the evaluation steps), so a pinned hub
    revision rides along with the id and every loader (split_model_ref) passes it to
    from_pretrained. Hub ids cannot contain '@'."""
    return f"{path}@{revision}" if revision else str(path)


def split_model_ref(ref: str | Path) -> tuple[str, str | None]:
    """(path or hub id, revision or None) of a model_ref string. An existing local path is
    never split, even when its name contains '@'."""
    text = str(ref)
    if "@" not in text or Path(text).exists():
        return text, None
    head, _, tail = text.rpartition("@")
    if not head or not tail or "/" in tail:
        return text, None
    return head, tail


def revision_kwargs(revision: str | None) -> dict[str, str]:
    """`{"revision": ...}` for from_pretrained when pinned, else nothing (its default)."""
    return {"revision": revision} if revision else {}


def texts_hash(texts: list[str]) -> str:
    """Order-sensitive content hash of the pre-training texts (order sets the packing)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def build_base_model(
    cfg: BaseModelConfig,
    texts: Iterable[str] | None,
    artifacts: ArtifactStore,
    log: Callable[[str], None] | None = None,
) -> BaseModelResult:
    log = log or (lambda _msg: None)
    if cfg.source == "hub":
        # "model_ref": since the revision reaches from_pretrained (before, the weights came from
        # the hub's main whatever the pin), a hub base model is a new one, and so is all it trained
        fp = stable_hash(versions.BASE_MODEL, "hub", "model_ref", cfg.hub_id, cfg.revision)
        meta = {"source": "hub", "hub_id": cfg.hub_id, "revision": cfg.revision or "unpinned"}
        return BaseModelResult(fp, model_ref(cfg.hub_id, cfg.revision), meta, revision=cfg.revision)
    if cfg.source == "local":
        return _resolve_local(cfg)
    corpus = [t for t in (texts or []) if t.strip()]
    if not corpus:
        raise ValueError("base_model source 'build_tiny' needs non-empty pre-training texts")
    tiny = cfg.tiny or TinyModelConfig()
    fp = stable_hash(versions.BASE_MODEL, tiny.model_dump(mode="json"), texts_hash(corpus))
    out = artifacts.path(ARTIFACT_KIND, fp)
    if artifacts.is_finished(ARTIFACT_KIND, fp):
        log(f"base model {fp} already built at {out}; reusing it")
        return BaseModelResult(fp, str(out), {**artifacts.manifest(ARTIFACT_KIND, fp), "reused": True})
    out = artifacts.open(ARTIFACT_KIND, fp)
    meta = _build_tiny(tiny, corpus, out, log)
    artifacts.finish(ARTIFACT_KIND, fp, meta)
    return BaseModelResult(fp, str(out), {**meta, "reused": False})


def _resolve_local(cfg: BaseModelConfig) -> BaseModelResult:
    root = Path(cfg.path).expanduser()
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"base_model.path {root}: no config.json (not a transformers model directory)")
    files = sorted({p for pattern in LOCAL_MODEL_FILES for p in root.glob(pattern)})
    listing = [(p.name, p.stat().st_size) for p in files]
    fp = stable_hash(versions.BASE_MODEL, "local", listing)
    return BaseModelResult(fp, str(root), {"source": "local", "path": str(root), "files": len(listing)})


def _train_tokenizer(tiny: TinyModelConfig, corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=tiny.vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def _pack(corpus: list[str], tokenizer, seq_len: int):
    """bos + text + eos for every text, concatenated and cut into seq_len blocks."""
    import torch

    stream: list[int] = []
    for ids in tokenizer(corpus, add_special_tokens=False)["input_ids"]:
        stream += [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
    n_blocks = max(1, len(stream) // seq_len)
    stream = stream[: n_blocks * seq_len] if len(stream) >= seq_len else stream
    return torch.tensor(stream, dtype=torch.long).view(n_blocks, -1), len(stream)


def _build_tiny(tiny: TinyModelConfig, corpus: list[str], out: Path, log: Callable[[str], None]) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, get_scheduler

    started = time.perf_counter()
    torch.manual_seed(tiny.seed)
    tokenizer = _train_tokenizer(tiny, corpus)
    seq_len = min(tiny.pretrain_seq_len, tiny.max_position_embeddings)
    blocks, n_tokens = _pack(corpus, tokenizer, seq_len)
    log(f"tokenizer: {len(tokenizer)} tokens; corpus: {len(corpus)} texts, {n_tokens} tokens, {len(blocks)} blocks")
    model_cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        num_key_value_heads=tiny.num_attention_heads,
        max_position_embeddings=tiny.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(model_cfg)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tiny.pretrain_lr, weight_decay=0.01, betas=(0.9, 0.95))
    scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=tiny.pretrain_warmup_steps, num_training_steps=max(1, tiny.pretrain_steps)
    )
    gen = torch.Generator().manual_seed(tiny.seed)
    per_epoch = max(1, math.ceil(len(blocks) / tiny.pretrain_batch_size))
    order = torch.randperm(len(blocks), generator=gen)
    losses: list[float] = []
    progress = Progress("base model pre-training", tiny.pretrain_steps, log)
    for step in range(tiny.pretrain_steps):
        k = step % per_epoch
        if k == 0 and step:
            order = torch.randperm(len(blocks), generator=gen)
        batch = blocks[order[k * tiny.pretrain_batch_size : (k + 1) * tiny.pretrain_batch_size]]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        progress.advance(note=f"loss {losses[-1]:.3f}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tail = losses[-min(20, len(losses)) :] if losses else [float("nan")]
    return {
        "source": "build_tiny",
        "path": str(out),
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus_texts": len(corpus),
        "corpus_tokens": n_tokens,
        "pretrain_steps": tiny.pretrain_steps,
        "pretrain_epochs": round(tiny.pretrain_steps / per_epoch, 2),
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail),
        "loss_curve": {str(i + 1): round(v, 4) for i, v in enumerate(losses) if (i + 1) % 25 == 0},
        "seconds": round(time.perf_counter() - started, 1),
    }
