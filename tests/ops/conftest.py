"""Shared by the deployment tests: reading a manifest into the `kubernetes` client's models."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def as_k8s_model(kind: str, data: dict):
    """`data` (camelCase, as `kubectl get -o yaml` shows it) read into the client's model `kind`.

    The model is written back and must equal `data`: the client drops keys it does not
    know without a word, so a misspelt or misplaced key shows up as a difference here.
    A required field that is missing raises ValueError in the model's constructor.
    """
    from kubernetes.client import ApiClient

    api = ApiClient()
    model = api._ApiClient__deserialize(data, kind)
    assert api.sanitize_for_serialization(model) == data, f"{kind}: keys the Kubernetes API does not know"
    return model


@pytest.fixture
def k8s_model() -> Callable[[str, dict], object]:
    return as_k8s_model
