"""Packaging and docs: a LICENSE matching pyproject, the cluster-only Dagster libraries as
extras (installed by setup.sh for the tests), and docs that point only inside the repository."""

import importlib.util
import re
import subprocess
import tomllib
from pathlib import Path

from ual_dagster.config import load_profile
from ual_dagster.preflight import run_preflight

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_license_file_matches_pyproject():
    assert PYPROJECT["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert (
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text and "END OF TERMS AND CONDITIONS" in text
    )


def test_k8s_and_postgres_are_extras_that_setup_installs():
    required = " ".join(PYPROJECT["dependencies"])
    assert "dagster-k8s" not in required and "dagster-postgres" not in required
    extras = PYPROJECT["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["k8s"]] == ["dagster-k8s"]
    assert [d.split(">")[0] for d in extras["postgres"]] == ["dagster-postgres"]
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    installs = re.search(r'install -e "\.\[([^\]]*)\]"', setup).group(1).split(",")
    assert {"dev", "k8s", "postgres"} <= set(installs)  # tests/ops use both


def test_preflight_names_the_k8s_extra_when_a_profile_starts_pods(monkeypatch):
    cluster = load_profile("cluster")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "dagster_k8s" else real(n, *a))
    checks = {
        c.name: c
        for c in run_preflight(
            cluster, get=lambda *a: (200, {"data": []}), hub=lambda *a: None, cuda=lambda: True, free_gb=lambda p: 1e3
        )
    }
    extra = checks["dagster-k8s (the k8s extra)"]
    assert not extra.ok and "pip install 'ual-dagster[k8s]'" in extra.detail
    tiny = run_preflight(load_profile("tiny"), cuda=lambda: False, free_gb=lambda p: 1e3)
    assert "dagster-k8s (the k8s extra)" not in {c.name for c in tiny}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in out.split() if f.endswith((".py", ".md", ".yaml", ".sh", ".toml", ".txt"))]


def test_nothing_points_to_research_notes_outside_the_repository():
    pattern = re.compile(r"\bresearch/(dagster|evaltools|slurm)\.md|shared/research")
    offenders = [
        str(p.relative_to(ROOT))
        for p in tracked_text_files()
        if p.name != "test_packaging.py" and p.is_file() and pattern.search(p.read_text(errors="replace"))
    ]
    assert offenders == []


def test_the_readme_says_where_keys_are_built_and_they_are_there():
    readme = (ROOT / "README.md").read_text()
    sentence = re.search(r"The functions in\s+`([^`]+)`\s+\(([^)]*)\)\s+are the one place keys are built", readme)
    assert sentence and sentence.group(1) == "assets/keys.py"
    keys = (ROOT / "assets" / "keys.py").read_text()
    for name in re.findall(r"`(\w+_key)`", sentence.group(2)):
        assert f"def {name}(" in keys
