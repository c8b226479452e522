"""landmarklib.files: atomic writes."""

from __future__ import annotations

import json
import os
import threading

import pytest

from landmarklib.files import atomic_path, is_abandoned, write_json, write_text


def test_atomic_path_replaces_the_file_in_one_step(tmp_path):
    target = tmp_path / "new" / "folder" / "file.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".file.txt.")
        tmp.write_text("whole")
        assert not target.exists()  # nothing at the target until the body has finished
    assert target.read_text() == "whole"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(OSError, match="No space"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError("No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_threads_writing_at_once_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "shared.json"

    def write(i):
        write_json(target, {"writer": i, "payload": "x" * 10_000})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert json.loads(target.read_text())["writer"] in range(8)  # one whole file, not a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]


def test_write_json_keeps_unicode_and_refuses_what_json_cannot_hold(tmp_path):
    path = write_json(tmp_path / "a.json", {"name": "Anıtkabir"})
    assert "Anıtkabir" in path.read_text(encoding="utf-8")
    with pytest.raises(TypeError):
        write_json(tmp_path / "b.json", {"bad": object()})
    assert not (tmp_path / "b.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_write_text_keeps_line_endings_and_unicode(tmp_path):
    path = write_text(tmp_path / "été.txt", "ünïcode\r\nlines\n")
    assert path.read_bytes() == "ünïcode\r\nlines\n".encode()


def test_temporary_files_name_their_process_and_leftovers_are_recognised(tmp_path):
    target = tmp_path / "a.jpg.xmp"
    with atomic_path(target, durable=False) as tmp:
        assert tmp.name.startswith(f".a.jpg.xmp.{os.getpid()}-") and tmp.suffix == ".tmp"
        assert not is_abandoned(tmp)  # this process is still writing it
        tmp.write_text("x")
    dead = tmp_path / ".a.jpg.xmp.4194999-abc123.tmp"  # above Linux's largest process id
    parent = tmp_path / f".a.jpg.xmp.{os.getppid()}-abc123.tmp"
    for path in (dead, parent):
        path.write_text("x")
    assert not is_abandoned(parent) and not is_abandoned(target)
    assert not is_abandoned(tmp_path / ".a.tmp")
    if os.name == "posix":
        assert is_abandoned(dead)


def test_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "report.csv", "file,status\n")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a photo manager, not only by us


def test_a_file_replaced_keeps_its_permissions_and_owner(tmp_path):
    path = write_text(tmp_path / "memory.json", "{}")
    for mode in (0o444, 0o600):
        path.chmod(mode)
        write_text(path, f'{{"mode": {mode}}}')
        assert path.stat().st_mode & 0o777 == mode and path.read_text() == f'{{"mode": {mode}}}'
    if os.geteuid() == 0:  # root (a sudo run) gives the file back to its owner
        os.chown(path, 65534, 65534)
        write_text(path, "{}")
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_a_file_keeps_its_permissions_where_its_owner_cannot_be_kept(tmp_path, monkeypatch):
    path = write_text(tmp_path / "photo.jpg.xmp", "<x/>")
    path.chmod(0o600)

    def refused(*args):  # root without CAP_CHOWN, in a rootless container
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refused)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    write_text(path, "<y/>")
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "<y/>"
