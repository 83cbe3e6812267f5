"""The trainer's loss paths: the linear path (no logits) against the logits path, and
which models it refuses (LoRA on lm_head, soft-capped / scaled logits, a failed probe)."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

from ual_dagster.config.training import LoraConfig as ProfileLoraConfig
from ual_dagster.config.training import TrainingConfig
from ual_dagster.train.examples import IGNORE_INDEX, collate, tokenize_example
from ual_dagster.train.lm_loss import MicroBatchLoss, linear_head_unsupported
from ual_dagster.train.trainer import train_lora

from .conftest import make_examples

SMALL = dict(vocab_size=96, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)


def peft_llama(target_modules=("q_proj", "v_proj"), seed=0, config=None):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config or LlamaConfig(**SMALL, tie_word_embeddings=False))
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=list(target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    # LoRA B starts at zero; move it so the adapter changes the outputs.
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    return peft_model


def random_batch(seed=1, B=3, T=10, V=96):
    from ual_dagster.train.examples import Batch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[2, 7:] = 0
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[:, :3] = IGNORE_INDEX  # a prompt
    labels[2, 6:] = IGNORE_INDEX  # padding
    return Batch(ids, mask, labels, torch.tensor([0.0, 0.1, 0.25]))


def loss_and_lora_grads(model, impl, batch, normalizer=17.0):
    model.zero_grad(set_to_none=True)
    fn = MicroBatchLoss.for_model(model, model, impl, 4, batch.input_ids[:1])
    loss = fn(batch, normalizer)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return fn.impl, loss.detach(), grads


def test_linear_path_gives_the_logits_paths_loss_and_lora_gradients():
    model = peft_llama()
    batch = random_batch()
    impl_a, loss_a, grads_a = loss_and_lora_grads(model, "linear", batch)
    impl_b, loss_b, grads_b = loss_and_lora_grads(model, "logits", batch)
    assert (impl_a, impl_b) == ("linear", "logits")
    assert torch.allclose(loss_a, loss_b, rtol=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 4
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-7), name
    assert loss_and_lora_grads(model, "auto", batch)[0] == "linear"


def test_linear_path_with_a_biased_lm_head():
    model = peft_llama()
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.normal_()
    biased.requires_grad_(False)
    model.get_base_model().lm_head = biased
    batch = random_batch(seed=2)
    _, loss_a, grads_a = loss_and_lora_grads(model, "linear", batch)
    _, loss_b, grads_b = loss_and_lora_grads(model, "logits", batch)
    assert torch.allclose(loss_a, loss_b, rtol=1e-6)
    assert all(torch.allclose(grads_a[n], grads_b[n], rtol=1e-4, atol=1e-7) for n in grads_a)


def test_lora_on_lm_head_is_refused_by_linear_and_auto_falls_back():
    model = peft_llama(target_modules=("q_proj", "lm_head"))
    assert "not a plain torch.nn.Linear" in linear_head_unsupported(model)
    ids = random_batch().input_ids[:1]
    with pytest.raises(ValueError, match="loss_impl 'linear' does not fit this model: .*lm_head"):
        MicroBatchLoss.for_model(model, model, "linear", 4, ids)
    auto = MicroBatchLoss.for_model(model, model, "auto", 4, ids)
    assert auto.impl == "logits" and "fell back" in auto.reason
    # The fallback still trains the lm_head adapter.
    auto(random_batch(), 10.0).backward()
    assert any("lm_head" in n and p.grad is not None and p.grad.any() for n, p in model.named_parameters())


def test_soft_capped_logits_fall_back_to_the_logits_path():
    config = Gemma2Config(**SMALL, num_key_value_heads=1, head_dim=8, final_logit_softcapping=30.0)
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config)
    assert "final_logit_softcapping = 30.0" in linear_head_unsupported(model)
    ids = random_batch().input_ids[:1]
    with pytest.raises(ValueError, match="final_logit_softcapping"):
        MicroBatchLoss.for_model(model, model, "linear", 4, ids)
    assert MicroBatchLoss.for_model(model, model, "auto", 4, ids).impl == "logits"

    config.final_logit_softcapping = None  # no capping: the plain lm_head output again
    assert linear_head_unsupported(Gemma2ForCausalLM(config)) is None


class ScaledLlama(LlamaForCausalLM):
    """Scales its logits after the lm_head without any config attribute saying so."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 0.5
        return out


def test_the_probe_catches_an_unlisted_logit_transform():
    torch.manual_seed(0)
    model = ScaledLlama(LlamaConfig(**SMALL))
    assert linear_head_unsupported(model) is None  # nothing the static checks know
    ids = random_batch().input_ids[:1]
    auto = MicroBatchLoss.for_model(model, model, "auto", 4, ids)
    assert auto.impl == "logits" and "differ from the lm_head's output" in auto.reason
    with pytest.raises(ValueError, match="differ from the lm_head's output"):
        MicroBatchLoss.for_model(model, model, "linear", 4, ids)
    assert model.training  # the probe restores train mode


@pytest.mark.slow
def test_train_lora_linear_and_logits_paths_train_the_same_adapter(tiny_base, tmp_path):
    cfg = TrainingConfig(
        lora=ProfileLoraConfig(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"]),
        learning_rate=1e-2,
        epochs=1,
        batch_size=4,
        grad_accum=2,
        max_length=48,
        loss_chunk_tokens=16,
    )
    examples = make_examples(16, epsilon=0.1)
    runs = {}
    for impl in ("linear", "logits", "auto"):
        runs[impl] = train_lora(tiny_base, examples, cfg.model_copy(update={"loss_impl": impl}), tmp_path / impl)
    assert runs["auto"].metadata["loss_impl"] == "linear"  # the tiny Llama's logits are its lm_head's output
    assert runs["logits"].metadata["loss_impl"] == "logits"
    for a, b in zip(runs["linear"].curve, runs["logits"].curve):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    from safetensors.torch import load_file

    wa, wb = (load_file(str(tmp_path / d / "adapter" / "adapter_model.safetensors")) for d in ("linear", "logits"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k


def test_tiny_base_model_is_linear_ready(tiny_base):
    """The profile's built base model (tied embeddings) passes the static checks and the probe."""
    from transformers import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    ex = tokenize_example(make_examples(1)[0], tok, "alpaca", 48)
    batch = collate([ex], tok.pad_token_id or 0)
    fn = MicroBatchLoss.for_model(model, model, "auto", 8, batch.input_ids)
    assert fn.impl == "linear", fn.reason
