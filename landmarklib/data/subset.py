"""A dataset folder that holds some of another's classes: symbolic links, nothing copied.

To measure how a model meets landmarks it never saw, train it without them: :func:`class_subset`
makes a dataset folder with the other classes only (``train/`` and ``test/`` folders of links to
the original class folders), which every loader reads like any other.

Taught in notebooks/05_beyond_the_landmarks.ipynb, 'A model that has not seen every landmark'.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from landmarklib.data.layout import SPLITS, class_folders

__all__ = ["class_subset"]


def class_subset(source: str | os.PathLike, out: str | os.PathLike,
                 classes: Sequence[str]) -> Path:
    """A dataset folder at ``out`` with only ``classes`` of the dataset at ``source``.

    Args:
        source: a dataset folder (``train/`` and ``test/`` of class folders).
        out: the new folder (made if needed; links already there are kept).
        classes: class folder names of ``source``, e.g. ``["16.Eiffel_Tower"]``.

    Returns:
        ``out``, as a ``Path``.

    Raises:
        ValueError: a class that ``source`` does not have (named), or no class.
        FileExistsError: ``out`` holds something else under a class's name.
    """
    source, out = Path(source).resolve(), Path(out)
    known = class_folders(source / "train")
    missing = [name for name in classes if name not in known]
    if missing or not classes:
        raise ValueError(f"{source} has no class {missing[0]!r}" if missing else
                         "give at least one class")
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        for name in classes:
            link = out / split / name
            if link.is_symlink() and link.resolve() == (source / split / name).resolve():
                continue
            if link.exists() or link.is_symlink():
                raise FileExistsError(f"{link} already exists and is not a link to {source}")
            link.symlink_to(source / split / name, target_is_directory=True)
    return out
