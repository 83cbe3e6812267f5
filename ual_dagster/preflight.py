"""`python -m ual_dagster preflight [PROFILE]`: every external thing a profile needs, checked
in seconds and without spending money, before hours are spent.

One `Check` per need: API key variables, each OpenAI-compatible endpoint and its model
(`GET /v1/models`, free), the judge model (and whether OpenAI has retired it), hub ids and
revisions reachable with the token (gated models), local files and prompt templates, a GPU
where the profile runs on cuda in this process, and disk space for checkpoints. The same
checks run as the `preflight` asset, upstream of everything, so a UI run shows them too.
Network calls are made through `http_get` and `hub_check`, which tests replace.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ual_dagster.config import Profile, resolve_path
from ual_dagster.config.elicitation import OPENAI_DEFAULT_URL
from ual_dagster.config.paths import template_path
from ual_dagster.config.pins import task_reads_hub

TIMEOUT_S = 5.0
LOCAL_HEURISTIC_URL = "local-heuristic"

# OpenAI models that answer no more (or soon will not), with a replacement.
# Source: OpenAI's deprecations page (platform.openai.com/docs/deprecations), as of 2026-11.
RETIRED_MODELS: dict[str, str] = {
    "gpt-4-1106-preview": "retired; the AlpacaEval 2 judge weighted_alpaca_eval_gpt4_turbo used it: set "
    "evaluation.alpaca_eval.judge.model (e.g. gpt-4.1-2025-04-14) or serve a judge at judge.base_url",
    "gpt-4-0125-preview": "retired; use gpt-4.1-2025-04-14",
    "gpt-4-0314": "retired; the AlpacaEval 1 judge alpaca_eval_gpt4 used it",
    "gpt-4-32k": "retired",
    "text-davinci-003": "retired",
    "gpt-3.5-turbo-0301": "retired",
}
SCHEDULED_RETIREMENTS: dict[str, str] = {
    "gpt-4o-2024-08-06": "listed for retirement in early 2027: plan re-elicitation with a successor before then",
}

# The hub data set behind lm-eval tasks the profiles use (lm-eval's gsm8k.yaml: dataset_path).
LM_EVAL_HUB_DATASETS = {"gsm8k": "openai/gsm8k", "gsm8k_ual": "openai/gsm8k"}

# Hub models gated behind a licence: reading them needs HF_TOKEN of an account that accepted
# it (Llama 2: Meta's licence; Mistral-7B-v0.1: sharing contact details with Mistral AI).
GATED_MODEL_ORGS = ("meta-llama/", "mistralai/")
HF_TOKEN_URL = "https://huggingface.co/settings/tokens"


def is_gated(repo_id: str) -> bool:
    return repo_id.startswith(GATED_MODEL_ORGS)


def _hf_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def _access_refused(exc: BaseException) -> bool:
    """The hub said no to this token (gated, unauthorised, forbidden), not "unreachable"."""
    names = {c.__name__ for c in type(exc).__mro__}
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return (
        "GatedRepoError" in names or status in (401, 403) or any(f" {code} " in f" {exc} " for code in ("401", "403"))
    )


def _gated_hint(repo_id: str) -> str:
    state = "HF_TOKEN is not set" if not _hf_token() else "the account of HF_TOKEN has no access"
    return (
        f"{state}: {repo_id} is a gated model; accept its licence at https://huggingface.co/{repo_id} "
        f"while logged in, create a read token at {HF_TOKEN_URL} and export HF_TOKEN"
    )


# Free disk the state folder needs: a 7B base model in bf16 (~13.5 GB in the hub cache),
# nine LoRA adapters with optimizer state per checkpoint interval, generations and the
# DuckDB file; the tiny profile builds everything it needs in well under 1 GB.
DISK_GB_HUB_MODEL = 40.0
DISK_GB_LOCAL_MODEL = 1.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # "ok ..." or "missing: what to do"

    def line(self) -> str:
        return f"[{'ok' if self.ok else 'MISSING'}] {self.name}: {self.detail}"


def _ok(name: str, detail: str) -> Check:
    return Check(name, True, f"ok ({detail})" if detail else "ok")


def _missing(name: str, what: str) -> Check:
    return Check(name, False, f"missing: {what}")


# -- network (replaced in tests) ----------------------------------------------------------


def http_get(url: str, api_key: str | None) -> tuple[int, Any]:
    """(status, parsed JSON or None); raises OSError-like errors when unreachable."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    resp = httpx.get(url, headers=headers, timeout=TIMEOUT_S)
    try:
        body = resp.json()
    except ValueError:
        body = None
    return resp.status_code, body


