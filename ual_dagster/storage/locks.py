"""Locks that die with their holder: `flock` on a file next to the data it guards.

The kernel releases an flock when the process holding it exits, however it exits
(SIGKILL included), so a killed run can never leave a lock behind for the next one to
wait on forever. The holder writes its pid into the file, so a waiter can say whom it
waits for. Local filesystems only (flock over NFS is not reliable): the state folder is.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WAIT_LOG_INTERVAL_S = 30.0
_POLL_S = 0.2


@contextmanager
def held_lock(path: str | Path, what: str, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the `with` body; waits while
    another process holds it, logging `what` it waits for and the holder's pid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        last_log = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if log is not None and (last_log is None or now - last_log >= WAIT_LOG_INTERVAL_S):
                    last_log = now
                    log(f"waiting for {what}: held by pid {_holder(fd) or '?'} ({path})")
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
