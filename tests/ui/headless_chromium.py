"""Debian's `chromium` in headless mode: page screenshots and rendered DOM, plus image checks."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW = (1600, 1000)
# Chromium's virtual clock: the page's timers and network callbacks run for this many
# virtual milliseconds before the capture, so the graph's layout finishes.
VIRTUAL_TIME_BUDGET_MS = 15000


def chromium_binary() -> str | None:
    return shutil.which("chromium")


def headless_command(binary: str, profile_dir: Path) -> list[str]:
    """Chromium, headless, with its own profile folder and the tests' window size: the flags
    shared by the one-shot captures here and the DevTools-driven page (cdp_page)."""
    # Root in a container needs --no-sandbox; the rest keeps chromium off the network
    # (no update checks, sync or QUIC probes) and makes the run reproducible.
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]


def _capture_command(binary: str, profile_dir: Path) -> list[str]:
    return [*headless_command(binary, profile_dir), f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"]


def screenshot(binary: str, url: str, out_png: Path, profile_dir: Path, timeout_s: float = 60.0) -> Path:
    profile_dir.mkdir(parents=True, exist_ok=True)
    cmd = [*_capture_command(binary, profile_dir), f"--screenshot={out_png}", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not out_png.is_file():
        raise AssertionError(f"chromium screenshot failed ({done.returncode}): {done.stderr[-2000:]}")
    return out_png


def rendered_dom(binary: str, url: str, profile_dir: Path, timeout_s: float = 60.0) -> str:
    profile_dir.mkdir(parents=True, exist_ok=True)
    cmd = [*_capture_command(binary, profile_dir), "--dump-dom", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


@dataclass(frozen=True)
class RegionStats:
    distinct_colours: int
    std: float
    foreground_fraction: float  # pixels far from the region's median (background) colour


def region_stats(rgb: np.ndarray) -> RegionStats:
    """Statistics of an RGB uint8 image region that tell a drawn graph from an empty or loading page."""
    pixels = rgb.reshape(-1, 3).astype(np.int16)
    background = np.median(pixels, axis=0)
    foreground = np.abs(pixels - background).sum(axis=1) > 30
    return RegionStats(
        distinct_colours=len(np.unique(pixels, axis=0)),
        std=float(pixels.std()),
        foreground_fraction=float(foreground.mean()),
    )
