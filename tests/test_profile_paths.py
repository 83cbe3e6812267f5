"""Relative paths in a profile resolve against the profile file's own folder (for the bundled
profiles that is the project root, as before), also when another profile extends it."""

import json
from pathlib import Path

from ual_dagster.__main__ import main
from ual_dagster.config import PROJECT_ROOT, load_profile, resolve_path
from ual_dagster.config.paths import template_path
from ual_dagster.data import build_instruction_set
from ual_dagster.storage import StatePaths


def notes(path: Path, n: int = 5) -> Path:
    path.write_text("".join(json.dumps({"instruction": f"Note {i}?", "output": f"Note {i}."}) + "\n" for i in range(n)))
    return path


def test_a_profile_outside_the_repository_reads_the_file_beside_it(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    notes(folder / "notes.jsonl")
    (folder / "prompts").mkdir()
    (folder / "prompts" / "mine.txt").write_text((template_path("uncertainty_v1")).read_text())
    profile = folder / "p.yaml"
    profile.write_text(
        "extends: tiny\nname: mine\nstorage: {state_dir: state}\n"
        "datasets:\n  notes: {source: file, entropy: high, path: notes.jsonl, format: alpaca_jsonl}\n"
        "  mirror: {source: hub, entropy: low, hub_id: ./mirror}\n"
        "  remote: {source: hub, entropy: low, hub_id: openai/gsm8k}\n"
        "elicitation: {prompt: prompts/mine.txt}\n"
        "evaluation:\n  lm_eval: [{name: testbed_exact_heldout, data_path: tasks/items.jsonl}]\n"
    )
    p = load_profile(str(profile))
    assert resolve_path(p.datasets["notes"].path) == folder / "notes.jsonl"
    assert resolve_path(p.datasets["mirror"].hub_id) == folder / "mirror"
    assert p.datasets["remote"].hub_id == "openai/gsm8k"  # a hub id is not a path
    assert template_path(p.elicitation.prompt) == folder / "prompts" / "mine.txt"
    assert resolve_path(p.evaluation.lm_eval[0].data_path) == folder / "tasks" / "items.jsonl"
    assert StatePaths.for_profile(p).state_dir == folder / "state"
    # validate looks beside the profile too: only the two that are not there are missing
    assert main(["validate", str(profile)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'mirror'} does not exist" in err and f"{folder / 'tasks' / 'items.jsonl'} does not exist" in err
    assert "notes.jsonl" not in err and "mine.txt" not in err
    # and the loader reads it
    result = build_instruction_set("notes", p.datasets["notes"], StatePaths.for_profile(p).store())
    assert result.metadata["n_kept"] == 5


def test_an_inherited_relative_path_keeps_meaning_the_file_beside_its_own_profile(tmp_path):
    base, child = tmp_path / "base", tmp_path / "elsewhere" / "deeper"
    base.mkdir()
    child.mkdir(parents=True)
    notes(base / "notes.jsonl")
    (base / "p.yaml").write_text(
        "extends: tiny\nname: base\ndatasets:\n  notes: {source: file, entropy: high, path: notes.jsonl}\n"
    )
    (child / "c.yaml").write_text("extends: ../../base/p.yaml\nname: child\nstorage: {state_dir: st}\n")
    p = load_profile(str(child / "c.yaml"))
    assert resolve_path(p.datasets["notes"].path) == base / "notes.jsonl"
    assert StatePaths.for_profile(p).state_dir == child / "st"


def test_bundled_profiles_resolve_against_the_project_root_as_before(tmp_path):
    smoke = load_profile("gpu_smoke")
    assert smoke.datasets["gsm8k"].path == "../shared/data/gsm8k/train.jsonl"  # as written: fingerprints unmoved
    assert resolve_path(smoke.datasets["gsm8k"].path) == (PROJECT_ROOT / "../shared/data/gsm8k/train.jsonl").resolve()
    assert StatePaths.for_profile(load_profile("tiny")).state_dir == PROJECT_ROOT / ".ual_state"
    # a child elsewhere inherits tiny's state_dir as tiny means it
    (tmp_path / "c.yaml").write_text("extends: tiny\nname: c\n")
    assert StatePaths.for_profile(load_profile(str(tmp_path / "c.yaml"))).state_dir == PROJECT_ROOT / ".ual_state"
    # the example profiles, one folder down, still name the shared data and the project's state folder
    shared = load_profile(str(PROJECT_ROOT / "examples" / "profiles" / "shared_data.yaml"))
    assert resolve_path(shared.datasets["gsm8k"].path) == (PROJECT_ROOT / "../shared/data/gsm8k/train.jsonl").resolve()
    assert StatePaths.for_profile(shared).state_dir == PROJECT_ROOT / ".ual_state" / "shared_data"
