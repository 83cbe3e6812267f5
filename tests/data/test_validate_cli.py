"""`python -m ual_dagster validate`: every file the profile names is checked, each problem
is one line naming the key and the path, and no traceback unless --debug / UAL_DEBUG=1."""

import json
from pathlib import Path

import pytest
import yaml

from ual_dagster.__main__ import main
from ual_dagster.config import ProfileError, load_profile
from ual_dagster.config.loader import BUNDLED_DIR


def profile_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data["storage"] = {"state_dir": str(tmp_path / "state")}
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_validate_names_every_missing_file_one_line_each(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UAL_DEBUG", raising=False)
    datasets = {
        "notes": {"source": "file", "entropy": "high", "path": str(tmp_path / "nowhere.jsonl")},
        "mirror": {"source": "hub", "entropy": "low", "hub_id": "./no_such_mirror"},
        # a hub id (pinned): not a file
        "remote": {
            "source": "hub",
            "entropy": "low",
            "hub_id": "openai/gsm8k",
            "revision": "740312add88f781978c0658806c59bc2815b9866",
        },
    }
    path = profile_file(
        tmp_path,
        datasets=datasets,
        scenarios={"s": {"size": 4, "weights": {"notes": 1.0}}},
        **{"evaluation.lm_eval": [{"name": "gsm8k_local", "data_path": str(tmp_path / "gsm8k_missing.jsonl")}]},
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"error: profile {path} has 3 problem(s) (missing files, unpinned hub ids)")
    assert f"key 'datasets.notes.path': data file {tmp_path / 'nowhere.jsonl'} does not exist" in err
    assert "key 'datasets.mirror.hub_id': local data set directory" in err and "no_such_mirror" in err
    assert "key 'evaluation.lm_eval[0].data_path'" in err
    assert "remote" not in err and "Traceback" not in err and len(lines) == 4


def test_a_valid_profile_validates(tmp_path, capsys):
    assert main(["validate", str(profile_file(tmp_path))]) == 0
    assert "is valid" in capsys.readouterr().out


def test_missing_prompt_is_a_profile_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UAL_DEBUG", raising=False)
    path = profile_file(tmp_path, **{"elicitation.prompt": "prompts/mine.txt"})
    with pytest.raises(ProfileError, match=r"key 'elicitation.prompt': prompt template .*mine.txt does not exist"):
        load_profile(str(path))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mine.txt does not exist" in err and "Traceback" not in err
    monkeypatch.setenv("UAL_DEBUG", "1")  # the traceback is there when asked for
    with pytest.raises(ProfileError):
        main(["validate", str(path)])


def test_a_bad_dataset_name_never_dumps_the_profile(tmp_path, capsys):
    path = profile_file(tmp_path, scenarios={"s": {"size": 4, "weights": {"no_such_set": 1.0}}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "names unknown dataset(s) ['no_such_set']" in err
    assert "base_model" not in err and len(err) < 600


def test_a_state_dir_that_cannot_be_created_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    data = yaml.safe_load(profile_file(tmp_path).read_text())
    data["storage"] = {"state_dir": str(blocker / "state")}
    path = tmp_path / "q.yaml"
    path.write_text(json.dumps(data))
    assert main(["dagster-home", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot create the state folder {blocker / 'state'} (storage.state_dir)")
    assert len(err.strip().splitlines()) == 1
