"""The benchmark scripts still run against the library they measure.

Nothing else imports benchmarks/, so an API change (e.g. TrainExample becoming a pydantic
model with keyword-only fields) would break them silently; these call the parts that build
library objects, on two Alpaca rows from ../shared/data, without timing anything.
"""

import importlib.util
from pathlib import Path

import pytest

from ual_dagster.train.records import TrainExample

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "builder", "epsilon"), [("bench_trainer", "load_examples", 0.0), ("bench_loss", "_alpaca_examples", 0.1)]
)
def test_benchmark_builds_train_examples_from_the_shared_alpaca_file(name, builder, epsilon):
    module = _load(name)
    if not module.ALPACA.is_file():
        pytest.skip(f"{module.ALPACA} not found (../shared beside the project)")
    examples = getattr(module, builder)(2)
    assert len(examples) == 2 and all(isinstance(e, TrainExample) for e in examples)
    assert {e.epsilon for e in examples} == {epsilon} and all(e.instruction for e in examples)
