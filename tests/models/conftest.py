from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2_dir():
    """The converted SmolLM2 folder (converted once per machine into the model cache, then reused)."""
    from ual_dagster.models.smollm2 import ModelNotInstalled, smollm2_hf_dir

    try:
        return smollm2_hf_dir()
    except ModelNotInstalled as exc:
        pytest.skip(str(exc))
