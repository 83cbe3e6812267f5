"""Profiles: bundled ones validate offline; bad files fail at load time naming file, key and what is allowed."""

from pathlib import Path

import pytest
import yaml

from ual_dagster.config import ProfileError, active_profile, bundled_profiles, load_profile
from ual_dagster.config.loader import BUNDLED_DIR


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "profile.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def tiny_dict() -> dict:
    return yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_bundled_profiles_validate_offline(name):
    assert name in bundled_profiles()
    profile = load_profile(name)
    assert profile.name == name
    assert set(profile.scenarios) == {"high_entropy", "low_entropy", "mixed"}
    assert {m.kind for m in profile.methods.values()} == {"sft", "ls", "ual"}


def test_paper_profile_is_the_papers_setting():
    p = load_profile("paper")
    assert p.base_model.source == "hub" and "Llama-2-7b" in p.base_model.hub_id
    assert p.elicitation.backend == "openai" and p.elicitation.model.startswith("gpt-4")
    # the training-template task and upstream's 5-shot one (issue 10)
    assert [t.name for t in p.evaluation.lm_eval] == ["gsm8k_ual", "gsm8k"]
    # AlpacaEval 2's prompt and parser, on a judge model that is still served
    assert p.evaluation.alpaca_eval.judge.annotator == "weighted_alpaca_eval_gpt4_turbo"
    assert p.evaluation.alpaca_eval.judge.model == "gpt-4.1-2025-04-14"


def test_ual_profile_env_selects_bundled_or_path(monkeypatch, tmp_path):
    monkeypatch.setenv("UAL_PROFILE", "paper")
    assert active_profile().name == "paper"
    data = tiny_dict() | {"name": "mine"}
    monkeypatch.setenv("UAL_PROFILE", str(write(tmp_path, data)))
    assert active_profile().name == "mine"


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProfileError, match="nope.yaml"):
        load_profile(str(missing))


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path):
    data = tiny_dict()
    data["training"]["lora"]["rank"] = 4
    path = write(tmp_path, data)
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    text = str(err.value)
    assert str(path) in text
    assert "training.lora.rank" in text
    assert "allowed here: alpha, dropout, r, target_modules" in text


def test_unknown_key_inside_a_named_dataset_lists_dataset_fields(tmp_path):
    data = tiny_dict()
    data["datasets"]["testbed_open"]["formt"] = "auto"
    with pytest.raises(ProfileError) as err:
        load_profile(str(write(tmp_path, data)))
    assert "datasets.testbed_open.formt" in str(err.value)
    assert "format" in str(err.value).split("allowed here:")[1]


def test_bad_value_names_key_and_choices(tmp_path):
    data = tiny_dict()
    data["elicitation"]["method"] = "guess"
    with pytest.raises(ProfileError) as err:
        load_profile(str(write(tmp_path, data)))
    assert "elicitation.method" in str(err.value)
    assert "'verbalized', 'logprobs' or 'consistency'" in str(err.value)


def test_scenario_naming_unknown_dataset_is_rejected(tmp_path):
    data = tiny_dict()
    data["scenarios"]["mixed"]["weights"]["alpaca"] = 0.5
    with pytest.raises(ProfileError, match=r"unknown dataset\(s\) \['alpaca'\]"):
        load_profile(str(write(tmp_path, data)))


def test_invalid_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(str(bad))
    bad.write_text("- a\n- b\n")
    with pytest.raises(ProfileError, match="mapping"):
        load_profile(str(bad))


def test_fingerprint_follows_values_not_formatting(tmp_path):
    a = load_profile("tiny")
    data = tiny_dict()
    b = load_profile(str(write(tmp_path, data)))
    assert a.training.fingerprint() == b.training.fingerprint()
    data["training"]["learning_rate"] = 0.001
    c = load_profile(str(write(tmp_path, data)))
    assert c.training.fingerprint() != a.training.fingerprint()
    assert c.elicitation.fingerprint() == a.elicitation.fingerprint()


def test_extends_merges_over_a_bundled_profile(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: tiny\nname: child\ntraining: {learning_rate: 0.01}\ndatasets:\n"
        "  extra: {source: file, entropy: low, path: x.jsonl}\n"
    )
    p = load_profile(str(child))
    tiny = load_profile("tiny")
    assert p.name == "child" and p.training.learning_rate == 0.01
    assert p.training.lora == tiny.training.lora  # untouched keys of a merged section are kept
    assert set(p.datasets) == set(tiny.datasets) | {"extra"}
    cycle = tmp_path / "a.yaml"
    cycle.write_text("extends: a.yaml\nname: a\n")
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(str(cycle))
    missing = tmp_path / "m.yaml"
    missing.write_text("extends: nowhere\n")
    with pytest.raises(ProfileError, match="'extends' names 'nowhere'"):
        load_profile(str(missing))


def test_shared_data_example_extends_tiny():
    p = load_profile(str(BUNDLED_DIR.parents[2] / "examples" / "profiles" / "shared_data.yaml"))
    assert set(p.datasets) == {"testbed_exact", "testbed_open", "alpaca", "gsm8k"}
    assert p.base_model == load_profile("tiny").base_model


def test_a_key_of_another_elicitation_backend_is_rejected_naming_it(tmp_path):
    data = tiny_dict()
    data["elicitation"] = {"backend": "hf_local", "hf_model": "packaged:smollm2", "concurrency": 8}
    with pytest.raises(ProfileError) as err:
        load_profile(str(write(tmp_path, data)))
    message = str(err.value)
    assert "key 'elicitation.concurrency': not a key of backend 'hf_local'" in message
    assert "hf_batch_size" in message.split("allowed here:")[1]
    data["elicitation"] = {"backend": "openai"}
    with pytest.raises(ProfileError, match=r"key 'elicitation.model': required but missing \(for backend 'openai'\)"):
        load_profile(str(write(tmp_path, data)))
    data["elicitation"] = {"model": "m"}
    with pytest.raises(ProfileError, match="key 'elicitation.backend': required but missing"):
        load_profile(str(write(tmp_path, data)))
    data["elicitation"] = {"backend": "gpt", "model": "m"}
    with pytest.raises(ProfileError, match="key 'elicitation.backend': 'gpt' is not one of 'openai', 'hf_local'"):
        load_profile(str(write(tmp_path, data)))


def test_extends_with_another_backend_inherits_only_the_shared_keys(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: tiny\nname: child\nelicitation: {backend: oracle, min_coverage: 0.5}\n")
    p = load_profile(str(child))
    assert p.elicitation.backend == "oracle" and p.elicitation.min_coverage == 0.5
    assert p.elicitation.prompt == load_profile("tiny").elicitation.prompt
    # the same openai key written in the child itself is an error
    child.write_text("extends: tiny\nname: child\nelicitation: {backend: oracle, model: heuristic-v1}\n")
    with pytest.raises(ProfileError, match="key 'elicitation.model': not a key of backend 'oracle'"):
        load_profile(str(child))
