"""Writing files so that a crash, a kill or a full disk never leaves half a file behind.

Every file landmarklib writes (model files, checkpoints, cached features and statistics,
reports, maps, XMP sidecars) goes through :func:`atomic_path`: the new content is written to a
temporary file in the same folder (so the rename cannot cross file systems), then renamed over
the target with :func:`os.replace`, which is atomic on POSIX and Windows. A reader therefore
sees either the old file or the whole new one, never a mixture; if writing fails, the temporary
file is removed and the old file stays as it was.

The temporary file is hidden and named ``.<name>.<process id>-<random>.tmp``: unique to each
writer (threads and processes writing the same target never share one), and telling which
process made it. A process killed between the two steps (``kill -9``, a power cut) can leave
it behind, never a half-written target; :func:`is_abandoned` tells such a leftover from a file
another process is still writing.

``durable=True`` (the default) also flushes the data to the disk before the rename, so that
after a power cut the file is the old or the new one, not empty. Many small files written in a
row (sidecars, one per photo) may skip it: the rename alone already makes each write atomic for
every other process and across a crash of this one.

This module uses the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_json", "write_text", "is_abandoned", "ABANDONED_AFTER_S"]

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-\w+\.tmp$")

#: Where a process id cannot be checked (Windows), a temporary file older than this (seconds)
#: is taken as abandoned: a write takes milliseconds.
ABANDONED_AFTER_S = 600


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """A temporary path to write to; on success it replaces ``path`` in one step.

    A file replaced keeps its permission bits (a read-only model file stays read-only, as
    ``sed -i`` leaves it) and, written by root, its owner; a new one gets the permissions
    ``open`` gives (0666 less the umask).

    Example::

        with atomic_path("model.pt") as tmp:
            torch.save(record, tmp)

    Args:
        path: the file to write (missing folders are created).
        durable: flush the data to the disk before the rename (see the module's documentation).

    Yields:
        The temporary file's path (the file exists and is empty; overwrite it).

    Raises:
        Whatever the body raises: the temporary file is then removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
        _keep_permissions(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _keep_permissions(path: Path, tmp: Path) -> None:
    """Give ``tmp`` the permission bits of the file ``path`` it will replace (POSIX; none when
    there is none), and, when running as root, its owner too: a ``sudo`` run must not leave a
    user's 0600 sidecar owned by root and unreadable to them. Where the file system refuses
    (a vfat card, say), the new file keeps the permissions a new file gets."""
    if os.name != "posix":
        return
    try:
        old = path.stat()
    except OSError:
        return
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):  # root without CAP_CHOWN (a rootless container)
            os.chown(tmp, old.st_uid, old.st_gid)
    with contextlib.suppress(OSError):
        os.chmod(tmp, stat.S_IMODE(old.st_mode))


def _new_temporary(path: Path) -> Path:
    """Create ``.<name>.<pid>-<random>.tmp`` beside ``path``, empty, with the permissions a new
    file gets (0666 less the umask, as ``open`` gives; :func:`tempfile.mkstemp` would give 0600,
    and the model files, reports and sidecars written through it would be unreadable to
    others, a photo manager running as another user among them)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def write_json(path: str | os.PathLike, data, indent: int | None = 1) -> Path:
    """Write ``data`` as UTF-8 JSON to ``path`` atomically (:func:`atomic_path`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``data`` holds something JSON cannot represent (nothing is written).
    """
    return write_text(path, json.dumps(data, indent=indent, ensure_ascii=False))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, line endings as given) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)


def is_abandoned(path: str | os.PathLike) -> bool:
    """True for a temporary file of :func:`atomic_path` whose writer is gone.

    On POSIX the writer is gone when no process has the id in the name (a recycled id keeps
    the file, which is safe); elsewhere, when the file is older than :data:`ABANDONED_AFTER_S`.
    This process's files, and any file not named like a temporary file, are never abandoned.
    """
    path = Path(path)
    match = _TEMPORARY.match(path.name)
    if match is None or int(match["pid"]) == os.getpid():
        return False
    if os.name == "posix":
        try:
            os.kill(int(match["pid"]), 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            return False
        return False
    try:
        return time.time() - path.stat().st_mtime > ABANDONED_AFTER_S
    except OSError:
        return False
