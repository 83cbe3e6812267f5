"""How many train rows each data set has, and what each scenario asks of it.

A scenario's mix is its `weights`, normalised, times its `size` (`scenario_shares`). A data
set's train-row count is known

- from the profile, for a generated testbed without `limit` (its families' quotas fix it);
- from the state folder, for any data set its `instructions_<dataset>` asset has loaded
  ("as loaded": a file edited since is counted at its next load);
- otherwise not (a file or hub data set before its first load).

`validate` prints every scenario's mix with these counts and fails on a scenario that asks
a data set for more rows than it has, unless the scenario says `allow_short: true`; when a
count is not known yet, `training_set_<scenario>` fails the same way (`ScenarioShortError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ual_dagster.config import Profile
from ual_dagster.config.data import ScenarioConfig, TestbedConfig
from ual_dagster.data.scenarios import scenario_shares
from ual_dagster.data.store import train_row_counts
from ual_dagster.storage import DuckDBStore
from ual_dagster.testbed_families import family_quotas, heldout_count, select_families

FROM_PROFILE = "from the profile"
AS_LOADED = "as loaded"


class ScenarioShortError(RuntimeError):
    """A scenario asks a data set for more rows than it has (and does not allow it)."""


@dataclass(frozen=True)
class TrainRows:
    count: int
    basis: str  # FROM_PROFILE or AS_LOADED


@dataclass(frozen=True)
class MixPart:
    dataset: str
    share: float  # the normalised weight
    requested: int
    available: TrainRows | None  # None: not known yet

    @property
    def short_by(self) -> int:
        return max(0, self.requested - self.available.count) if self.available else 0


def testbed_train_rows(cfg: TestbedConfig) -> int:
    """Train rows of a generated testbed (without `limit`): every family's quota minus its held-out part."""
    quotas = family_quotas(select_families(cfg), cfg.n_samples, cfg.heldout_fraction, cfg.answers_per_prompt)
    return sum(q - heldout_count(q, cfg.heldout_fraction) for q in quotas.values())


def loaded_train_rows(db_file: Path) -> dict[str, int]:
    """dataset -> distinct train rows in the state's `samples` table ({} when there is none yet,
    or when the file is busy: a count is a convenience, never worth waiting for)."""
    if not db_file.exists():
        return {}
    try:
        return train_row_counts(DuckDBStore(db_file, lock_wait_s=2.0))
    except Exception:  # noqa: BLE001 - a locked or foreign file: the counts are simply unknown
        return {}


def train_rows(profile: Profile, db_file: Path | None = None) -> dict[str, TrainRows]:
    """The data sets whose train-row count is known (see the module docstring)."""
    loaded = loaded_train_rows(db_file) if db_file is not None else {}
    out: dict[str, TrainRows] = {}
    for name, ds in profile.datasets.items():
        if ds.source == "testbed" and ds.testbed is not None and ds.limit is None:
            out[name] = TrainRows(testbed_train_rows(ds.testbed), FROM_PROFILE)
        elif name in loaded:
            out[name] = TrainRows(loaded[name], AS_LOADED)
    return out


def scenario_mix(cfg: ScenarioConfig, counts: dict[str, TrainRows]) -> list[MixPart]:
    total = sum(cfg.weights.values())
    shares = scenario_shares(cfg.size, cfg.weights)
    return [MixPart(d, cfg.weights[d] / total, shares[d], counts.get(d)) for d in sorted(cfg.weights)]


def short_message(scenario: str, dataset: str, requested: int, available: int, what: str) -> str:
    return (
        f"scenario {scenario!r} asks {requested} rows of data set {dataset!r}, which has {available} {what}; "
        f"lower scenarios.{scenario}.size or its weight, or set scenarios.{scenario}.allow_short: true "
        "to train on fewer"
    )


def mix_lines(name: str, cfg: ScenarioConfig, counts: dict[str, TrainRows]) -> list[str]:
    """The validate summary of one scenario: its size, then one line per data set of its mix."""
    parts = scenario_mix(cfg, counts)
    lines = [f"{name}: {cfg.size} rows, seed {cfg.seed}" + (", allow_short" if cfg.allow_short else "")]
    width = max(len(p.dataset) for p in parts)
    for p in parts:
        known = (
            f"of {p.available.count} train rows ({p.available.basis})" if p.available else "train rows not known yet"
        )
        short = f"  SHORT by {p.short_by}" if p.short_by else ""
        lines.append(f"  {p.dataset:<{width}}  {p.share:6.1%}  {p.requested:>7} rows  {known}{short}")
    return lines


def shortfalls(profile: Profile, counts: dict[str, TrainRows]) -> list[str]:
    """One message per (scenario, data set) that is short and not allowed to be."""
    out = []
    for name, cfg in profile.scenarios.items():
        if cfg.allow_short:
            continue
        for p in scenario_mix(cfg, counts):
            if p.short_by and p.available:
                out.append(
                    short_message(name, p.dataset, p.requested, p.available.count, f"train rows ({p.available.basis})")
                )
    return out
