"""Tests for landmarklib.atomic: a file is the old one or the whole new one, never half."""

from __future__ import annotations

import os

import pytest

from landmarklib.atomic import atomic_path, is_abandoned, temporary_path, write_text_atomically


def test_write_replaces_in_one_step(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("old")
    with atomic_path(path) as tmp:
        assert tmp == tmp_path / f".report.csv.{os.getpid()}.tmp" == temporary_path(path)
        tmp.write_text("new")
        assert path.read_text() == "old"  # untouched until the block ends
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "IMG_1.jpg.xmp"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="half way"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("half way")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["IMG_1.jpg.xmp"]


def test_write_text_atomically(tmp_path):
    path = write_text_atomically(tmp_path / "été.txt", "ünïcode\r\nlines\n")
    assert path.read_bytes() == "ünïcode\r\nlines\n".encode()


def test_is_abandoned(tmp_path):
    dead = tmp_path / ".a.jpg.xmp.4194999.tmp"  # above Linux's largest process id
    mine = temporary_path(tmp_path / "a.jpg.xmp")
    parent = tmp_path / f".a.jpg.xmp.{os.getppid()}.tmp"
    for path in (dead, mine, parent):
        path.write_text("x")
    assert not is_abandoned(mine) and not is_abandoned(parent)
    assert not is_abandoned(tmp_path / "a.jpg.xmp") and not is_abandoned(tmp_path / ".a.tmp")
    if os.name == "posix":
        assert is_abandoned(dead)
