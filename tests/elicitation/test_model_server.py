"""The loopback model server (base_url: local-model): logprobs checked against the model's own
forward pass, batching that changes no answer, and the openai backend on top of it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from tests.elicitation.samples_table import Sample, write_samples
from tests.elicitation.test_hf_local import build_tiny_model
from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation import current_scores, elicit_dataset, elicitor_fingerprint
from ual_dagster.elicitation.local_server import local_model_dir
from ual_dagster.elicitation.model_server import CausalLMService, create_model_app
from ual_dagster.loopback import serve_in_thread

CHAT = "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}{% if add_generation_prompt %} ASSISTANT: {% endif %}"
PROMPTS = ["Name a fruit number 1.", "Name a fruit number 2. apple pear apple", "Name a fruit number 3. pear"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny")
    build_tiny_model(directory)
    tok = PreTrainedTokenizerFast.from_pretrained(directory)
    tok.chat_template = CHAT
    tok.save_pretrained(directory)
    return directory


def _reference(directory, prompt: str, steps: int):
    """Greedy tokens and log-softmax rows from plain unbatched forward passes."""
    tok = PreTrainedTokenizerFast.from_pretrained(directory)
    model = LlamaForCausalLM.from_pretrained(directory).eval()
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tok.encode(text, add_special_tokens=False)
    tokens, rows = [], []
    with torch.no_grad():
        for _ in range(steps):
            row = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            nxt = int(row.argmax())
            if nxt == tok.eos_token_id:
                break
            tokens.append(tok.decode([nxt]))
            rows.append(row)
            ids.append(nxt)
    return tok, tokens, rows


def test_logprobs_are_the_models_and_batching_changes_nothing(tiny_dir):
    service = CausalLMService(tiny_dir, max_batch=8)
    try:
        with serve_in_thread(create_model_app(service, "tiny")) as root:

            async def ask_all():
                async with httpx.AsyncClient(base_url=root, timeout=120) as client:
                    bodies = [
                        {
                            "model": "tiny",
                            "messages": [{"role": "user", "content": p}],
                            "max_tokens": 3,
                            "temperature": 0,
                            "logprobs": True,
                            "top_logprobs": 5,
                        }
                        for p in PROMPTS
                    ]
                    return await asyncio.gather(*(client.post("/v1/chat/completions", json=b) for b in bodies))

            responses = asyncio.run(ask_all())
            wrong = httpx.post(
                f"{root}/v1/chat/completions", json={"model": "other", "messages": [{"role": "user", "content": "x"}]}
            )
    finally:
        service.close()
    assert wrong.status_code == 404 and "serves 'tiny'" in wrong.text
    assert max(service.batches) > 1  # concurrent requests shared a forward pass
    for prompt, response in zip(PROMPTS, responses):
        body = response.json()
        choice = body["choices"][0]
        tok, tokens, rows = _reference(tiny_dir, prompt, 3)
        content = choice["logprobs"]["content"]
        assert [c["token"] for c in content] == tokens
        for entry, row in zip(content, rows):
            assert entry["logprob"] == pytest.approx(float(row.max()), abs=1e-4)
            values, ids = row.topk(5)
            assert [a["token"] for a in entry["top_logprobs"]] == [tok.decode([i]) for i in ids.tolist()]
            assert [a["logprob"] for a in entry["top_logprobs"]] == pytest.approx(values.tolist(), abs=1e-4)
        assert body["usage"]["completion_tokens"] >= len(tokens)


def test_openai_backend_with_answer_prefill_reads_the_score_position(tiny_dir, store):
    """With answer_prefill the server continues '{"uncertainty": ', so the first token is read as the score."""
    samples = [Sample(p, "", "apple") for p in PROMPTS]
    write_samples(store, "srv", samples)
    cfg = OpenAIElicitation(
        backend="openai",
        base_url="local-model",
        model=str(tiny_dir),
        method="logprobs",
        answer_prefill=True,
        top_logprobs=20,
        max_tokens=1,
        max_parse_retries=0,
        api_key_env="UAL_TEST_UNSET_KEY",
        concurrency=4,
    )
    result = elicit_dataset("srv", cfg, store)
    assert result.metadata["logprobs_fallbacks"] == 0
    ok = current_scores(store, "srv", cfg)
    tok = PreTrainedTokenizerFast.from_pretrained(tiny_dir)
    model = LlamaForCausalLM.from_pretrained(tiny_dir).eval()
    digit_ids = {tok.convert_tokens_to_ids(str(s)): s for s in range(11)}
    from ual_dagster.elicitation.prompt import ANSWER_PREFIX, render_prompt

    for s in samples:
        prompt = render_prompt("uncertainty_v1", s.instruction, s.input, s.output, 10)
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": ANSWER_PREFIX}],
            tokenize=False,
            continue_final_message=True,
        )
        with torch.no_grad():
            row = torch.log_softmax(model(torch.tensor([tok.encode(text, add_special_tokens=False)])).logits[0, -1], -1)
        if int(row.argmax()) not in digit_ids:
            assert s.sample_id not in ok  # the greedy token is not a score: nothing to read, no made-up score
            continue
        top = row.topk(20)
        mass = {digit_ids[i]: float(v.exp()) for v, i in zip(top.values, top.indices.tolist()) if i in digit_ids}
        expected = sum(k * p for k, p in mass.items()) / sum(mass.values()) / 10
        assert ok[s.sample_id] == pytest.approx(expected, abs=1e-5)


def test_local_model_fingerprint_follows_the_weights(tiny_dir, tmp_path):
    base = dict(backend="openai", base_url="local-model", method="logprobs")
    first = elicitor_fingerprint(OpenAIElicitation(model=str(tiny_dir), **base))
    assert first != elicitor_fingerprint(OpenAIElicitation(model=str(tiny_dir), answer_prefill=True, **base))
    other = tmp_path / "other"
    build_tiny_model(other)
    (other / "config.json").write_text(
        (other / "config.json").read_text().replace('"hidden_size": 32', '"hidden_size": 64')
    )
    assert elicitor_fingerprint(OpenAIElicitation(model=str(other), **base)) != first
    with pytest.raises(FileNotFoundError, match="neither"):
        local_model_dir(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="unknown packaged model"):
        local_model_dir("packaged:gpt5")
