"""Test helper: write `samples` rows the way the data domain does (its exact columns)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ual_dagster.storage import DuckDBStore

SAMPLES_DDL = """
CREATE TABLE IF NOT EXISTS samples (
    dataset VARCHAR, sample_id VARCHAR, instruction VARCHAR, input VARCHAR, output VARCHAR,
    source VARCHAR, split VARCHAR, family VARCHAR, intrinsic_uncertainty DOUBLE,
    valid_answers VARCHAR, loaded_at TIMESTAMP
)
"""


@dataclass(frozen=True)
class Sample:
    instruction: str
    input: str = ""
    output: str = ""
    split: str = "train"
    family: str | None = None
    intrinsic_uncertainty: float | None = None

    @property
    def sample_id(self) -> str:
        key = json.dumps([self.instruction, self.input, self.output])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def write_samples(store: DuckDBStore, dataset: str, samples: list[Sample], replace: bool = True) -> list[str]:
    with store.connect() as con:
        con.execute(SAMPLES_DDL)
        if replace:
            con.execute("DELETE FROM samples WHERE dataset = ?", [dataset])
        con.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, 'test', ?, ?, ?, NULL, current_timestamp)",
            [
                [dataset, s.sample_id, s.instruction, s.input, s.output, s.split, s.family, s.intrinsic_uncertainty]
                for s in samples
            ],
        )
    return [s.sample_id for s in samples]


def numbered_samples(n: int, prefix: str = "task") -> list[Sample]:
    """n distinct samples whose instruction carries a marker '[#i]' a test server can read back."""
    return [
        Sample(
            instruction=f"{'Write a short poem about' if i % 2 else 'Calculate'} item {prefix} [#{i}]",
            input="" if i % 2 else f"{i} + {i}",
            output=f"answer {i}",
            intrinsic_uncertainty=0.9 if i % 2 else 0.1,
        )
        for i in range(n)
    ]
