"""Write a file so that it is always either the old file or the whole new one.

The new content goes to a temporary file in the same folder (so the rename cannot cross file
systems), named ``.<name>.<process id>.tmp`` (hidden, and telling which process made it), which
is then renamed over the target by :func:`os.replace`, atomic on POSIX and Windows. If anything
fails, the temporary file is removed. A process killed between the two steps (``kill -9``, a
power cut) can leave the temporary file behind, never a half-written target:
:func:`is_abandoned` tells such a leftover from a file another run is still writing.

Contents are not ``fsync``-ed: the rename makes a write atomic for other processes and across a
crash of this one; after a power cut the file system (ext4's ``auto_da_alloc``, APFS, NTFS)
keeps either the old or the new file in practice, and an fsync per photo would cost more than
the write itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")

#: Where a process id cannot be checked (Windows), a temporary file older than this (seconds)
#: is taken as abandoned: a write takes milliseconds.
ABANDONED_AFTER_S = 600


def temporary_path(path: str | os.PathLike) -> Path:
    """``<folder>/.<name>.<pid>.tmp``: where :func:`atomic_path` writes before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to; on success it replaces ``path`` in one step.

    >>> with atomic_path("report.csv") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("file,status\\n")

    Args:
        path: the file to write (its folder must exist).

    Yields:
        The temporary file's path (in the same folder, hidden). Whatever the block writes there
        becomes ``path`` when the block ends without an exception.

    Raises:
        Whatever the block raises (``path`` is then untouched and the temporary file removed);
        OSError if the rename fails.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)


def is_abandoned(path: str | os.PathLike) -> bool:
    """True for a temporary file of :func:`atomic_path` whose writer is gone.

    On POSIX the writer is gone when no process has the id in the name (a recycled id keeps
    the file, which is safe); elsewhere, when the file is older than :data:`ABANDONED_AFTER_S`.
    Files of this process, and any other file, are never abandoned.
    """
    path = Path(path)
    match = _TEMPORARY.match(path.name)
    if match is None or int(match["pid"]) == os.getpid():
        return False
    if os.name == "posix":
        try:
            os.kill(int(match["pid"]), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            return False
        return False
    try:
        return time.time() - path.stat().st_mtime > ABANDONED_AFTER_S
    except OSError:
        return False
