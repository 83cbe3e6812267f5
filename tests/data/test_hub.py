"""The hub path, exercised on local copies (no network): save_to_disk dirs and data-file dirs."""

import json

import pytest
from pydantic import ValidationError

from ual_dagster.config.data import DatasetConfig
from ual_dagster.data import DataSourceError, build_instruction_set, read_rejects, read_samples
from ual_dagster.storage import DuckDBStore

datasets = pytest.importorskip("datasets")

METAMATH = {
    "query": ["What is 2+3?", "Double 4.", "Empty answer?"],
    "response": ["2+3=5. The answer is: 5", "4*2=8. The answer is: 8", ""],
    "type": ["GSM_Rephrased", "GSM_AnsAug", "GSM_AnsAug"],
}


@pytest.fixture
def store(tmp_path):
    return DuckDBStore(tmp_path / "db.duckdb")


def hub(hub_id, **kw):
    return DatasetConfig(source="hub", entropy="low", hub_id=str(hub_id), **kw)


def test_saved_dataset_dict_with_a_column_map(tmp_path, store):
    path = tmp_path / "metamath"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(METAMATH)}).save_to_disk(str(path))
    cfg = hub(path, columns={"instruction": "query", "output": "response"})
    result = build_instruction_set("metamath", cfg, store)
    assert (result.n_read, result.n_kept, result.n_rejects) == (3, 2, 1)
    assert sorted((s.instruction, s.input, s.output) for s in read_samples(store, "metamath")) == [
        ("Double 4.", "", "4*2=8. The answer is: 8"),
        ("What is 2+3?", "", "2+3=5. The answer is: 5"),
    ]
    assert read_rejects(store, "metamath")[0][:2] == (f"{path}:train:2", "empty field 'output'")
    with pytest.raises(DataSourceError, match=r"no such split; it has \['train'\]"):
        build_instruction_set(
            "m", hub(path, split="test", columns={"instruction": "query", "output": "response"}), store
        )
    with pytest.raises(DataSourceError, match=r"'columns' names \['answer'\]"):
        build_instruction_set("m", hub(path, columns={"instruction": "query", "output": "answer"}), store)


def test_saved_single_dataset_detects_the_alpaca_schema(tmp_path, store):
    path = tmp_path / "alpaca"
    datasets.Dataset.from_dict(
        {"instruction": ["Say hi.", "Say hi."], "input": ["", ""], "output": ["hi", "hi"], "text": ["", ""]}
    ).save_to_disk(str(path))
    result = build_instruction_set("alpaca", hub(path), store)
    assert (result.n_kept, result.n_duplicates) == (1, 1)
    assert result.metadata["schema"] == "alpaca"


def test_directory_of_data_files_goes_through_load_dataset(tmp_path, store):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "\n".join(json.dumps({"question": f"q{i}", "answer": f"a{i}\n#### {i}"}) for i in range(4))
    )
    result = build_instruction_set("g", hub(folder), store)
    assert result.n_kept == 4 and result.metadata["schema"] == "gsm8k"


def test_unreachable_hub_id_raises_naming_it(store):
    with pytest.raises(DataSourceError, match="hub data set 'no-such-org/no-such-data'"):
        build_instruction_set("x", hub("no-such-org/no-such-data"), store)


def test_column_map_must_name_instruction_and_output():
    with pytest.raises(ValidationError, match=r"missing keys \['output'\]"):
        hub("x", columns={"instruction": "query"})
    with pytest.raises(ValidationError, match=r"unknown keys \['answer'\]"):
        hub("x", columns={"instruction": "q", "output": "r", "answer": "a"})
