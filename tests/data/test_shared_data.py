"""The real public files in ../shared/data load completely: every row kept, rejected or counted."""

import json
import unicodedata

import pytest

from ual_dagster.config import PROJECT_ROOT, load_profile, resolve_path
from ual_dagster.data import build_instruction_set, read_rejects
from ual_dagster.storage import DuckDBStore

EXAMPLE_PROFILE = PROJECT_ROOT / "examples" / "profiles" / "shared_data.yaml"


def _norm(text):
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()


@pytest.fixture(scope="module")
def profile():
    return load_profile(str(EXAMPLE_PROFILE))


def test_example_profile_points_at_the_shared_files(profile):
    for name in ("alpaca", "gsm8k"):
        assert resolve_path(profile.datasets[name].path).is_file()


def test_alpaca_5000(profile, tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    result = build_instruction_set("alpaca", profile.datasets["alpaca"], store)
    raw = json.loads(resolve_path(profile.datasets["alpaca"].path).read_text())
    triples = [(_norm(r["instruction"]), _norm(r["input"]), _norm(r["output"])) for r in raw]
    empty_outputs = [i for i, t in enumerate(triples) if not t[2]]
    good = [t for t in triples if t[2]]
    assert result.n_read == len(raw) == 5000
    assert result.n_kept + result.n_duplicates + result.n_rejects == 5000
    assert result.n_duplicates == len(good) - len(set(good))
    # The subset has two rows with an empty output (indices 2335 and 4658): rejected, not kept.
    assert result.n_rejects == len(empty_outputs) == 2
    assert result.reject_reasons == {"empty field 'output'": 2}
    path = resolve_path(profile.datasets["alpaca"].path)
    assert sorted(s for s, _, _ in read_rejects(store, "alpaca")) == sorted(f"{path}[{i}]" for i in empty_outputs)


def test_gsm8k_train_7473(profile, tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    result = build_instruction_set("gsm8k", profile.datasets["gsm8k"], store)
    lines = resolve_path(profile.datasets["gsm8k"].path).read_text().splitlines()
    pairs = [(_norm(r["question"]), _norm(r["answer"])) for r in map(json.loads, lines)]
    assert result.n_read == 7473 and result.n_rejects == 0
    assert result.n_kept == len(set(pairs)) and result.n_duplicates == 7473 - len(set(pairs))
