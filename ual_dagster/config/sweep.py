"""`experiment.sweep`: a grid over method fields, expanded into ordinary methods at load time.

    experiment:
      sweep:
        ual: {eps_max: [0.05, 0.1, 0.2, 0.4], mapping: [linear, sqrt]}
        ls_matched: {follow: ual}

A grid entry names a method of the profile, the *template*; each point of the grid (the
product of the listed values) is the template with those fields replaced. A `follow`
entry makes one copy of the named method per point of another entry's grid: a method
whose `match` names the swept template has it pointed at the point (LS matched to each
UAL point); any other follower gets the point's values (e.g. `ual_shuffled: {follow: ual}`).

The template and the follower are *replaced* by their points: every generated method
names its values, so nothing is trained twice, and a profile that reads the template by
name (`experiment.baselines`, another method's `match`) is told so.

Names: the template's name, then one token per swept field in MethodConfig's field order
(`epsilon` eps<v>, `uncertainty` <value>, `shuffle_seed` s<v>, `eps_min` emin<v>, `eps_max`
e<v>, `mapping` <value>); a number is written with 'p' for its decimal point (0.1 -> 0p1,
0.05 -> 0p05, 0 -> 0). So `ual_e0p1_sqrt`, and its follower `ls_matched_e0p1_sqrt`. A
point's name depends only on its own values, so adding or removing a grid value renames
no other point, and an unchanged point keeps its config and its checkpoints.

After expansion the methods are ordinary: one asset per (scenario, method), seeds,
fingerprints and comparisons need nothing new. `Profile.sweep_points()` says which method
is which point, for `validate` and the report's dose-response plot.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ual_dagster.config.training import MethodConfig

# swept field -> prefix of its token in a point's name ('' for a word value: the value is the token);
# the order is MethodConfig's field order, which fixes the order of the tokens in a name.
SWEEPABLE: dict[str, str] = {
    "epsilon": "eps",
    "uncertainty": "",
    "shuffle_seed": "s",
    "eps_min": "emin",
    "eps_max": "e",
    "mapping": "",
}
FOLLOW = "follow"


@dataclass(frozen=True)
class SweepPoint:
    """One generated method: its name, the entry that made it (`family`: the template's or the
    follower's name), the template it is a point of, and that point's swept values."""

    name: str
    family: str
    template: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def follows(self) -> bool:
        return self.family != self.template


def number_token(value: Any) -> str:
    """0.1 -> '0p1', 0.05 -> '0p05', 3 -> '3', 0.0 -> '0': a number as part of an asset key."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        text = str(value)
    else:
        text = f"{float(value):.10f}".rstrip("0").rstrip(".")
    return text.replace("-", "m").replace(".", "p")


def point_token(field_name: str, value: Any) -> str:
    prefix = SWEEPABLE[field_name]
    if prefix == "":
        return str(value)
    return prefix + number_token(value)


def _grid(entry: str, spec: Any) -> dict[str, list[Any]]:
    """The entry's fields and values, checked (field names, non-empty lists, distinct values)."""
    where = f"experiment.sweep.{entry}"
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"{where} must map method fields to lists of values, or be {{follow: <entry>}}")
    grid: dict[str, list[Any]] = {}
    for name, values in spec.items():
        if name not in SWEEPABLE:
            raise ValueError(
                f"{where}.{name}: not a sweepable method field; allowed: {', '.join(SWEEPABLE)} "
                f"(or '{FOLLOW}: <entry>' alone)"
            )
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.{name} must be a non-empty list of values (got {values!r})")
        if SWEEPABLE[name] and any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise ValueError(f"{where}.{name}: every value must be a number (got {values!r})")
        if SWEEPABLE[name] == "" and any(not isinstance(v, str) for v in values):
            raise ValueError(f"{where}.{name}: every value must be a word (got {values!r})")
        tokens = [point_token(name, v) for v in values]
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"{where}.{name} lists a value twice (got {values!r})")
        grid[name] = list(values)
    return {k: grid[k] for k in SWEEPABLE if k in grid}  # MethodConfig's order: the order of the name tokens