def hub_check(repo_id: str, repo_type: str, revision: str | None, token: str | None) -> None:
    """Raises when the repo (at that revision) cannot be read with the token."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    if repo_type == "model":
        api.model_info(repo_id, revision=revision, timeout=TIMEOUT_S)
    else:
        api.dataset_info(repo_id, revision=revision, timeout=TIMEOUT_S)
    api.auth_check(repo_id, repo_type=repo_type, token=token)  # gated: the token's access was granted


# -- individual checks ------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    return host in {"localhost", "127.0.0.1", "::1"} or host.startswith("127.")


def _key_check(name: str, env: str, needed_for: str) -> Check:
    if os.environ.get(env):
        return _ok(name, f"{env} is set")
    return _missing(name, f"set the environment variable {env} ({needed_for})")


def _endpoint_check(name: str, base_url: str, model: str, env: str, get: Callable) -> Check:
    key = os.environ.get(env)
    if not key and not _is_loopback(base_url):
        return _missing(name, f"cannot list models at {base_url} without {env}")
    url = base_url.rstrip("/") + "/models"
    try:
        status, body = get(url, key)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is "unreachable", said with its reason
        return _missing(name, f"{url} unreachable ({type(exc).__name__}: {str(exc)[:120]})")
    if status in (401, 403):
        return _missing(name, f"{url} refused the key in {env} (HTTP {status})")
    if status != 200:
        return _missing(name, f"{url} answered HTTP {status}")
    listed = {m.get("id") for m in (body or {}).get("data", []) if isinstance(m, dict)}
    if model not in listed:
        return _missing(name, f"model {model!r} is not listed at {url} ({len(listed)} models listed)")
    return _ok(name, f"{model} listed at {base_url}")


def _retirement_check(name: str, model: str) -> Check:
    if model in RETIRED_MODELS:
        return _missing(name, f"{model} is {RETIRED_MODELS[model]}")
    if model in SCHEDULED_RETIREMENTS:
        return _ok(name, f"{model}; note: {SCHEDULED_RETIREMENTS[model]}")
    return _ok(name, f"{model} is not on the retired list")


def annotator_model(annotator: str) -> str | None:
    """The model_name an alpaca_eval annotator config calls (read from its YAML, no import)."""
    import yaml

    path = Path(annotator)
    if not path.is_file():
        spec = importlib.util.find_spec("alpaca_eval")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / "evaluators_configs" / annotator / "configs.yaml"
    if not path.is_file():
        return None
    (body,) = yaml.safe_load(path.read_text()).values()
    return (body.get("completions_kwargs") or {}).get("model_name")


def _hub_repo_check(name: str, repo_id: str, repo_type: str, revision: str | None, check: Callable) -> Check:
    token = _hf_token()
    if not revision or revision == "main":
        return _missing(name, f"pin {repo_id} to a commit sha (revision {revision or 'unset'} follows the hub)")
    try:
        check(repo_id, repo_type, revision, token)
    except Exception as exc:  # noqa: BLE001 - gated, not found, offline: each says so in its message
        kind = type(exc).__name__
        if _access_refused(exc):
            return _missing(
                name, f"hub refused {repo_id}@{revision[:12]} ({kind}); request access: {_gated_hint(repo_id)}"
            )
        return _missing(
            name,
            f"hub {repo_type} {repo_id}@{revision[:12]} unreachable ({kind}: {str(exc)[:120]}); "
            "check the id, the network and HF_TOKEN",
        )
    return _ok(name, f"{repo_id}@{revision[:12]} readable")


def _hf_token_check(repo_id: str) -> Check:
    """A gated base model needs HF_TOKEN before anything else can be checked."""
    name = f"HF_TOKEN for the gated model {repo_id}"
    if _hf_token():
        return _ok(name, "HF_TOKEN is set; the hub check below says whether its account was granted access")
    return _missing(name, _gated_hint(repo_id))


def _path_check(name: str, path: str | Path) -> Check:
    p = resolve_path(str(path))
    return _ok(name, str(p)) if p.exists() else _missing(name, f"{p} does not exist")


def _free_gb(path: Path) -> float:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free / 1e9


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# -- the profile ------------------------------------------------------------------------


def run_preflight(
    profile: Profile,
    get: Callable[[str, str | None], tuple[int, Any]] = http_get,
    hub: Callable[[str, str, str | None, str | None], None] = hub_check,
    cuda: Callable[[], bool] = _cuda_available,
    free_gb: Callable[[Path], float] = _free_gb,
) -> list[Check]:
    checks: list[Check] = []
    el = profile.elicitation
    # elicitation endpoint
    if el.backend == "openai":
        url = el.base_url or OPENAI_DEFAULT_URL
        if url == LOCAL_HEURISTIC_URL:
            checks.append(_ok("elicitation endpoint", "bundled loopback heuristic server, started per run"))
        else:
            if not _is_loopback(url):
                checks.append(_key_check("elicitation API key", el.api_key_env, f"elicitation at {url}"))
            checks.append(_endpoint_check("elicitation endpoint", url, el.model or "", el.api_key_env, get))
            if url == OPENAI_DEFAULT_URL:
                checks.append(_retirement_check("elicitation model", el.model or ""))
    checks.append(_path_check("elicitation prompt template", template_path(el.prompt)))
    if el.backend == "file" and el.file_path:
        checks.append(_path_check("elicitation score file", el.file_path))
    if el.backend == "hf_local" and el.hf_model:
        if resolve_path(el.hf_model).exists():
            checks.append(_ok("elicitation local model", str(resolve_path(el.hf_model))))
        if el.hf_device.startswith("cuda"):
            checks.append(_gpu_check("GPU for hf_local elicitation", cuda))
    # judge
    ae = profile.evaluation.alpaca_eval
    if ae is not None and ae.judge.kind == "alpaca_eval":
        j = ae.judge
        model = j.model or annotator_model(j.annotator)
        url = j.base_url or OPENAI_DEFAULT_URL
        if model is None:
            checks.append(_missing("judge model", f"alpaca_eval annotator config {j.annotator!r} not found"))
        else:
            if url == OPENAI_DEFAULT_URL:
                checks.append(_retirement_check("judge model", model))
            if not _is_loopback(url):
                checks.append(_key_check("judge API key", j.api_key_env, f"AlpacaEval judge {model} at {url}"))
            checks.append(_endpoint_check("judge endpoint", url, model, j.api_key_env, get))
    # hub: base model, data sets, AlpacaEval reference outputs
    bm = profile.base_model
    if bm.source == "hub" and bm.hub_id:
        if is_gated(bm.hub_id):
            checks.append(_hf_token_check(bm.hub_id))
        checks.append(_hub_repo_check("base model on the hub", bm.hub_id, "model", bm.revision, hub))
    if bm.source == "local" and bm.path:
        checks.append(_path_check("base model folder", bm.path))
    for name, ds in profile.datasets.items():
        if ds.source == "hub" and ds.hub_id:
            checks.append(_hub_repo_check(f"data set {name} on the hub", ds.hub_id, "dataset", ds.revision, hub))
        if ds.source == "file" and ds.path:
            checks.append(_path_check(f"data set {name} file", ds.path))
    if ae is not None and ae.instructions == "hub":
        checks.append(_hub_repo_check("AlpacaEval reference outputs", ae.hub_id, "dataset", ae.hub_revision, hub))
    if ae is not None and ae.instructions == "file" and ae.path:
        checks.append(_path_check("AlpacaEval reference file", ae.path))
    for task in profile.evaluation.lm_eval:
        if task.data_path:
            checks.append(_path_check(f"lm-eval {task.name} data", task.data_path))
        elif task.name in LM_EVAL_HUB_DATASETS and task_reads_hub(task):
            repo = LM_EVAL_HUB_DATASETS[task.name]
            checks.append(_hub_repo_check(f"lm-eval {task.name} data on the hub", repo, "dataset", task.revision, hub))
    # GPU where this process runs on cuda
    if profile.evaluation.device == "cuda" and profile.evaluation.launcher.kind in ("in_process", "subprocess"):
        checks.append(_gpu_check("GPU for evaluation (evaluation.device: cuda)", cuda))
    if profile.training.launcher.kind in ("in_process", "subprocess") and profile.training.precision == "bf16":
        checks.append(_gpu_check("GPU for training (precision: bf16)", cuda))
    # the optional k8s extra, where the profile starts pods
    uses_k8s = "k8s" in (profile.training.launcher.kind, profile.evaluation.launcher.kind)
    if uses_k8s:
        if importlib.util.find_spec("dagster_k8s") is not None:
            checks.append(_ok("dagster-k8s (the k8s extra)", "installed"))
        else:
            checks.append(_missing("dagster-k8s (the k8s extra)", "pip install 'ual-dagster[k8s]'"))
    # disk
    need = DISK_GB_HUB_MODEL if bm.source == "hub" else DISK_GB_LOCAL_MODEL
    if profile.training.min_free_disk_gb is not None:
        need = profile.training.min_free_disk_gb
    state = resolve_path(profile.storage.state_dir)
    have = free_gb(state)
    if have >= need:
        checks.append(_ok("disk space for checkpoints", f"{have:.0f} GB free at {state}, {need:.0f} GB needed"))
    else:
        checks.append(_missing("disk space for checkpoints", f"{need:.0f} GB needed at {state}, {have:.1f} GB free"))
    return checks


def _gpu_check(name: str, cuda: Callable[[], bool]) -> Check:
    return _ok(name, "CUDA device present") if cuda() else _missing(name, "no CUDA device in this process")


def format_checks(checks: list[Check]) -> str:
    n_missing = sum(not c.ok for c in checks)
    tail = "all checks passed" if not n_missing else f"{n_missing} of {len(checks)} checks missing"
    return "\n".join([c.line() for c in checks] + [tail])
