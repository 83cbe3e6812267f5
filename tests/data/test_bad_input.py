"""Bad rows become rejects with their place and reason; unreadable files raise naming the file."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.data.helpers import load, write_lines
from ual_dagster.data import DataSourceError, read_rejects, read_samples
from ual_dagster.storage import DuckDBStore


@pytest.fixture
def store(tmp_path):
    return DuckDBStore(tmp_path / "db.duckdb")


def good(i):
    return {"instruction": f"task {i}", "input": "", "output": f"answer {i}"}


def test_every_kind_of_bad_jsonl_row_is_rejected_and_every_good_row_kept(tmp_path, store):
    lines = [
        good(1),  # 1
        '{"instruction": "x", "output": "y"',  # 2 invalid JSON
        {"instruction": "no output"},  # 3 missing field
        {"instruction": "x", "output": "   "},  # 4 empty field
        {"instruction": "x", "output": 42},  # 5 wrong type
        b'{"instruction": "bad \xff byte", "output": "y"}',  # 6 invalid UTF-8
        "[1, 2]",  # 7 not an object
        good(2),  # 8
        "",  # 9 blank: not a record
        {"instruction": "x", "output": None},  # 10 null = missing
        {"instruction": ["a"], "output": "y"},  # 11 wrong type
        '{"instruction": "lone \\ud800 surrogate", "output": "y"}',  # 12 undecodable text
        good(3),  # 13
    ]
    path = write_lines(tmp_path / "bad.jsonl", lines)
    result = load(path, store, max_reject_share=1.0)  # every bad row is the point here
    assert (result.n_read, result.n_kept, result.n_rejects, result.n_duplicates) == (12, 3, 9, 0)
    assert result.metadata["n_blank_lines"] == 1
    assert result.reject_reasons == {
        "invalid JSON": 1,
        "missing field 'output'": 2,
        "empty field 'output'": 1,
        "wrong type for 'output'": 1,
        "wrong type for 'instruction'": 1,
        "invalid UTF-8": 2,
        "not an object": 1,
    }
    rejects = {source: (reason, raw) for source, reason, raw in read_rejects(store, "ds")}
    by_line = {int(s.rsplit(":", 1)[1]): reason for s, (reason, _) in rejects.items()}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 10, 11, 12]
    assert by_line[2].startswith("invalid JSON: ")
    assert by_line[5] == "wrong type for 'output': int, not a string"
    assert by_line[6].startswith("invalid UTF-8: byte ")
    assert by_line[7] == "not an object: got list"
    assert rejects[f"{path}:6"][1] == '{"instruction": "bad \ufffd byte", "output": "y"}'
    assert sorted(s.output for s in read_samples(store, "ds")) == ["answer 1", "answer 2", "answer 3"]


def test_bad_json_array_elements(tmp_path, store):
    path = tmp_path / "a.json"
    body = json.dumps([good(1), "a string", {"instruction": "i"}, 7, good(2)]).encode()
    # A bad byte inside one element rejects that element only.
    body = body[:-1] + b', {"instruction": "caf\xe9", "output": "o"}]'
    path.write_bytes(body)
    result = load(path, store, max_reject_share=1.0)
    assert (result.n_read, result.n_kept, result.n_rejects) == (6, 2, 4)
    reasons = dict((s, r) for s, r, _ in read_rejects(store, "ds"))
    assert reasons[f"{path}[1]"] == "not an object: got str"
    assert reasons[f"{path}[2]"] == "missing field 'output'"
    assert reasons[f"{path}[3]"] == "not an object: got int"
    assert reasons[f"{path}[5]"].startswith("invalid UTF-8: field 'instruction'")


def test_bad_parquet_rows_and_bad_chat_rows(tmp_path, store):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"question": ["q1", None, "q3"], "answer": ["#### 1", "#### 2", ""]}), path)
    result = load(path, store, max_reject_share=1.0)
    assert result.n_kept == 1
    assert dict((s, r) for s, r, _ in read_rejects(store, "ds")) == {
        f"{path}:row 1": "missing field 'question'",
        f"{path}:row 2": "empty field 'answer'",
    }
    chat = write_lines(
        tmp_path / "c.jsonl",
        [
            {"messages": [{"role": "user", "content": "hi"}]},
            {"messages": ["hi"]},
            {"messages": "hi"},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
        ],
    )
    chat_rows = [
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": ["hi"]},
        {"messages": "hi"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
    ]
    write_lines(
        chat, chat_rows + [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    )
    result = load(chat, store, name="chat", max_reject_share=1.0)
    assert result.n_kept == 1
    assert [r for _, r, _ in read_rejects(store, "chat")] == [
        "bad messages: no assistant turn after the first user turn",
        "bad messages: message 0 is str, not an object",
        "bad messages: 'messages' is str, not a list",
        "empty field 'messages[1].content'",
    ]


def test_raw_text_of_a_reject_is_truncated(tmp_path, store):
    path = write_lines(tmp_path / "long.jsonl", ['{"instruction": "' + "x" * 5000])
    write_lines(path, ['{"instruction": "' + "x" * 5000, good(1)])
    load(path, store, fmt="alpaca_jsonl", max_reject_share=1.0)
    ((_, _, raw),) = read_rejects(store, "ds")
    assert len(raw) == 501 and raw.endswith("…")


@pytest.mark.parametrize(
    "name, content, fmt, message",
    [
        ("missing.jsonl", None, "auto", "does not exist"),
        ("object.json", b'{\n  "instruction": "a", "output": "b"\n}', "auto", "top-level JSON is dict"),
        ("object2.json", b'{"instruction": "a", "output": "b"}', "alpaca_json", "top-level JSON is dict"),
        ("broken.json", b'[{"instruction": "a",', "auto", "is not valid JSON (line 1"),
        ("corrupt.parquet", b"PAR1 this is not parquet", "auto", "not a readable Parquet file"),
        ("data.csv", b"a,b\n", "auto", "cannot tell the format from the extension"),
        ("keys.jsonl", b'{"prompt": "a", "completion": "b"}\n', "auto", "cannot tell the record schema"),
        ("garbage.jsonl", b"not json\n[1]\n", "auto", "no JSON object among its first records"),
    ],
)
def test_unreadable_files_raise_naming_the_file(tmp_path, store, name, content, fmt, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataSourceError) as err:
        load(path, store, fmt=fmt)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_directory_is_not_a_data_file(tmp_path, store):
    with pytest.raises(DataSourceError, match="is not a regular file"):
        load(tmp_path, store)


def test_a_failed_read_leaves_the_stored_rows_untouched(tmp_path, store):
    path = write_lines(tmp_path / "d.jsonl", [good(1), good(2)])
    load(path, store)
    path.write_text("[{broken")
    with pytest.raises(DataSourceError):
        load(path, store, fmt="alpaca_json")
    assert len(read_samples(store, "ds")) == 2
