"""Atomic writes: a file or folder appears at its final path complete, or not at all.

Everything is first written to a temporary sibling (same folder, so the same file system)
and then renamed into place, which POSIX makes atomic. A reader therefore sees the old
content or the new one, never a half-written file, and a crash or an exception leaves the
old content in place and no temporary behind (a killed process can leave a `.tmp-` sibling,
which nothing reads).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | Path, *, fsync: bool = False, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `target`; write a file or a folder there.

    On leaving the block normally the temporary is renamed to `target`; on an exception it
    is removed and `target` is left as it was. A folder replaces an existing `target`
    folder when `replace` (the old one is removed first, so for a moment neither exists);
    with `replace=False` an existing non-empty `target` folder raises OSError (another
    process finished first) and the temporary is removed. `fsync` flushes a written file
    to disk before the rename, for markers that must not survive a power loss empty.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary path {tmp} for {target}")
        if tmp.is_dir() and replace and target.is_dir():
            shutil.rmtree(target)
        elif fsync and tmp.is_file():
            _fsync_file(tmp)
        # rename(2) moves a folder only onto a missing or empty one, hence the rmtree above.
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> None:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> None:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
