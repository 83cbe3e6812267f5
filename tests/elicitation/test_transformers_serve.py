"""Wire compatibility with a real `transformers serve` (which ignores logprobs and response_format).

The served model is built here: a one-layer Llama whose attention and MLP outputs are
zeroed, one-hot embeddings and an lm_head that maps each token to a fixed successor, so
greedy decoding after the chat template's '<|assistant|>' deterministically writes
'{"uncertainty": 7}' and stops. That makes the whole path real (HTTP, chat template,
generation, usage, our parsing) without any trained weights.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.elicitation.conftest import openai_cfg
from tests.elicitation.samples_table import numbered_samples, write_samples
from ual_dagster.elicitation import current_scores, elicit_dataset

VOCAB = ["<unk>", "<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", '{"uncertainty":', "7}"]
SUCCESSOR = {"<|assistant|>": '{"uncertainty":', '{"uncertainty":': "7}", "7}": "</s>"}
CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_scripted_model(directory: Path) -> None:
    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    size = len(VOCAB)
    config = LlamaConfig(
        vocab_size=size,
        hidden_size=size,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(size))
        model.model.layers[0].self_attn.o_proj.weight.zero_()
        model.model.layers[0].mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for token, successor in SUCCESSOR.items():
            model.lm_head.weight[vocab[successor], vocab[token]] = 10.0
    model.generation_config.do_sample = False
    model.save_pretrained(directory)


@pytest.mark.slow
def test_elicitation_through_transformers_serve(store, tmp_path, monkeypatch):
    if shutil.which("transformers", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the transformers CLI is not installed")
    model_dir = tmp_path / "scripted"
    build_scripted_model(model_dir)
    hf_home = tmp_path / "hf_home"
    (hf_home / "hub").mkdir(parents=True)  # GET /v1/models scans the hub cache and 500s without it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "transformers"),
            "serve",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)

        samples = numbered_samples(4)
        write_samples(store, "serve", samples)
        for method in ("verbalized", "logprobs"):
            cfg = openai_cfg(
                f"http://127.0.0.1:{port}/v1",
                model=str(model_dir),
                method=method,
                concurrency=2,
                timeout_s=60,
                max_retries=2,
            )
            result = elicit_dataset("serve", cfg, store)
            assert result.metadata["rows_by_status"] == {"ok": 4, "unparseable": 0, "failed": 0}, result.metadata
            assert set(current_scores(store, "serve", cfg).values()) == {0.7}
            assert result.metadata["completion_tokens"] > 0
        # logprobs are ignored by transformers serve: every answer fell back to the written score
        assert result.metadata["logprobs_fallbacks"] == 4
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
