"""Atomic writes: the target holds the old content or the new, never a part, and no temporary stays."""

from __future__ import annotations

import pytest

from ual_dagster.storage.files import atomic_path, atomic_write_bytes, atomic_write_text


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_text_and_bytes_replace_the_target(tmp_path):
    target = tmp_path / "sub" / "result.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second ü", fsync=True)
    assert target.read_text(encoding="utf-8") == "second ü"
    atomic_write_bytes(tmp_path / "blob", b"\x00\x01")
    assert (tmp_path / "blob").read_bytes() == b"\x00\x01"
    assert _siblings(target.parent) == ["result.json"]


def test_an_exception_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_text("half a new fi")
            assert target.read_text() == "old"  # the target is untouched while writing
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert _siblings(tmp_path) == ["result.json"]


def test_a_folder_replaces_the_old_folder_whole(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights.bin").write_text("new")
    assert _siblings(target) == ["weights.bin"]
    assert _siblings(tmp_path) == ["adapter"]


def test_a_failed_folder_write_keeps_the_old_folder_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_text("partial")
            raise ValueError("save failed")
    assert (target / "weights.bin").read_text() == "old"
    assert _siblings(tmp_path) == ["adapter"]


def test_without_replace_an_existing_folder_wins_and_the_new_one_is_dropped(tmp_path):
    target = tmp_path / "converted"
    target.mkdir()
    (target / "marker").write_text("theirs")
    with pytest.raises(OSError):
        with atomic_path(target, replace=False) as tmp:
            tmp.mkdir()
            (tmp / "marker").write_text("ours")
    assert (target / "marker").read_text() == "theirs"
    assert _siblings(tmp_path) == ["converted"]


def test_writing_nothing_is_an_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass
    assert target.read_text() == "old"
