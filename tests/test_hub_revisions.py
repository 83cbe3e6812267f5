"""Every hub loader gets the profile's pinned revision (issue 20, item 1), and `validate`
refuses a hub profile with an unpinned id unless it says `allow_unpinned: true`.

The hub loaders are patched (no network): transformers' from_pretrained (model and
tokenizer), peft's get_peft_model, datasets.load_dataset (our data sets and the GSM8K
behind lm-eval's tasks), hf_hub_download (AlpacaEval references) and lm-eval's HFLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers

from ual_dagster.config import load_profile
from ual_dagster.config.data import DatasetConfig
from ual_dagster.config.evaluation import AlpacaEvalConfig, GenerationConfig, LmEvalTaskConfig
from ual_dagster.config.loader import profile_problems
from ual_dagster.config.pins import hub_pins, unpinned_problems
from ual_dagster.config.training import BaseModelConfig, LoraConfig, TrainingConfig
from ual_dagster.storage.artifacts import ArtifactStore
from ual_dagster.train.base_model import build_base_model, model_ref, split_model_ref

REV = "01c7f73d771dfac7d292323805ebc428287df4f9"
HUB_ID = "meta-llama/Llama-2-7b-hf"


@pytest.fixture
def tiny_llama():
    """A 2-layer Llama and a tokenizer-like object standing in for the hub's weights."""
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )

    class Tok:
        pad_token_id = None
        pad_token = None
        eos_token = "</s>"

        def save_pretrained(self, path):
            Path(path).mkdir(parents=True, exist_ok=True)

    return cfg, Tok


@pytest.fixture
def patched_from_pretrained(monkeypatch, tiny_llama):
    """Record every from_pretrained call's (id, kwargs) and return the tiny stand-ins."""
    cfg, tok = tiny_llama
    calls: list[tuple[str, str, dict]] = []

    def model_loader(path, **kwargs):
        calls.append(("model", str(path), kwargs))
        return transformers.LlamaForCausalLM(cfg)

    def tokenizer_loader(path, **kwargs):
        calls.append(("tokenizer", str(path), kwargs))
        return tok()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model_loader)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer_loader)
    return calls


def test_model_ref_carries_the_revision_and_never_splits_a_local_path(tmp_path):
    assert split_model_ref(model_ref(HUB_ID, REV)) == (HUB_ID, REV)
    assert split_model_ref(model_ref(HUB_ID, None)) == (HUB_ID, None)
    local = tmp_path / "model@v2"
    local.mkdir()
    assert split_model_ref(str(local)) == (str(local), None)
    hub = build_base_model(BaseModelConfig(source="hub", hub_id=HUB_ID, revision=REV), None, ArtifactStore(tmp_path))
    assert (hub.path, hub.revision, hub.metadata["revision"]) == (f"{HUB_ID}@{REV}", REV, REV)


def test_training_loads_model_tokenizer_and_peft_base_at_the_revision(tmp_path, patched_from_pretrained):
    from ual_dagster.train.trainer import _load_model, _save_adapter

    base = build_base_model(BaseModelConfig(source="hub", hub_id=HUB_ID, revision=REV), None, ArtifactStore(tmp_path))
    cfg = TrainingConfig(lora=LoraConfig(r=2, alpha=4, target_modules=["q_proj", "v_proj"]))
    tokenizer, model = _load_model(base.path, cfg, "no")  # the path the base_model asset records
    assert [(kind, path, kw.get("revision")) for kind, path, kw in patched_from_pretrained] == [
        ("tokenizer", HUB_ID, REV),
        ("model", HUB_ID, REV),
    ]
    assert model.peft_config["default"].revision == REV  # the PEFT base
    _save_adapter(model, tokenizer, tmp_path)
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["revision"] == REV  # the adapter says which base revision it belongs to


def test_evaluation_loads_the_base_at_the_revision_and_refuses_another(tmp_path, patched_from_pretrained):
    from ual_dagster.evaluation.models import CheckpointHandle, load_checkpoint
    from ual_dagster.train.trainer import _load_model, _save_adapter

    cfg = TrainingConfig(lora=LoraConfig(r=2, alpha=4, target_modules=["q_proj", "v_proj"]))
    tokenizer, model = _load_model(model_ref(HUB_ID, REV), cfg, "no")
    _save_adapter(model, tokenizer, tmp_path)
    patched_from_pretrained.clear()

    handle = CheckpointHandle(model_ref(HUB_ID, REV), tmp_path / "adapter", "cpu")
    assert (str(handle.base_path), handle.revision) == (HUB_ID, REV)
    loaded = handle.get()
    assert [(kind, path, kw.get("revision")) for kind, path, kw in patched_from_pretrained] == [
        ("tokenizer", HUB_ID, REV),
        ("model", HUB_ID, REV),
    ]
    assert loaded.model.peft_config["default"].revision == REV
    handle.release()
    with pytest.raises(ValueError, match=f"trained on {HUB_ID}@{REV}, not on revision other"):
        load_checkpoint(HUB_ID, tmp_path / "adapter", "cpu", revision="other")


