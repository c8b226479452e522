"""Writing files so that a crash, a kill or a full disk never leaves half a file behind.

Every file landmarklib writes (model files, checkpoints, cached features and statistics,
reports, sidecars) goes through :func:`atomic_path`: the new content is written to a temporary
file in the same folder, flushed to disk, then renamed over the target with :func:`os.replace`,
which is atomic on POSIX and Windows. A reader therefore sees either the old file or the whole
new one, never a mixture; if writing fails, the temporary file is removed and the old file
stays as it was.

This module uses the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to; on success it replaces ``path`` in one step.

    Example::

        with atomic_path("model.pt") as tmp:
            torch.save(record, tmp)

    The temporary file lives in the same folder as ``path`` (so the rename never crosses file
    systems), under a unique hidden name, so that threads and processes writing at the same
    time never share one. Missing folders are created.

    Args:
        path: the file to write.

    Yields:
        The temporary file's path (the file exists and is empty; overwrite it).

    Raises:
        Whatever the body raises: the temporary file is then removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:  # flush the data to disk before the rename
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data, indent: int | None = 1) -> Path:
    """Write ``data`` as UTF-8 JSON to ``path`` atomically (:func:`atomic_path`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``data`` holds something JSON cannot represent (nothing is written).
    """
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