def sweep_points(sweep: Mapping[str, Any] | None) -> list[SweepPoint]:
    """Every method the sweep generates, grid entries first (in the sweep's order), then followers.

    A function of the sweep alone: the names and values do not depend on the templates.
    """
    if not sweep:
        return []
    grids: dict[str, dict[str, list[Any]]] = {}
    follows: dict[str, str] = {}
    for entry, spec in sweep.items():
        if isinstance(spec, Mapping) and FOLLOW in spec:
            if set(spec) != {FOLLOW}:
                raise ValueError(f"experiment.sweep.{entry}: '{FOLLOW}' takes no other keys (got {sorted(spec)})")
            follows[entry] = spec[FOLLOW]
        else:
            grids[entry] = _grid(entry, spec)
    for entry, target in follows.items():
        if target not in grids:
            raise ValueError(
                f"experiment.sweep.{entry}.{FOLLOW} names {target!r}, which is not a grid entry of experiment.sweep; "
                f"allowed: {sorted(grids)}"
            )
    points: list[SweepPoint] = []
    for template, grid in grids.items():
        for combo in itertools.product(*grid.values()):
            values = dict(zip(grid, combo))
            suffix = "_".join(point_token(k, v) for k, v in values.items())
            points.append(SweepPoint(f"{template}_{suffix}", template, template, values))
    for follower, template in follows.items():
        for p in [p for p in points if p.family == template]:
            points.append(SweepPoint(f"{follower}{p.name[len(template) :]}", follower, template, dict(p.values)))
    return points


def _as_dict(method: Any) -> Any:
    return method.model_dump(mode="json") if isinstance(method, MethodConfig) else method


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e["loc"])
    return f"{loc + ': ' if loc else ''}{e['msg']}"


def expand_methods(methods: Mapping[str, Any], sweep: Mapping[str, Any] | None) -> dict[str, Any]:
    """`methods` with each swept template and follower replaced by its points (raw dicts in, raw dicts out).

    Raises ValueError naming the `experiment.sweep` key: an unknown method, a field that is
    not sweepable, an empty list, a value the method itself rejects, a generated name that
    another method already has, or a method that still reads a replaced one by name.
    """
    points = sweep_points(sweep)
    if not points:
        return dict(methods)
    assert sweep is not None
    replaced = {p.family for p in points}
    for entry in sweep:
        if entry not in methods:
            raise ValueError(f"experiment.sweep.{entry} names no method of the profile; methods: {', '.join(methods)}")
    out = {name: _as_dict(m) for name, m in methods.items() if name not in replaced}
    for p in points:
        if p.name in out or p.name in methods:
            raise ValueError(
                f"experiment.sweep.{p.family}: the generated method {p.name!r} has the name of a method the profile "
                "already has; rename that method"
            )
        base = _as_dict(methods[p.family])
        if not isinstance(base, Mapping):
            raise ValueError(f"experiment.sweep.{p.family}: methods.{p.family} is not a method section")
        point = dict(base)
        if p.follows and base.get("match") == p.template:
            point["match"] = f"{p.template}{p.name[len(p.family) :]}"
        elif p.follows and base.get("kind") != _as_dict(methods[p.template]).get("kind"):
            raise ValueError(
                f"experiment.sweep.{p.family}.{FOLLOW}: methods.{p.family} neither has 'match: {p.template}' nor "
                f"is of the same kind as {p.template!r}, so no point of {p.template!r} says what its copies are"
            )
        else:
            point.update(p.values)
        try:
            MethodConfig.model_validate(point)
        except ValidationError as exc:
            shown = ", ".join(f"{k}: {v}" for k, v in p.values.items())
            raise ValueError(
                f"experiment.sweep.{p.template}: the point {{{shown}}} (method {p.name!r}) is not a valid method: "
                f"{_first_error(exc)}"
            ) from None
        out[p.name] = point
    for name, m in out.items():
        match = m.get("match") if isinstance(m, Mapping) else None
        if match in replaced:
            raise ValueError(
                f"methods.{name}.match names {match!r}, which experiment.sweep replaces by its points; add "
                f"'{name}: {{{FOLLOW}: {match}}}' to experiment.sweep for one copy per point"
            )
    return out
