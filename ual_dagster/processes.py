"""Whether a process recorded earlier is still the one running: a live pid that started in time.

A pid means something only on this machine, and the kernel reuses pids, so a recorded pid
counts as alive only while a live process with it started no later than when it was
recorded. The Dagster layer's dead-run sweep (assets/runs.py) judges runs by this.
"""

from __future__ import annotations

import os
from pathlib import Path

_START_SLACK_S = 2.0  # clock-tick rounding of /proc start times


def alive_since(pid: int, since: float) -> bool:
    """Whether `pid` is a live process that started no later than `since` (epoch seconds);
    a pid reused by a newer process does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (not Linux): a live pid is all we can tell
    if fields[0] == "Z":
        return False  # a zombie: exited, not yet reaped
    boot = _boot_time()
    if boot is None:
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= since + _START_SLACK_S


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None
