"""A tiny random Llama + locally trained tokenizer + LoRA adapter, saved once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from dataclasses import dataclass
from pathlib import Path

import pytest

CORPUS = [
    "### Instruction:\nAdd 2 and 3.\n\n### Response:\n5",
    "### Instruction:\nName a fruit.\n\n### Response:\napple",
    "### Instruction:\nSort the letters c a b.\n\n### Response:\na b c",
    "### Instruction:\nName a colour.\n\n### Response:\nred",
    "Question: Tom has 3 apples and buys 4 more. How many apples?\nAnswer: 3 + 4 = 7\n#### 7",
] * 20 + [f"{i} plus {j} is {i + j}" for i in range(20) for j in range(5)]


@dataclass(frozen=True)
class TinyCheckpoint:
    base_path: Path
    adapter_path: Path
    fingerprint: str


def build_tiny_checkpoint(root: Path) -> TinyCheckpoint:
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS, trainer)
    bos = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    # Random (not zero) LoRA weights, so the adapter really changes the outputs.
    lora = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    adapter = root / "adapter"
    lora.save_pretrained(adapter)
    return TinyCheckpoint(base_path=base, adapter_path=adapter, fingerprint="tinyckpt0001")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoint:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))
