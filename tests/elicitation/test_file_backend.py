from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.elicitation.samples_table import Sample, write_samples
from ual_dagster.config.elicitation import FileElicitation
from ual_dagster.elicitation import current_scores, elicit_dataset
from ual_dagster.elicitation.backends.file_import import ScoreFileError

SAMPLES = [
    Sample("Name a colour.", "", "blue"),
    Sample("Add 2 and 3.", "", "5"),
    Sample("Caf\u00e9 review", "menu", "Nice."),
]


def cfg(path) -> FileElicitation:
    return FileElicitation(backend="file", file_path=str(path))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_import_by_id_and_by_normalised_content_reports_unmatched(store, tmp_path, fmt):
    write_samples(store, "f", SAMPLES)
    records = [
        {"sample_id": SAMPLES[0].sample_id, "uncertainty": 0.9},
        # matched by content after normalisation: CRLF, padding and decomposed e + combining accent
        {"instruction": "  Cafe\u0301 review\r\n", "input": "menu", "output": "Nice.", "uncertainty": 0.6},
        {"instruction": "Not in the data", "input": "", "output": "?", "uncertainty": 0.1},
    ]
    path = tmp_path / f"scores.{fmt}"
    if fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, ["sample_id", "instruction", "input", "output", "uncertainty"])
            writer.writeheader()
            writer.writerows(records)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    else:
        pq.write_table(
            pa.Table.from_pylist(
                [{k: r.get(k) for k in ("sample_id", "instruction", "input", "output", "uncertainty")} for r in records]
            ),
            path,
        )

    result = elicit_dataset("f", cfg(path), store)
    assert current_scores(store, "f", cfg(path)) == {SAMPLES[0].sample_id: 0.9, SAMPLES[2].sample_id: 0.6}
    md = result.metadata
    assert md["file_unmatched_rows"] == 1 and md["file_missing_samples"] == 1 and md["file_matched_rows"] == 2
    assert md["file_unmatched_examples"] == [f"row {4 if fmt == 'csv' else 3}"]
    assert result.elicitor.startswith("file:scores:import:")
    again = elicit_dataset("f", cfg(path), store)
    assert again.metadata["cache_hits"] == 2 and again.metadata["file_unmatched_rows"] == 1


def test_bad_rows_name_the_file_and_row(store, tmp_path):
    write_samples(store, "f", SAMPLES)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"sample_id": SAMPLES[0].sample_id, "uncertainty": 0.2}) + "\n{not json\n")
    with pytest.raises(ScoreFileError, match=r"bad.jsonl:2: not valid JSON"):
        elicit_dataset("f", cfg(path), store)
    path.write_text(json.dumps({"sample_id": SAMPLES[0].sample_id, "uncertainty": 1.7}) + "\n")
    with pytest.raises(ScoreFileError, match=r"row 1: 'uncertainty' 1.7 is outside \[0, 1\]"):
        elicit_dataset("f", cfg(path), store)
    path.write_text(json.dumps({"uncertainty": 0.3}) + "\n")
    with pytest.raises(ScoreFileError, match="row 1: needs 'sample_id' or 'instruction' and 'output'"):
        elicit_dataset("f", cfg(path), store)
