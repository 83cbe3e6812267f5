"""Uncertainty u in [0, 1] -> label-smoothing eps, per training method.

sft: eps = 0. ls: eps = method.epsilon for every sample. ual: eps = eps_min +
(eps_max - eps_min) * g(u) with g = identity (linear), sqrt or square; sqrt
smooths moderately uncertain samples more, square less.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from ual_dagster.config.training import MethodConfig

_SHAPES = {
    "linear": lambda u: u,
    "sqrt": math.sqrt,
    "square": lambda u: u * u,
}


def epsilon_for(method: MethodConfig, uncertainty: float | None, sample_id: object = None) -> float:
    """Smoothing value of one sample. `sample_id` only names the sample in errors."""
    if method.kind == "sft":
        return 0.0
    if method.kind == "ls":
        return float(method.epsilon)
    if uncertainty is None or math.isnan(float(uncertainty)):
        raise ValueError(f"sample {sample_id!r}: uncertainty is {uncertainty!r}; method 'ual' needs a number in [0, 1]")
    u = min(1.0, max(0.0, float(uncertainty)))
    return method.eps_min + (method.eps_max - method.eps_min) * _SHAPES[method.mapping](u)


def epsilons_for(
    method: MethodConfig, uncertainties: Sequence[float | None], sample_ids: Sequence[object] | None = None
) -> list[float]:
    """Smoothing values of many samples (same order); errors name the offending sample."""
    ids = list(sample_ids) if sample_ids is not None else list(range(len(uncertainties)))
    if len(ids) != len(uncertainties):
        raise ValueError(f"{len(uncertainties)} uncertainties but {len(ids)} sample ids")
    return [epsilon_for(method, u, sid) for u, sid in zip(uncertainties, ids)]


def method_epsilons(
    name: str,
    methods: Mapping[str, MethodConfig],
    uncertainty: Sequence[float | None],
    intrinsic: Sequence[float | None] | None = None,
    sample_ids: Sequence[object] | None = None,
) -> list[float]:
    """Smoothing values of one training set's samples (same order) under method `name`,
    controls included: `ls` with `match` takes the matched UAL method's mean eps over the
    same samples; `ual` with `uncertainty: shuffled` permutes its eps with its fixed
    `shuffle_seed`; `uncertainty: oracle` maps the samples' intrinsic uncertainty."""
    method = methods[name]
    ids = list(sample_ids) if sample_ids is not None else list(range(len(uncertainty)))
    if method.kind == "ls" and method.match is not None:
        matched = method_epsilons(method.match, methods, uncertainty, intrinsic, ids)
        mean = sum(matched) / len(matched) if matched else 0.0
        return [mean] * len(uncertainty)
    if method.kind != "ual" or method.uncertainty == "elicited":
        return epsilons_for(method, uncertainty, ids)
    if method.uncertainty == "oracle":
        known = list(intrinsic) if intrinsic is not None else [None] * len(uncertainty)
        missing = [sid for sid, u in zip(ids, known) if u is None or math.isnan(float(u))]
        if missing:
            raise ValueError(
                f"method {name!r} uses uncertainty 'oracle', but {len(missing)} of {len(ids)} training samples have no "
                f"known intrinsic uncertainty (e.g. sample {missing[0]!r}); only generated testbed data sets have one"
            )
        return epsilons_for(method, known, ids)
    eps = epsilons_for(method, uncertainty, ids)
    order = random.Random(method.shuffle_seed).sample(range(len(eps)), len(eps))
    return [eps[i] for i in order]
