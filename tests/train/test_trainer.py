"""End-to-end LoRA training on a tiny random Llama (CPU, seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from ual_dagster.config.training import LoraConfig, TrainingConfig
from ual_dagster.train.examples import tokenize_example
from ual_dagster.train.prompts import render_prompt
from ual_dagster.train.records import RESULT_FILE, TrainExample
from ual_dagster.train.resume import latest_checkpoint
from ual_dagster.train.trainer import train_lora

from .conftest import make_examples

CFG = TrainingConfig(
    lora=LoraConfig(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]),
    learning_rate=2e-2,
    lr_scheduler="cosine",
    warmup_ratio=0.1,
    epochs=3,
    batch_size=4,
    grad_accum=2,
    max_length=48,
    save_every_steps=3,
    loss_chunk_tokens=16,
)


def adapter_weights(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


class Interrupt(RuntimeError):
    pass


@pytest.mark.slow
def test_loss_goes_down_and_adapter_reloads_to_same_outputs(tiny_base, tmp_path):
    examples = make_examples(24, epsilon=0.1)
    rows = []
    result = train_lora(tiny_base, examples, CFG, tmp_path / "run", log=rows.append, progress_every=2)
    assert result.steps == 9  # ceil(3 epochs * 6 batches / accum 2)
    assert [r["step"] for r in result.curve] == list(range(1, 10))
    first, last = result.curve[0]["loss"], result.metadata["mean_loss_last_5_steps"]
    assert last < 0.9 * first
    assert result.eps_stats["mean"] == pytest.approx(0.1)
    assert all(r["eps_mean"] == pytest.approx(0.1) for r in result.curve)
    assert result.resumed_from_step == 0 and result.tokens_per_s > 0
    assert latest_checkpoint(tmp_path / "run") is None  # removed once the adapter is saved
    assert any(line.startswith("LoRA training: 2/9 ") for line in rows)  # progress_every=2 forces a line

    # The saved adapter reproduces the trained model's logits.
    tok = AutoTokenizer.from_pretrained(result.adapter_path)
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    reloaded = PeftModel.from_pretrained(base, result.adapter_path).eval()
    ids = torch.tensor([tokenize_example(examples[1], tok, "alpaca", 48).input_ids])
    with torch.no_grad():
        tuned = reloaded(input_ids=ids).logits
        with reloaded.disable_adapter():
            untouched = reloaded(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_base)(input_ids=ids).logits
    assert torch.allclose(untouched, plain, atol=1e-6)
    assert not torch.allclose(tuned, plain, atol=1e-3)  # the adapter changed the model
    reloaded_again = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), result.adapter_path)
    with torch.no_grad():
        assert torch.allclose(reloaded_again.eval()(input_ids=ids).logits, tuned, atol=1e-6)

    # A finished run is not trained again.
    again = train_lora(tiny_base, examples, CFG, tmp_path / "run")
    assert again.curve == result.curve


@pytest.mark.slow
def test_killed_run_resumes_and_matches_uninterrupted(tiny_base, tmp_path):
    examples = make_examples(24, epsilon=0.05)
    full = train_lora(tiny_base, examples, CFG, tmp_path / "full")

    def crash_after_step_5(row):
        if row["step"] == 5:
            raise Interrupt("simulated kill")

    with pytest.raises(Interrupt):
        train_lora(tiny_base, examples, CFG, tmp_path / "killed", on_step=crash_after_step_5)
    assert latest_checkpoint(tmp_path / "killed").name == "step-00000003"
    assert not (tmp_path / "killed" / RESULT_FILE).exists()

    resumed = train_lora(tiny_base, examples, CFG, tmp_path / "killed")
    assert resumed.resumed_from_step == 3
    assert [r["step"] for r in resumed.curve] == list(range(1, 10))
    for a, b in zip(resumed.curve, full.curve):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["lr"] == pytest.approx(b["lr"])
    got, want = adapter_weights(tmp_path / "killed" / "adapter"), adapter_weights(tmp_path / "full" / "adapter")
    assert got.keys() == want.keys()
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6), k


@pytest.mark.slow
def test_methods_differ_only_through_epsilon(tiny_base, tmp_path):
    """sft (eps 0) and ual with every eps 0 are the same computation; other eps differ."""
    cfg = CFG.model_copy(update={"epochs": 1, "grad_accum": 1})
    sft = make_examples(16, epsilon=0.0)
    ual_zero = [e.model_copy(update={"epsilon": 0.0}) for e in sft]
    ual = [e.model_copy(update={"epsilon": 0.05 * (i % 4)}) for i, e in enumerate(sft)]
    a = train_lora(tiny_base, sft, cfg, tmp_path / "sft")
    b = train_lora(tiny_base, ual_zero, cfg, tmp_path / "ual0")
    c = train_lora(tiny_base, ual, cfg, tmp_path / "ual")
    wa, wb, wc = (adapter_weights(tmp_path / d / "adapter") for d in ("sft", "ual0", "ual"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.allclose(wa[k], wc[k]) for k in wa)
    assert a.curve == [dict(r, tokens_per_s=a.curve[i]["tokens_per_s"]) for i, r in enumerate(b.curve)]
    assert c.eps_stats["max"] == pytest.approx(0.15)


def test_prompt_templates_and_response_only_labels(tiny_base):
    assert render_prompt("Do X.", "", "alpaca") == "### Instruction:\nDo X.\n\n### Response:\n"
    assert render_prompt("Do X.", "data", "alpaca") == "### Instruction:\nDo X.\n\n### Input:\ndata\n\n### Response:\n"
    assert render_prompt("Do X.", "data", "plain") == "Do X.\ndata\n"
    with pytest.raises(ValueError, match="unknown prompt template"):
        render_prompt("x", "", "chatml")

    tok = AutoTokenizer.from_pretrained(tiny_base)
    ex = TrainExample(instruction="Add 1 and 2.", input="", output="3", epsilon=0.1)
    t = tokenize_example(ex, tok, "alpaca", 64)
    n_prompt = 1 + len(tok(render_prompt(ex.instruction, "", "alpaca"), add_special_tokens=False)["input_ids"])
    assert t.input_ids[0] == tok.bos_token_id and t.input_ids[-1] == tok.eos_token_id
    assert t.labels[:n_prompt] == [-100] * n_prompt
    assert t.labels[n_prompt:] == t.input_ids[n_prompt:]
    assert tok.decode(t.input_ids[n_prompt:-1]) == "3"
    short = tokenize_example(ex, tok, "alpaca", 5)
    assert len(short.input_ids) == 5 and short.response_truncated_away


def test_result_file_is_json(tiny_base, tmp_path):
    cfg = CFG.model_copy(update={"epochs": 0.5, "grad_accum": 1})
    result = train_lora(tiny_base, make_examples(8), cfg, tmp_path)
    stored = json.loads((tmp_path / RESULT_FILE).read_text())
    assert stored["steps"] == result.steps == 1
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "tokenizer.json").is_file()


def test_eps_stats_histogram_counts_every_example():
    from ual_dagster.train.trainer import eps_stats

    stats = eps_stats(
        [TrainExample(instruction="i", input="", output="o", epsilon=e) for e in [0.0, 0.049, 0.05, 0.1, 0.1, 0.2]]
    )
    assert stats["histogram"] == {"0.00-0.05": 2, "0.05-0.10": 1, "0.10-0.15": 2, "0.20-0.25": 1}
    assert (stats["min"], stats["max"]) == (0.0, 0.2)
    assert stats["mean"] == pytest.approx(0.499 / 6)
