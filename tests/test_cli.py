"""The shell CLI on one argparse parser: `ual-dagster` (console script) and `python -m ual_dagster`
behave alike; `--help` on every command prints help and runs nothing; an unknown command or
flag exits 2 naming it; `--json` wherever the output is data."""

import json
import os
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import pytest

import ual_dagster.__main__ as cli_module
from ual_dagster.__main__ import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _state_in_tmp(tmp_path, monkeypatch):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"extends: tiny\nname: p\nstorage: {{state_dir: {tmp_path / 'state'}}}\n")
    monkeypatch.setenv("UAL_PROFILE", str(profile))
    monkeypatch.delenv("UAL_DEBUG", raising=False)


def _nothing_runs(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("--help ran the command")

    for name in ("load_profile", "run_preflight", "plan", "profile_problems"):
        monkeypatch.setattr(cli_module, name, boom)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_on_every_command_prints_help_and_runs_nothing(command, capsys, monkeypatch):
    _nothing_runs(monkeypatch)
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ual-dagster {command}") and "PROFILE" in out
    assert main([command, "no_such_profile", "-h"]) == 0  # also with arguments that would fail


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)
    assert main([]) == 0 and "usage: ual-dagster" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["paths", "--bogus"], "--bogus"), (["validate", "tiny", "--jsn"], "--jsn"), (["bogus"], "'bogus'")],
)
def test_an_unknown_flag_or_command_exits_2_naming_it(argv, named, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "error:" in err and "Traceback" not in err


def test_json_wherever_the_output_is_data(capsys, tmp_path):
    assert main(["paths", "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert paths["state_dir"] == str(tmp_path / "state") and set(paths) == {
        "state_dir",
        "duckdb",
        "artifacts",
        "dagster_home",
    }
    assert main(["validate", "--json"]) == 0
    valid = json.loads(capsys.readouterr().out)
    assert valid["valid"] is True and valid["profile"] == "p"
    mixed = {m["dataset"]: m for m in valid["scenarios"]["mixed"]["mix"]}
    assert mixed["testbed_open"]["rows"] == 300 and mixed["testbed_open"]["train_rows_basis"] == "from the profile"
    assert main(["plan", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "p"
    code = main(["preflight", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["ok"] else 1) and {"name", "ok", "detail"} <= set(report["checks"][0])


def test_validate_json_reports_problems_and_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"extends: tiny\nname: bad\nscenarios:\n  mixed: {{size: 99999}}\nstorage: {{state_dir: {tmp_path}}}\n"
    )
    assert main(["validate", str(bad), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is False and "scenario 'mixed' asks" in data["problems"][0]


def test_the_console_script_is_the_same_cli(capsys, monkeypatch):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["ual-dagster"].split(":")
    entry = getattr(import_module(module), func)
    monkeypatch.setattr(sys, "argv", ["ual-dagster", "paths", "--json"])
    with pytest.raises(SystemExit) as done:
        entry()
    assert done.value.code == 0 and "dagster_home" in json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys, "argv", ["ual-dagster", "paths", "--bogus"])
    with pytest.raises(SystemExit) as done:
        entry()
    assert done.value.code == 2


def test_python_dash_m_prints_help_for_a_command():
    out = subprocess.run(
        [sys.executable, "-m", "ual_dagster", "preflight", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "UAL_PROFILE": "paper"},
    )
    assert out.returncode == 0 and out.stdout.startswith("usage: ual-dagster preflight")
    assert "[ok]" not in out.stdout and "MISSING" not in out.stdout  # nothing was checked


def test_validate_says_where_training_and_evaluation_run(capsys, monkeypatch):
    monkeypatch.delenv("UAL_SLURM_PARTITION", raising=False)
    assert main(["validate", "slurm"]) == 0
    out = capsys.readouterr().out
    assert "training:  slurm jobs ($UAL_SLURM_PARTITION or the default partition; 0 GPU, 1 CPU, 4 GB" in out
    assert "evaluation: slurm jobs" in out
    assert main(["validate", "tiny", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["launchers"] == {"training": {"kind": "in_process"}, "evaluation": {"kind": "in_process"}}
