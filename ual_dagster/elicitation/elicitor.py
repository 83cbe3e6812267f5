"""The elicitor fingerprint: which answerer, asked how, produced a score.

It is half of the row cache key (sample content hash, elicitor). It covers what changes
answers (backend, model, prompt text, method, temperature, token limits, k, scale, the
imported file's bytes) and nothing that only changes how fast or how reliably answers
arrive (concurrency, timeouts, retries, budget, API key, base_url), so tuning those never
re-pays a finished row. The result is readable, e.g.
'openai:gpt-4o:uncertainty_v1:verbalized:3fa2c1d0'.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ual_dagster import versions
from ual_dagster.config import resolve_path
from ual_dagster.config.elicitation import (
    ElicitationConfig,
    FileElicitation,
    HFLocalElicitation,
    OpenAIElicitation,
    OracleElicitation,
)
from ual_dagster.elicitation.prompt import prompt_version
from ual_dagster.fingerprint import stable_hash
from ual_dagster.models import is_packaged, model_signature

# Bump when the code's reading of answers changes (parsing, expectation, dispersion).


def _label(text: str) -> str:
    return text.replace(":", "_").replace("/", "_").strip("_") or "model"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _model_signature(model: str) -> object:
    """What identifies a model's weights, cheaply: a `packaged:` model's package version and file
    hash (no conversion needed); a local folder's config text and file names/sizes (no weight
    hashing); otherwise the hub id itself (its revision is part of the id)."""

    if is_packaged(model):
        return model_signature(model)
    path = resolve_path(model)
    if not path.is_dir():
        return model
    config = path / "config.json"
    files = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.is_file())
    return {"config": config.read_text() if config.is_file() else None, "files": files}


def _answer_params(cfg: ElicitationConfig) -> dict[str, object]:
    params: dict[str, object] = {"scale_max": cfg.scale_max, "prompt_hash": prompt_version(cfg.prompt)}
    if isinstance(cfg, OpenAIElicitation):
        params.update(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        if cfg.method == "consistency":
            params.update(k=cfg.consistency_k, statistic=cfg.consistency_statistic)
        if cfg.method == "logprobs":
            params.update(top_logprobs=cfg.top_logprobs)
        if cfg.answer_prefill:  # only when set, so existing fingerprints stay as they were
            params.update(answer_prefill=True)
    return params


def elicitor_fingerprint(cfg: ElicitationConfig) -> str:
    match cfg:
        case OpenAIElicitation():
            params = _answer_params(cfg)
            if cfg.base_url == "local-model":  # the name alone does not say which weights the bundled server loads
                params["weights"] = _model_signature(cfg.model)
            digest = stable_hash(versions.ELICITATION, "openai", cfg.model, cfg.method, params, length=8)
            return f"openai:{_label(cfg.model)}:{cfg.prompt}:{cfg.method}:{digest}"
        case HFLocalElicitation():
            signature = _model_signature(cfg.hf_model)
            digest = stable_hash(versions.ELICITATION, "hf_local", signature, _answer_params(cfg), length=8)
            return f"hf_local:{_label(Path(cfg.hf_model).name)}:{cfg.prompt}:expected_score:{digest}"
        case FileElicitation():
            path = resolve_path(cfg.file_path)
            if not path.is_file():
                raise FileNotFoundError(f"score file {path} does not exist (elicitation.file_path)")
            digest = stable_hash(versions.ELICITATION, "file", file_digest(path), length=8)
            return f"file:{_label(path.stem)}:import:{digest}"
        case OracleElicitation():
            return f"oracle:intrinsic:{versions.ORACLE}:{stable_hash(versions.ELICITATION, 'oracle', length=8)}"
    raise TypeError(f"not an elicitation config: {type(cfg).__name__}")


LOCAL_BASE_URLS = ("local-heuristic", "local-model")  # the loopback servers started per run


def elicitor_label(cfg: ElicitationConfig) -> str:
    """What a person reads for the elicitor (the fingerprint stays the cache key): 'local:<model>'
    for the bundled loopback servers, which the openai client talks to over HTTP but which run
    here and cost nothing; 'openai:<model>' for a remote OpenAI-compatible server; the backend
    and model otherwise."""
    match cfg:
        case OpenAIElicitation() if cfg.base_url in LOCAL_BASE_URLS:
            return f"local:{cfg.model} ({cfg.method}, bundled loopback server, no cost)"
        case OpenAIElicitation():
            return f"openai:{cfg.model} ({cfg.method}, {cfg.base_url or 'api.openai.com'})"
        case HFLocalElicitation():
            return f"local:{cfg.hf_model} (hf_local, in-process, no cost)"
        case FileElicitation():
            return f"file:{cfg.file_path}"
        case OracleElicitation():
            return "oracle (the testbed's intrinsic uncertainty)"
    return str(cfg.backend)
