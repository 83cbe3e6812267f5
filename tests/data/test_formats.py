"""Each supported format loads, and 'auto' picks the right one."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.data.helpers import load, write_lines
from ual_dagster.data import DataQualityError, read_samples, sample_id_for
from ual_dagster.data.samples import normalise_text
from ual_dagster.storage import DuckDBStore

ALPACA = [
    {"instruction": "Give a synonym.", "input": "happy", "output": "glad"},
    {"instruction": "Name a colour.", "input": "", "output": "blue"},
    {"instruction": "Say hi.", "output": "hi"},  # no input key: input is ''
]


@pytest.fixture
def store(tmp_path):
    return DuckDBStore(tmp_path / "db.duckdb")


def triples(store, name="ds"):
    return sorted((s.instruction, s.input, s.output) for s in read_samples(store, name))


EXPECTED_ALPACA = sorted((r["instruction"], r.get("input", ""), r["output"]) for r in ALPACA)


def test_alpaca_json_array(tmp_path, store):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(ALPACA, indent=2))
    result = load(path, store)
    assert (result.n_read, result.n_kept, result.n_rejects) == (3, 3, 0)
    assert result.metadata["container"] == "json_array" and result.metadata["schema"] == "alpaca"
    assert triples(store) == EXPECTED_ALPACA
    sources = sorted(s.source for s in read_samples(store, "ds"))
    assert sources == [f"{path}[0]", f"{path}[1]", f"{path}[2]"]


def test_alpaca_jsonl(tmp_path, store):
    result = load(write_lines(tmp_path / "a.jsonl", ALPACA), store)
    assert result.metadata["container"] == "jsonl" and result.n_kept == 3
    assert triples(store) == EXPECTED_ALPACA


def test_gsm8k_jsonl_maps_question_and_answer(tmp_path, store):
    rows = [{"question": "1+1?", "answer": "2\n#### 2"}, {"question": "2+2?", "answer": "#### 4"}]
    result = load(write_lines(tmp_path / "g.jsonl", rows), store)
    assert result.metadata["schema"] == "gsm8k"
    assert triples(store) == [("1+1?", "", "2\n#### 2"), ("2+2?", "", "#### 4")]


def test_chat_jsonl_takes_first_user_and_next_assistant_turn(tmp_path, store):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "assistant", "content": "ignored: before the user"},
                {"role": "user", "content": "Name a fruit."},
                {"role": "user", "content": "a second user turn"},
                {"role": "assistant", "content": "apple"},
                {"role": "user", "content": "later turns are not used"},
            ]
        },
    ]
    result = load(write_lines(tmp_path / "c.jsonl", rows), store)
    assert result.metadata["schema"] == "chat"
    assert triples(store) == [("Name a fruit.", "", "apple")]


@pytest.mark.parametrize(
    "columns, expected",
    [
        (
            {"instruction": ["i1", "i2"], "input": ["x", None], "output": ["o1", "o2"]},
            [("i1", "x", "o1"), ("i2", "", "o2")],
        ),
        ({"question": ["q1"], "answer": ["a1\n#### 1"]}, [("q1", "", "a1\n#### 1")]),
    ],
)
def test_parquet_uses_the_same_column_conventions(tmp_path, store, columns, expected):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table(columns), path)
    result = load(path, store)
    assert result.metadata["container"] == "parquet"
    assert triples(store) == expected
    assert sorted(s.source for s in read_samples(store, "ds"))[0] == f"{path}:row 0"


def test_auto_detects_jsonl_content_in_a_json_file(tmp_path, store):
    result = load(write_lines(tmp_path / "lines.json", ALPACA), store)
    assert result.metadata["container"] == "jsonl" and result.n_kept == 3


def test_auto_schema_skips_a_bad_first_line(tmp_path, store):
    path = write_lines(tmp_path / "g.jsonl", ["{not json", {"question": "q", "answer": "a\n#### 1"}])
    result = load(path, store, max_reject_share=1.0)
    assert result.metadata["schema"] == "gsm8k" and (result.n_kept, result.n_rejects) == (1, 1)


def test_explicit_format_overrides_detection(tmp_path, store):
    path = tmp_path / "data.txt"  # no usable extension
    write_lines(path, ALPACA)
    result = load(path, store, fmt="alpaca_jsonl")
    assert result.n_kept == 3
    # Forcing the wrong schema rejects every row: the data set fails, naming the field it lacks.
    with pytest.raises(DataQualityError, match="missing field 'question' \\(3 rows"):
        load(path, store, name="wrong", fmt="gsm8k_jsonl")


def test_normalisation_and_sample_id(tmp_path, store):
    decomposed = "cafe\u0301"  # NFD "café"
    rows = [{"instruction": f"  Spell {decomposed}\r\nplease ", "input": "\r", "output": "ok\r\n"}]
    load(write_lines(tmp_path / "n.jsonl", rows), store)
    (sample,) = read_samples(store, "ds")
    assert (sample.instruction, sample.input, sample.output) == ("Spell caf\u00e9\nplease", "", "ok")
    # Independent reference: sha256 over the canonical JSON of each part, 0x1e-separated, 16 hex chars.
    h = hashlib.sha256()
    for part in (sample.instruction, sample.input, sample.output):
        h.update(json.dumps(part, ensure_ascii=False).encode() + b"\x1e")
    assert sample.sample_id == h.hexdigest()[:16] == sample_id_for("Spell caf\u00e9\nplease", "", "ok")
    assert normalise_text("a\rb") == "a\nb"
