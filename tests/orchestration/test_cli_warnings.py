"""The activation hook silences the SupersessionWarning that `dagster asset materialize` prints on every run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rendered_hook() -> str:
    """The text scripts/setup.sh appends to .venv/bin/activate, rendered by bash as setup does."""
    setup = (ROOT / "scripts/setup.sh").read_text().splitlines()
    start = next(i for i, line in enumerate(setup) if line.startswith("  cat >> .venv/bin/activate <<HOOK"))
    end = next(i for i in range(start + 1, len(setup)) if setup[i] == "HOOK")
    script = "\n".join(
        ['ROOT=/project; HOOK_BEGIN="# >>> ual-dagster >>>"', "cat <<HOOK", *setup[start + 1 : end], "HOOK"]
    )
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout


def test_the_hook_filters_only_the_supersession_warning():
    export = next(line for line in rendered_hook().splitlines() if line.startswith("export PYTHONWARNINGS="))
    dagster = Path(sys.executable).with_name("dagster")
    # a module that does not exist: the command fails fast, after the warning would have been printed
    command = f'{export}; "{dagster}" asset materialize -m no_such_module_for_this_test --select x'
    plain = subprocess.run(["bash", "-c", command.split("; ", 1)[1]], capture_output=True, text=True, timeout=120)
    hooked = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert "SupersessionWarning" in plain.stderr  # the warning this filter exists for
    assert "SupersessionWarning" not in hooked.stderr, hooked.stderr
    assert "no_such_module_for_this_test" in hooked.stdout + hooked.stderr  # the real error still shows
