"""The held-out items an evaluation reads, taken from the data domain's `samples` table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from ual_dagster.config.evaluation import EvaluationConfig
from ual_dagster.data.store import split_rows
from ual_dagster.fingerprint import hash_rows
from ual_dagster.storage import DuckDBStore


@dataclass(frozen=True)
class HeldoutItem:
    sample_id: str
    dataset: str
    instruction: str
    input: str
    output: str  # the stored reference response (a valid answer for the testbed)
    valid_answers: tuple[str, ...] = ()

    def key(self) -> tuple:
        return (self.dataset, self.sample_id, self.instruction, self.input, self.output, self.valid_answers)


@dataclass(frozen=True)
class EvalData:
    """Held-out items per samples dataset (e.g. {'testbed_exact': [...], 'testbed_open': [...]})."""

    items: dict[str, list[HeldoutItem]] = field(default_factory=dict)

    def dataset(self, name: str) -> list[HeldoutItem]:
        if name not in self.items or not self.items[name]:
            raise ValueError(
                f"no held-out rows for dataset {name!r} in the evaluation data (have: {sorted(self.items)}); "
                "is the dataset configured and was instruction_sets materialised?"
            )
        return self.items[name]

    def all_items(self) -> list[HeldoutItem]:
        return [it for name in sorted(self.items) for it in self.items[name]]

    @property
    def fingerprint(self) -> str:
        return hash_rows(it.key() for it in self.all_items())


def _parse_valid_answers(raw: str | None, sample_id: str, dataset: str) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"samples row {dataset}/{sample_id}: valid_answers is not JSON ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"samples row {dataset}/{sample_id}: valid_answers must be a JSON list of strings")
    return tuple(value)


def datasets_needed(cfg: EvaluationConfig) -> list[str]:
    """The samples datasets whose held-out rows this evaluation config reads."""
    names = {t.dataset for t in cfg.lm_eval if t.name == "testbed_exact_heldout"}
    if cfg.alpaca_eval is not None and cfg.alpaca_eval.instructions == "testbed_heldout":
        names.update(cfg.alpaca_eval.datasets)
    if cfg.answer_likelihood is not None:
        names.update(cfg.answer_likelihood.datasets)
    return sorted(names)


def load_eval_data(store: DuckDBStore, datasets: Iterable[str], split: str = "heldout") -> EvalData:
    """Rows of `split` (held-out by default) of `datasets` from the `samples` table, in a stable order."""
    names = sorted(set(datasets))
    items: dict[str, list[HeldoutItem]] = {n: [] for n in names}
    if not names:
        return EvalData(items)
    for dataset, sample_id, instruction, inp, output, valid in split_rows(store, names, split):
        items[dataset].append(
            HeldoutItem(
                sample_id=str(sample_id),
                dataset=dataset,
                instruction=instruction,
                input=inp,
                output=output,
                valid_answers=_parse_valid_answers(valid, sample_id, dataset),
            )
        )
    return EvalData(items)
