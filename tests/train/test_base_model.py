from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from ual_dagster.config.training import BaseModelConfig
from ual_dagster.storage.artifacts import ArtifactStore
from ual_dagster.train.base_model import build_base_model

from .conftest import TINY, make_examples


def corpus(n=120):
    return [f"### Instruction:\n{e.instruction}\n\n### Response:\n{e.output}" for e in make_examples(n)]


@pytest.mark.slow
def test_build_tiny_learns_the_texts_and_is_reused(tmp_path):
    store = ArtifactStore(tmp_path)
    cfg = BaseModelConfig(source="build_tiny", tiny=TINY.model_copy(update={"pretrain_steps": 40, "pretrain_lr": 1e-2}))
    logs: list[str] = []
    first = build_base_model(cfg, corpus(), store, log=logs.append)
    assert store.is_finished("base_model", first.fingerprint)
    assert first.metadata["reused"] is False
    assert first.metadata["final_loss"] < 0.5 * first.metadata["first_loss"]

    tok = AutoTokenizer.from_pretrained(first.path)
    assert tok.pad_token_id is not None and tok.bos_token_id is not None and tok.eos_token_id is not None
    text = "### Instruction:\nAdd 3 and 4."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    model = AutoModelForCausalLM.from_pretrained(first.path)
    assert model.config.vocab_size == len(tok)

    again = build_base_model(cfg, corpus(), store, log=logs.append)
    assert (again.fingerprint, again.path, again.metadata["reused"]) == (first.fingerprint, first.path, True)
    other = build_base_model(cfg, corpus(100), store)
    assert other.fingerprint != first.fingerprint


def test_hub_and_local_resolve_without_network(tmp_path, tiny_base):
    hub = build_base_model(
        BaseModelConfig(source="hub", hub_id="org/model", revision="abc"), None, ArtifactStore(tmp_path)
    )
    # the revision rides with the id to every loader (split_model_ref)
    assert (hub.path, hub.revision) == ("org/model@abc", "abc")
    pinned = build_base_model(
        BaseModelConfig(source="hub", hub_id="org/model", revision="def"), None, ArtifactStore(tmp_path)
    )
    assert pinned.fingerprint != hub.fingerprint

    local = build_base_model(BaseModelConfig(source="local", path=tiny_base), None, ArtifactStore(tmp_path))
    assert local.path == tiny_base and local.metadata["files"] >= 2
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_base_model(BaseModelConfig(source="local", path=str(tmp_path)), None, ArtifactStore(tmp_path))


def test_build_tiny_needs_texts(tmp_path):
    with pytest.raises(ValueError, match="non-empty pre-training texts"):
        build_base_model(BaseModelConfig(source="build_tiny", tiny=TINY), ["  "], ArtifactStore(tmp_path))
