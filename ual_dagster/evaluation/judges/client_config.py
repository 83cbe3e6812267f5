"""The AlpacaEval client config (api key, base_url) as a temporary file, never in the repo or logs.

alpaca_eval reads `OPENAI_CLIENT_CONFIG_PATH` once, at import; we also pass the path
explicitly with every annotation call (`client_config_path`), so two evaluations in
one process each reach their own endpoint.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml


@contextmanager
def temporary_client_config(api_key: str, base_url: str | None, max_retries: int, timeout_s: float) -> Iterator[Path]:
    """A 0600 client-config YAML in a private temp dir, deleted when the block ends."""
    client: dict[str, object] = {"api_key": api_key, "max_retries": max_retries, "timeout": timeout_s}
    if base_url:
        client["base_url"] = base_url
    with tempfile.TemporaryDirectory(prefix="ual-judge-") as tmp:
        path = Path(tmp) / "openai_configs.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump({"default": [client]}, fh)
        os.environ.setdefault("OPENAI_CLIENT_CONFIG_PATH", str(path))  # read by alpaca_eval at first import
        try:
            yield path
        finally:
            if os.environ.get("OPENAI_CLIENT_CONFIG_PATH") == str(path):
                del os.environ["OPENAI_CLIENT_CONFIG_PATH"]