def test_hub_data_sets_and_alpaca_eval_references_load_at_their_revisions(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub

    from ual_dagster.data.hub import read_hub
    from ual_dagster.evaluation.alpaca import load_hub_references

    seen: dict[str, object] = {}

    def load_dataset(path, name=None, **kwargs):
        seen["load_dataset"] = (path, kwargs.get("revision"))
        return datasets.Dataset.from_dict({"instruction": ["2+2?"], "input": [""], "output": ["4"]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    ds = DatasetConfig(source="hub", entropy="high", hub_id="tatsu-lab/alpaca", revision="dce01c9b", split="train")
    assert len(list(read_hub(ds, "alpaca").rows)) == 1
    assert seen["load_dataset"] == ("tatsu-lab/alpaca", "dce01c9b")

    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps([{"instruction": "hi", "output": "hello"}]))

    def hf_hub_download(repo_id, filename, **kwargs):
        seen["hf_hub_download"] = (repo_id, filename, kwargs.get("revision"))
        return str(refs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    cfg = AlpacaEvalConfig(instructions="hub", hub_revision="2edc6fad")
    assert load_hub_references(cfg) == [{"instruction": "hi", "output": "hello"}]
    assert seen["hf_hub_download"] == ("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline.json", "2edc6fad")


@pytest.mark.parametrize("task", ["gsm8k_ual", "gsm8k"])
def test_lm_eval_tasks_read_gsm8k_at_the_revision_and_hflm_gets_the_model_revision(monkeypatch, tmp_path, task):
    """lm-eval builds the task from the YAML we render and loads its data set through
    datasets.load_dataset with the task's dataset_kwargs: the revision must arrive there."""
    import datasets
    import lm_eval
    import lm_eval.models.huggingface as hf
    from lm_eval.tasks import get_task_dict

    from ual_dagster.evaluation import lm_eval_runner

    loads: list[tuple[str, str | None, str | None]] = []

    def load_dataset(path, name=None, **kwargs):
        loads.append((path, name, kwargs.get("revision")))
        row = {"question": ["1+1?"], "answer": ["2\n#### 2"]}
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(row), "test": datasets.Dataset.from_dict(row)})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    captured: dict[str, object] = {}

    class FakeHFLM:
        def __init__(self, **kwargs):
            captured["hflm"] = kwargs

    def simple_evaluate(model, tasks, task_manager, **kwargs):
        get_task_dict(tasks, task_manager)  # builds the task: downloads its data set
        return {"results": {tasks[0]: {"exact_match,strict-match": 1.0}}}

    monkeypatch.setattr(hf, "HFLM", FakeHFLM)
    monkeypatch.setattr(lm_eval, "simple_evaluate", simple_evaluate)
    handle = SimpleNamespace(get=lambda: SimpleNamespace(model=object(), tokenizer=object()), revision=REV)
    cfg = LmEvalTaskConfig(name=task, revision="740312add88f781978c0658806c59bc2815b9866")
    lm_eval_runner._simple_evaluate(handle, cfg, None, GenerationConfig(), tmp_path, 0, None)
    assert loads == [("openai/gsm8k", "main", "740312add88f781978c0658806c59bc2815b9866")]
    assert captured["hflm"]["revision"] == REV


def test_validate_fails_an_unpinned_hub_profile_unless_it_allows_it(tmp_path):
    paper = load_profile("paper")
    assert unpinned_problems(paper) == []  # every id of the bundled paper profile is pinned
    keys = {key for key, _, _ in hub_pins(paper)}
    assert keys == {
        "base_model.revision",
        "datasets.alpaca.revision",
        "datasets.metamath.revision",
        "evaluation.alpaca_eval.hub_revision",
        "evaluation.lm_eval[0].revision",
        "evaluation.lm_eval[1].revision",
    }
    for name in ("cluster", str(Path(__file__).parents[1] / "examples" / "profiles" / "paper_mistral.yaml")):
        assert unpinned_problems(load_profile(name)) == [], name

    body = (Path(__file__).parents[1] / "ual_dagster" / "config" / "profiles" / "paper.yaml").read_text()
    unpinned = tmp_path / "unpinned.yaml"
    unpinned.write_text(
        body.replace("  revision: 01c7f73d771dfac7d292323805ebc428287df4f9\n", "").replace(
            "{name: gsm8k, num_fewshot: 5, revision: 740312add88f781978c0658806c59bc2815b9866}",
            "{name: gsm8k, num_fewshot: 5}",
        )
    )
    problems = profile_problems(load_profile(str(unpinned)))
    assert [p.split(":")[0] for p in problems] == ["key 'base_model.revision'", "key 'evaluation.lm_eval[1].revision'"]
    assert "meta-llama/Llama-2-7b-hf is loaded from the Hugging Face hub without a pinned revision" in problems[0]
    allowed = tmp_path / "allowed.yaml"
    allowed.write_text(unpinned.read_text() + "\nallow_unpinned: true\n")
    assert profile_problems(load_profile(str(allowed))) == []
    # offline tasks and the testbed profiles need no pin
    assert hub_pins(load_profile("tiny")) == []
