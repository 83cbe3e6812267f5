"""preflight names HF_TOKEN and the gated model when the token or the licence is missing
(issue 20, item 4). The hub's answers are patched: real huggingface_hub errors, no network."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from ual_dagster.config import load_profile
from ual_dagster.preflight import format_checks, run_preflight

LLAMA = "meta-llama/Llama-2-7b-hf"


def _listing(url, key):
    return 200, {"data": [{"id": "gpt-4o-2024-08-06"}, {"id": "gpt-4.1-2025-04-14"}]}


def _hub(status: int | None):
    """A hub that refuses the Llama repo with `status` (None: grants it) and serves the rest."""

    def check(repo_id, repo_type, revision, token):
        if repo_id != LLAMA or status is None:
            return
        response = httpx.Response(status, request=httpx.Request("GET", f"https://huggingface.co/api/models/{repo_id}"))
        if status == 403:
            raise GatedRepoError(f"403 Client Error. Cannot access gated repo {repo_id}", response=response)
        raise RepositoryNotFoundError(f"401 Client Error. Repository Not Found for url: {repo_id}", response=response)

    return check


def _run(hub):
    return run_preflight(load_profile("paper"), get=_listing, hub=hub, cuda=lambda: True, free_gb=lambda p: 500.0)


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    return monkeypatch


def test_no_token_names_hf_token_and_the_gated_model(keys):
    keys.delenv("HF_TOKEN", raising=False)
    checks = {c.name: c for c in _run(_hub(401))}  # the hub answers 401 to an anonymous read of a gated repo
    token = checks[f"HF_TOKEN for the gated model {LLAMA}"]
    assert not token.ok
    assert token.detail.startswith(f"missing: HF_TOKEN is not set: {LLAMA} is a gated model; accept its licence")
    assert f"https://huggingface.co/{LLAMA}" in token.detail
    base = checks["base model on the hub"]
    assert not base.ok and "HF_TOKEN is not set" in base.detail and LLAMA in base.detail
    assert "unreachable" not in base.detail


def test_a_token_without_the_licence_is_told_to_accept_it(keys):
    keys.setenv("HF_TOKEN", "hf_test_not_real")
    checks = {c.name: c for c in _run(_hub(403))}
    assert checks[f"HF_TOKEN for the gated model {LLAMA}"].ok
    base = checks["base model on the hub"]
    assert not base.ok
    assert f"hub refused {LLAMA}@01c7f73d771d (GatedRepoError)" in base.detail
    assert "the account of HF_TOKEN has no access" in base.detail and "accept its licence" in base.detail


def test_a_granted_token_passes(keys):
    keys.setenv("HF_TOKEN", "hf_test_not_real")
    checks = _run(_hub(None))
    assert all(c.ok for c in checks), format_checks(checks)
