"""Every hub id a profile loads is pinned to a revision (`validate`), unless it says
`allow_unpinned: true`.

A hub repository's `main` moves: weights, tokenizers and data sets can change under an
unchanged profile, while the fingerprints (which hash the profile) say nothing changed.
So a profile that loads anything from the Hugging Face hub names a commit for each of:
the base model, every hub data set, the AlpacaEval references and the data set behind
every lm-eval task that reads the hub (gsm8k, gsm8k_ual without data_path).
"""

from __future__ import annotations

from pathlib import Path

from ual_dagster.config.evaluation import LmEvalTaskConfig
from ual_dagster.config.profile import Profile

# The shipped lm-eval tasks (ual_dagster/evaluation/tasks); a task whose YAML reads the
# run's exported data file (this placeholder) never touches the hub.
_TASKS_DIR = Path(__file__).resolve().parents[1] / "evaluation" / "tasks"
_LOCAL_DATA_PLACEHOLDER = "__UAL_DATA_FILE__"


def _is_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~"))


def task_reads_hub(task: LmEvalTaskConfig) -> bool:
    """Does the lm-eval task load its data set from the hub (no local data file)?"""
    if task.data_path:
        return False
    shipped = _TASKS_DIR / f"{task.name}.yaml"
    return not (shipped.is_file() and _LOCAL_DATA_PLACEHOLDER in shipped.read_text(encoding="utf-8"))


def hub_pins(profile: Profile) -> list[tuple[str, str, str | None]]:
    """(profile key of the revision, hub id, revision or None) for everything loaded from the hub."""
    pins: list[tuple[str, str, str | None]] = []
    bm = profile.base_model
    if bm.source == "hub" and bm.hub_id and not _is_local(bm.hub_id):
        pins.append(("base_model.revision", bm.hub_id, bm.revision))
    for name, ds in profile.datasets.items():
        if ds.source == "hub" and ds.hub_id and not _is_local(ds.hub_id):
            pins.append((f"datasets.{name}.revision", ds.hub_id, ds.revision))
    ae = profile.evaluation.alpaca_eval
    if ae is not None and ae.instructions == "hub":
        pins.append(("evaluation.alpaca_eval.hub_revision", ae.hub_id, ae.hub_revision))
    for i, task in enumerate(profile.evaluation.lm_eval):
        if task_reads_hub(task):
            pins.append((f"evaluation.lm_eval[{i}].revision", f"lm-eval task {task.name}", task.revision))
    return pins


def unpinned_problems(profile: Profile) -> list[str]:
    """One line per hub id without a pinned revision (none when the profile allows it)."""
    if profile.allow_unpinned:
        return []
    return [
        f"key '{key}': {what} is loaded from the Hugging Face hub without a pinned revision "
        f"({rev or 'unset'}); set a commit sha, or `allow_unpinned: true` to follow the hub's main"
        for key, what, rev in hub_pins(profile)
        if not rev or rev == "main"
    ]
