"""Is a folder laid out like ``landmark_images``, and which of its photos can be used?

:func:`check_layout` lists the class folders of ``train/`` and ``test/`` and every photo in
them, decodes each photo once with the same decoder training uses
(:func:`landmarklib.images.open_image`), and reports what it finds: fatal problems (a missing
split, class folders that differ, an empty class), files that are not photos, photos that do
not decode (with the reason), and test photos that are byte-identical to training photos (a
leak the real dataset has). Only the photos that decode are handed on to training, so one bad
file never stops a run.

Decoding every photo takes a while the first time (on every core; timings in
``benchmarks/README.md``). The verdicts are kept in ``<cache_dir()>/checked/``, keyed by each
file's size and modification time, so later checks only decode new or changed photos.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from landmarklib.cache import cache_dir
from landmarklib.files import write_json
from landmarklib.images import ImageError, is_image_file, open_image
from landmarklib.places import display_name

__all__ = ["SPLITS", "LayoutReport", "check_layout", "dataset_of_model", "class_folders",
           "class_names",
           "image_sizes"]

SPLITS = ("train", "test")

#: Photos are test-decoded at this short side (JPEGs at reduced scale, as training decodes
#: them): every byte of the file is still read and checked.
_CHECK_SHORT_SIDE = 64


@dataclass
class LayoutReport:
    """What :func:`check_layout` found in a dataset folder.

    Attributes:
        root: the dataset folder.
        classes: class folder names (sorted; class id = position in this list).
        files: ``files[split]`` is a list of ``(path, class_id)`` for every usable photo.
        problems: fatal problems (no ``train/``, class folders that differ, empty classes).
        not_images: files skipped because their name is not a photo's
            (:func:`landmarklib.images.is_image_file`).
        unreadable: ``(path, reason)`` for photos skipped because they do not decode.
        duplicates: ``(train_path, test_path)`` pairs of byte-identical files.
    """

    root: Path
    classes: list[str] = field(default_factory=list)
    files: dict[str, list[tuple[Path, int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    not_images: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)

    def counts(self, split: str) -> dict[str, int]:
        """Number of usable photos per class folder in ``split``."""
        counter = Counter(label for _, label in self.files.get(split, []))
        return {name: counter[i] for i, name in enumerate(self.classes)}

    def __str__(self) -> str:
        lines = [f"Dataset at {self.root}: {len(self.classes)} classes"]
        for split in self.files:
            counts = self.counts(split).values()
            lines.append(f"  {split}: {sum(counts)} photos, {min(counts, default=0)}-"
                         f"{max(counts, default=0)} per class")
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        lines += [f"  skipped (not a photo): {path}" for path in self.not_images]
        lines += [f"  skipped (does not decode): {path}: {why}" for path, why in self.unreadable]
        lines += [f"  duplicate in train and test: {a} == {b}" for a, b in self.duplicates]
        return "\n".join(lines)


def check_layout(root: str | os.PathLike, warn: bool = True,
                 progress: bool = False) -> LayoutReport:
    """Check that a folder is laid out like ``landmark_images`` and list its usable photos.

    Works for any number of classes, unicode folder names and mixed photo formats. Every
    photo is decoded (see the module's documentation); one that does not decode is listed in
    ``report.unreadable`` with the reason and left out of ``report.files``. Skipped files and
    train/test duplicates are also reported with :func:`warnings.warn` (``warn=False``: only
    in the report).

    Args:
        root: the folder holding ``train/`` and ``test/``.
        warn: also issue warnings for skipped files and duplicates.
        progress: show a progress bar while decoding photos not checked before.

    Returns:
        A :class:`LayoutReport`; ``report.problems`` is empty when the dataset is usable.

    Taught in notebooks/01_data_exploration.ipynb, 'Is the folder what we expect?'.
    """
    root = Path(root)
    report = LayoutReport(root=root)
    present = [s for s in SPLITS if (root / s).is_dir()]
    report.problems += [f"missing folder {root / s}" for s in SPLITS if s not in present]
    if not present:
        return report
    _find_classes(report, present)
    listed = {split: _list_files(report, split) for split in present}
    reasons = _decode_verdicts(root, [p for files in listed.values() for p, _ in files], progress)
    for split in present:
        report.files[split] = [(p, label) for p, label in listed[split] if reasons[p] is None]
        report.unreadable += [(p, reasons[p]) for p, _ in listed[split] if reasons[p]]
        empty = [n for n, c in report.counts(split).items() if c == 0]
        if empty:
            report.problems.append(f"{split}/ has classes with no usable photo: {empty}")
    if len(present) == 2:
        report.duplicates = _byte_identical(report.files["train"], report.files["test"])
    if warn:
        _warn_about_skipped(report)
    return report


def dataset_of_model(root: str | os.PathLike, classes: Sequence[str],
                     progress: bool = False) -> LayoutReport:
    """:func:`check_layout` of the dataset a model was trained on, refused if it is not.

    Args:
        root: the folder holding ``train/`` and ``test/``.
        classes: the class folders the model was trained on, in class-id order.
        progress: show a progress bar while the photos are checked.

    Raises:
        ValueError: the dataset has problems, or other classes than ``classes``.
    """
    report = check_layout(root, warn=False, progress=progress)
    if report.problems:
        raise ValueError(f"The dataset in {report.root} cannot be used:\n{report}")
    if report.classes != list(classes):
        raise ValueError(f"the dataset in {report.root} is not the one the model was trained "
                         f"on: it has {len(report.classes)} classes, the model knows "
                         f"{len(classes)} different ones")
    return report


def class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the class folders in ``train/`` or ``test/``, leaving out hidden ones
    (``.ipynb_checkpoints``, made by Jupyter) and ``__MACOSX`` (made by macOS zips)."""
    return sorted(p.name for p in split_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


def class_names(root_or_classes: str | os.PathLike | Sequence[str]) -> list[str]:
    """Display names of the classes, in class-id order.

    ``09.Golden_Gate_Bridge`` becomes ``Golden Gate Bridge`` (see
    :func:`landmarklib.places.display_name`). Accepts a dataset folder (its ``train/`` class
    folders, sorted) or a list of folder names.
    """
    if isinstance(root_or_classes, (str, os.PathLike)):
        folders = class_folders(Path(root_or_classes) / "train")
    else:
        folders = list(root_or_classes)
    return [display_name(folder) for folder in folders]


def image_sizes(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Width and height of each photo, in pixels, read from file headers (fast).

    Returns:
        int64 array of shape ``(N, 2)``: columns width, height (before EXIF rotation).

    Taught in notebooks/01_data_exploration.ipynb, 'How big are the photos?'.
    """
    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    return np.asarray(sizes, dtype=np.int64).reshape(-1, 2)


# ------------------------------------------------------------------------------ the steps


def _find_classes(report: LayoutReport, present: list[str]) -> None:
    folders = {s: class_folders(report.root / s) for s in present}
    report.classes = folders[present[0]]
    if len(present) == 2 and folders["train"] != folders["test"]:
        only_train = sorted(set(folders["train"]) - set(folders["test"]))
        only_test = sorted(set(folders["test"]) - set(folders["train"]))
        report.problems.append(
            f"class folders differ between train/ and test/: only in train {only_train}, "
            f"only in test {only_test}")
        report.classes = sorted(set(folders["train"]) | set(folders["test"]))


def _list_files(report: LayoutReport, split: str) -> list[tuple[Path, int]]:
    """``(path, class_id)`` of every photo file in ``split``; other files go to not_images."""
    found = []
    for label, name in enumerate(report.classes):
        folder = report.root / split / name
        paths = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        for path in paths:
            if path.name.startswith("."):
                continue
            if is_image_file(path):
                found.append((path, label))
            else:
                report.not_images.append(path)
    return found


def _decode_verdicts(root: Path, paths: list[Path], progress: bool) -> dict[Path, str | None]:
    """``{path: reason it does not decode, or None}``, decoding only photos not seen before."""
    cache_file = cache_dir() / "checked" / f"{_digest(str(root.resolve()))}.json"
    try:
        old = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    stamps = {path: _stamp(path) for path in paths}
    verdicts = {p: old[str(p)][1] for p, s in stamps.items()
                if s is not None and old.get(str(p), [None])[0] == s}
    todo = [p for p in paths if p not in verdicts]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL frees the GIL
        decoded = pool.map(_why_unreadable, todo)
        for path, reason in tqdm(zip(todo, decoded), total=len(todo), desc="Checking photos",
                                 disable=not progress or not todo):
            verdicts[path] = reason
    if todo:
        write_json(cache_file, {str(p): [stamps[p], verdicts[p]] for p in paths}, indent=None)
    return verdicts


def _stamp(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _why_unreadable(path: Path) -> str | None:
    """Why the photo cannot be used, or None: decoded as training decodes it."""
    try:
        open_image(path, short_side=_CHECK_SHORT_SIDE)
    except ImageError as error:
        return error.reason
    except Exception as error:  # noqa: BLE001 - a decoder bug must not stop the check
        return f"cannot be decoded ({type(error).__name__}: {error})"
    return None


def _byte_identical(train: list[tuple[Path, int]], test: list[tuple[Path, int]]):
    """Pairs (train_path, test_path) with the same bytes. Hashes only files of equal size."""
    by_size: dict[int, list[Path]] = {}
    for path, _ in train:
        by_size.setdefault(path.stat().st_size, []).append(path)
    pairs = []
    for test_path, _ in test:
        candidates = by_size.get(test_path.stat().st_size, [])
        if candidates:
            digest = _digest(test_path.read_bytes())
            pairs += [(p, test_path) for p in candidates if _digest(p.read_bytes()) == digest]
    return pairs


def _digest(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:20]


def _warn_about_skipped(report: LayoutReport) -> None:
    if report.not_images:
        warnings.warn(f"Skipped {len(report.not_images)} files that are not photos: "
                      + ", ".join(str(p) for p in report.not_images[:10]), stacklevel=3)
    if report.unreadable:
        warnings.warn(f"Skipped {len(report.unreadable)} photos that do not decode: "
                      + ", ".join(f"{p} ({r})" for p, r in report.unreadable[:10]),
                      stacklevel=3)
    if report.duplicates:
        warnings.warn(
            f"{len(report.duplicates)} test photos are byte-identical to training photos "
            f"(a leak, e.g. {report.duplicates[0][1]} == {report.duplicates[0][0]})",
            stacklevel=3)
