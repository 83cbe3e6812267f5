"""SmolLM2-135M-Instruct as an elicitor: in-process (hf_local) and over HTTP (base_url local-model)
read the same score position of the same real model and must agree."""

from __future__ import annotations

import pytest

from tests.elicitation.samples_table import Sample, write_samples
from ual_dagster.config.elicitation import parse_elicitation
from ual_dagster.elicitation import current_scores, elicit_dataset, elicitor_fingerprint
from ual_dagster.models import smollm2

SAMPLES = [
    Sample("What is 7 plus 5?", "", "12", family="add", intrinsic_uncertainty=0.0),
    Sample("Name a fruit.", "", "pear", family="name_member", intrinsic_uncertainty=0.6),
    Sample("Write a short poem about the sea.", "", "Waves roll in, grey and slow.", intrinsic_uncertainty=1.0),
]
HF_LOCAL = dict(backend="hf_local", hf_model="packaged:smollm2", scale_max=9)
HTTP = dict(
    backend="openai",
    base_url="local-model",
    model="packaged:smollm2",
    method="logprobs",
    answer_prefill=True,
    scale_max=9,
    top_logprobs=20,
    max_tokens=4,
    timeout_s=600,
    api_key_env="UAL_TEST_UNSET_KEY",
)


@pytest.fixture(scope="module")
def converted():
    try:
        return smollm2.smollm2_hf_dir()
    except smollm2.ModelNotInstalled as exc:
        pytest.skip(str(exc))


def test_fingerprint_follows_the_packaged_weights(monkeypatch):
    monkeypatch.setattr(smollm2, "smollm2_signature", lambda: {"gguf_sha256": "a"})
    first = [elicitor_fingerprint(parse_elicitation(c)) for c in (HF_LOCAL, HTTP)]
    monkeypatch.setattr(smollm2, "smollm2_signature", lambda: {"gguf_sha256": "b"})
    second = [elicitor_fingerprint(parse_elicitation(c)) for c in (HF_LOCAL, HTTP)]
    assert first[0] != second[0] and first[1] != second[1]
    assert first[0].startswith("hf_local:packaged_smollm2:uncertainty_v1:expected_score:")


@pytest.mark.slow
def test_in_process_and_http_scores_agree(converted, store):
    write_samples(store, "smol", SAMPLES)
    local_cfg, http_cfg = parse_elicitation(HF_LOCAL), parse_elicitation(HTTP)
    local = elicit_dataset("smol", local_cfg, store)
    assert local.metadata["rows_by_status"]["ok"] == 3
    http = elicit_dataset("smol", http_cfg, store)
    assert http.metadata["logprobs_fallbacks"] == 0 and http.metadata["completion_tokens"] > 0
    in_process, over_http = current_scores(store, "smol", local_cfg), current_scores(store, "smol", http_cfg)
    assert over_http, http.metadata
    for sample_id, u in over_http.items():
        # same model, prompt and position; HTTP sees the top 20 tokens only, so a little digit mass is missing
        assert u == pytest.approx(in_process[sample_id], abs=0.05)
    # a real model's distribution: not one point mass, not the same for every task
    assert len({round(u, 4) for u in in_process.values()}) == 3
    # a second run is all cache hits: no model is loaded, nothing is asked
    again = elicit_dataset("smol", local_cfg, store)
    assert again.metadata["to_elicit"] == 0 and "forward_passes" not in again.metadata


def test_example_profiles_elicit_with_smollm2_and_the_default_does_not():
    from ual_dagster.config import load_profile

    local = load_profile("examples/profiles/smollm2.yaml")
    http = load_profile("examples/profiles/smollm2_http.yaml")
    assert (local.elicitation.backend, local.elicitation.hf_model, local.elicitation.scale_max) == (
        "hf_local",
        "packaged:smollm2",
        9,
    )
    assert (http.elicitation.base_url, http.elicitation.model, http.elicitation.answer_prefill) == (
        "local-model",
        "packaged:smollm2",
        True,
    )
    assert local.datasets.keys() == load_profile("tiny").datasets.keys()  # extends tiny: same testbed
    assert load_profile("tiny").elicitation.base_url == "local-heuristic"
