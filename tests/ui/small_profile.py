"""A small UI-test profile: the bundled tiny profile with its state in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ual_dagster.config import Profile, load_profile

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCATION_NAME = "ual_dagster"  # workspace.yaml's location_name
TESTBED_SAMPLES = 100  # per data set: a UI-launched run then takes seconds
SCENARIO_SIZE = 40


@dataclass(frozen=True)
class UIProfile:
    path: Path
    profile: Profile
    dagster_home: Path
    env: dict[str, str]  # what `dagster dev` runs with: UAL_PROFILE, DAGSTER_HOME, offline hub

    @property
    def duckdb_path(self) -> Path:
        return Path(self.profile.storage.state_dir) / self.profile.storage.duckdb_file


def write_ui_profile(root: Path) -> UIProfile:
    """Write the profile under `root` and initialise its DAGSTER_HOME the documented way.

    Automation and the re-elicitation schedule are declared STOPPED so that the daemon
    started by `dagster dev` runs only what a test launches (not the whole pipeline).
    """
    data = yaml.safe_load((PROJECT_ROOT / "ual_dagster/config/profiles/tiny.yaml").read_text())
    data["storage"]["state_dir"] = str(root / "state")
    for dataset in data["datasets"].values():
        dataset["testbed"]["n_samples"] = TESTBED_SAMPLES
    for scenario in data["scenarios"].values():
        scenario["size"] = SCENARIO_SIZE
    data["orchestration"] = {**data.get("orchestration", {}), "automation": False, "reelicit_schedule": False}
    # Small enough that the whole pipeline, launched from the UI, takes a minute or two; one
    # process for the run (each step of a multiprocess run would import torch again).
    data["orchestration"]["executor"] = "in_process"
    data["base_model"]["tiny"].update(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        corpus_samples=200,
        pretrain_steps=20,
        pretrain_batch_size=8,
    )
    data["training"].update(epochs=1, batch_size=8, max_length=64, save_every_steps=50)
    evaluation = data["evaluation"]
    evaluation["generation"].update(max_new_tokens=6, batch_size=16)
    evaluation["lm_eval"] = [{**task, "limit": 8} for task in evaluation["lm_eval"]]
    evaluation["alpaca_eval"]["limit"] = 8
    evaluation["clustering"] = {"probe_samples": 8, "max_tokens": 200, "layers": [-1]}
    path = root / "ui_profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    env = {
        **os.environ,
        "UAL_PROFILE": str(path),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    home = subprocess.run(
        [sys.executable, "-m", "ual_dagster", "dagster-home"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dagster_home = Path(home)
    if not (dagster_home / "dagster.yaml").is_file():
        raise AssertionError(f"`python -m ual_dagster dagster-home` wrote no dagster.yaml in {dagster_home}")
    env["DAGSTER_HOME"] = str(dagster_home)
    return UIProfile(path=path, profile=load_profile(str(path)), dagster_home=dagster_home, env=env)
