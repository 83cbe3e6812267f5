"""Fixtures: a tiny random Llama with a locally trained tokenizer (no hub, no network)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from ual_dagster.config.training import BaseModelConfig, TinyModelConfig  # noqa: E402
from ual_dagster.storage.artifacts import ArtifactStore  # noqa: E402
from ual_dagster.train.base_model import build_base_model  # noqa: E402
from ual_dagster.train.prompts import render_text  # noqa: E402
from ual_dagster.train.records import TrainExample  # noqa: E402

WORDS = ["red", "green", "blue", "apple", "pear", "plum", "cat", "dog", "owl"]


def make_examples(n: int, epsilon: float = 0.0) -> list[TrainExample]:
    out = []
    for i in range(n):
        a, b = i % 7, (i * 3) % 5
        if i % 2:
            out.append(TrainExample(instruction=f"Add {a} and {b}.", input="", output=str(a + b), epsilon=epsilon))
        else:
            out.append(
                TrainExample(
                    instruction="Name a word from the list.",
                    input=" ".join(WORDS[i % 3 :: 2]),
                    output=WORDS[i % 9],
                    epsilon=epsilon,
                )
            )
    return out


TINY = TinyModelConfig(
    vocab_size=320,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    max_position_embeddings=64,
    pretrain_steps=40,
    pretrain_lr=1e-2,
    pretrain_batch_size=4,
    pretrain_seq_len=32,
)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> str:
    """Path of a tiny Llama + tokenizer, briefly pre-trained (random logits are too flat for LoRA to move)."""
    texts = [render_text(e.instruction, e.input, e.output, "alpaca") for e in make_examples(60)]
    store = ArtifactStore(tmp_path_factory.mktemp("artifacts"))
    return build_base_model(BaseModelConfig(source="build_tiny", tiny=TINY), texts, store).path
