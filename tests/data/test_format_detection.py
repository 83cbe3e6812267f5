"""Formats are detected by the fields that define them; unusable data sets fail loudly.

Dolly, MetaMathQA, ShareGPT and chat records load with the right instruction/input/output;
a `columns:` map reads any local file; GSM8K answers need their '#### <number>' line; a
data set with no kept row or too many rejects raises, naming the file, the detected format
and the most common reject reason, and writes nothing.
"""

import json

import pytest

from tests.data.helpers import load, write_lines
from ual_dagster.data import DataQualityError, read_rejects, read_samples
from ual_dagster.storage import DuckDBStore

DOLLY = [
    {"instruction": "Summarise.", "context": "A long text.", "response": "Short.", "category": "summarization"},
    {"instruction": "Name a colour.", "context": "", "response": "blue", "category": "open_qa"},
]
METAMATH = [
    {"query": "What is 2+3?", "response": "2+3=5. The answer is: 5", "type": "GSM_AnsAug", "original_question": "x"},
]
SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "system", "value": "be brief"},
            {"from": "human", "value": "Say hi."},
            {"from": "gpt", "value": "hi"},
            {"from": "human", "value": "later turns are not used"},
        ],
    },
]


@pytest.fixture
def store(tmp_path):
    return DuckDBStore(tmp_path / "db.duckdb")


def triples(store, name="ds"):
    return sorted((s.instruction, s.input, s.output) for s in read_samples(store, name))


@pytest.mark.parametrize(
    "name, records, schema, expected",
    [
        ("dolly.jsonl", DOLLY, "dolly", [("Name a colour.", "", "blue"), ("Summarise.", "A long text.", "Short.")]),
        ("metamath.json", METAMATH, "metamath", [("What is 2+3?", "", "2+3=5. The answer is: 5")]),
        ("sharegpt.json", SHAREGPT, "sharegpt", [("Say hi.", "", "hi")]),
    ],
)
def test_formats_are_detected_by_their_defining_fields(tmp_path, store, name, records, schema, expected):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        write_lines(path, records)
    else:
        path.write_text(json.dumps(records, indent=1))
    result = load(path, store)
    assert result.metadata["schema"] == schema
    assert triples(store) == expected


def test_explicit_sharegpt_and_dolly_formats(tmp_path, store):
    path = write_lines(tmp_path / "s.txt", SHAREGPT)
    assert load(path, store, fmt="sharegpt_jsonl").n_kept == 1
    path = write_lines(tmp_path / "d.txt", DOLLY)
    assert load(path, store, name="d", fmt="dolly_jsonl").n_kept == 2


def test_columns_map_reads_any_local_file(tmp_path, store):
    rows = [{"prompt": "Say hi.", "ctx": "politely", "completion": "Hello."}, {"prompt": "Say no.", "completion": ""}]
    path = write_lines(tmp_path / "custom.jsonl", rows)
    result = load(
        path, store, columns={"instruction": "prompt", "input": "ctx", "output": "completion"}, max_reject_share=1.0
    )
    assert result.metadata["schema"] == "mapped"
    assert triples(store) == [("Say hi.", "politely", "Hello.")]
    ((source, reason, raw),) = read_rejects(store, "ds")
    assert source == f"{path}:2" and reason == "empty field 'output'" and '"completion": ""' in raw


def test_gsm8k_rows_without_the_final_answer_marker_are_rejected(tmp_path, store):
    rows = [
        {"question": "1+1?", "answer": "1+1=2\n#### 2"},
        {"question": "Big?", "answer": "So 1,000 in all.\n#### 1,000"},
        {"question": "Half?", "answer": "#### -0.5"},
        {"question": "No marker?", "answer": "The answer is 4."},
        {"question": "Marker not a number?", "answer": "#### four"},
    ]
    result = load(write_lines(tmp_path / "g.jsonl", rows), store, max_reject_share=1.0)
    assert result.n_kept == 3
    reasons = {int(s.rsplit(":", 1)[1]): r for s, r, _ in read_rejects(store, "ds")}
    assert sorted(reasons) == [4, 5]
    assert all(r.startswith("missing final answer '#### <number>'") for r in reasons.values())


def test_a_dolly_file_forced_to_alpaca_fails_naming_file_format_and_reason(tmp_path, store):
    path = write_lines(tmp_path / "dolly.jsonl", DOLLY)
    with pytest.raises(DataQualityError) as err:
        load(path, store, fmt="alpaca_jsonl")
    message = str(err.value)
    assert str(path) in message and "no row kept" in message
    assert "format 'alpaca_jsonl'" in message and "missing field 'output' (2 rows" in message
    assert read_samples(store, "ds") == []  # nothing written


def test_sharegpt_forced_to_chat_fails(tmp_path, store):
    path = write_lines(tmp_path / "sg.jsonl", SHAREGPT)
    with pytest.raises(DataQualityError, match=r"no row kept.*chat records in jsonl.*bad messages"):
        load(path, store, fmt="chat_jsonl")


def test_an_empty_file_fails(tmp_path, store):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    with pytest.raises(DataQualityError, match=f"{path}.*holds no records"):
        load(path, store, fmt="alpaca_json")


def test_reject_share_above_the_limit_fails_and_leaves_the_old_rows(tmp_path, store):
    good = [{"instruction": f"t{i}", "output": f"o{i}"} for i in range(4)]
    path = write_lines(tmp_path / "d.jsonl", good)
    load(path, store)
    bad = [{"instruction": f"b{i}"} for i in range(5)]  # 5 of 9 rejected: 56% > 50%
    write_lines(path, good + bad)
    with pytest.raises(
        DataQualityError, match=r"56% of rows rejected \(max_reject_share 50%\).*missing field 'output'"
    ):
        load(path, store)
    assert len(read_samples(store, "ds")) == 4
    assert load(path, store, max_reject_share=0.6).n_kept == 4  # the limit is per data set
