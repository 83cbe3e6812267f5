"""Resumable training checkpoints under `<out_dir>/checkpoints/step-<N>/`.

A checkpoint holds the LoRA weights, optimizer, scheduler, every RNG, the step (which
fixes the data-order position, see examples.Schedule) and the loss curve so far. It is
written into a temporary directory and renamed into place, so a run killed while
saving leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ual_dagster.storage.files import atomic_path

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
_PREFIX = "step-"


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: Path, step: int, model, optimizer, scheduler, progress: dict[str, Any]) -> Path:
    """Write checkpoint `step` atomically and delete the older ones."""
    root = Path(out_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step:08d}"
    state = {
        "step": step,
        "trainable": _trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "progress": progress,
    }
    with atomic_path(final) as tmp:
        tmp.mkdir()
        torch.save(state, tmp / STATE_FILE)
    for old in root.glob(f"{_PREFIX}*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out_dir: Path) -> Path | None:
    root = Path(out_dir) / CHECKPOINTS
    done = sorted(p for p in root.glob(f"{_PREFIX}*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model, optimizer, scheduler, run_key: str) -> dict[str, Any] | None:
    """Restore weights, optimizer, scheduler and RNGs; return {step, progress}.

    Returns None, restoring nothing, when the checkpoint was saved by a run with other
    inputs (its progress["run_key"] differs).
    """
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)
    if state["progress"].get("run_key") != run_key:
        return None
    params = dict(model.named_parameters())
    missing = sorted(set(state["trainable"]) - set(params))
    if missing:
        raise ValueError(f"checkpoint {path} has parameters the model lacks: {missing[:5]}")
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value.to(params[name].device))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return {"step": state["step"], "progress": state["progress"]}


def remove_checkpoints(out_dir: Path) -> None:
    shutil.rmtree(Path(out_dir) / CHECKPOINTS, ignore_errors=True)
