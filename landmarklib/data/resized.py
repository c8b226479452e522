"""Smaller copies of a dataset's photos, written once, laid out exactly like the original.

Decoding 800-pixel JPEGs is the slowest part of a CPU epoch. :func:`resized_copy` writes copies
resized to the short side training needs; the copy is a dataset folder like any other, so
everything in :mod:`landmarklib.data` works on it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from landmarklib.cache import cache_dir
from landmarklib.data.layout import SPLITS, check_layout
from landmarklib.data.transforms import Downsize
from landmarklib.files import atomic_path, write_json
from landmarklib.images import ImageError, open_image

__all__ = ["resized_copy"]


def resized_copy(
    root: str | os.PathLike,
    short_side: int = 256,
    dest: str | os.PathLike | None = None,
    quality: int = 90,
    progress: bool = True,
) -> Path:
    """Write copies of every photo resized to ``short_side`` pixels, laid out like the original.

    Built once, on every core, with a progress bar; a later call rewrites only the photos whose
    source changed (size or modification time) and removes copies whose source is gone.
    Photos whose short side is already at most ``short_side`` are copied as they are. Photos
    that do not decode are skipped with a warning. Every copy is written atomically.

    Args:
        root: the original dataset folder.
        short_side: the short side of the copies, in pixels.
        dest: where to write (default ``<cache_dir()>/resized/<name>-<hash>-<short_side>``).
        quality: JPEG quality of the copies (1-95).
        progress: show a progress bar.

    Returns:
        The folder of resized copies.
    """
    root = Path(root).resolve()
    if dest is None:
        tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
        dest = cache_dir() / "resized" / f"{root.name}-{tag}-{short_side}"
    dest = Path(dest)
    manifest_path = dest / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    report = check_layout(root, warn=False, progress=progress)
    manifest, todo = {}, []
    for path, _ in report.files.get("train", []) + report.files.get("test", []):
        rel = str(path.relative_to(root))
        stat = path.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{short_side}:{quality}"
        if rel in old and old[rel]["stamp"] == stamp and (dest / old[rel]["copy"]).is_file():
            manifest[rel] = old[rel]
        else:
            todo.append((rel, path, stamp))
    errors = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda job: _write_copy(*job, dest, short_side, quality), todo)
        for rel, entry, error in tqdm(jobs, total=len(todo), desc=f"Resizing to {short_side} px",
                                      disable=not progress or not todo):
            if error:
                errors.append(error)
            else:
                manifest[rel] = entry
    if errors:
        warnings.warn(f"Skipped {len(errors)} photos that do not decode: "
                      + "; ".join(errors[:10]), stacklevel=2)
    _remove_stale(dest, manifest, report.classes)
    write_json(manifest_path, manifest)
    return dest


def _write_copy(rel: str, path: Path, stamp: str, dest: Path, short_side: int, quality: int):
    """Copy or resize one photo; returns ``(rel, manifest entry or None, error or None)``."""
    try:
        with Image.open(path) as header:
            small = min(header.size) <= short_side
        image = None if small else Downsize(short_side)(open_image(path, short_side=short_side))
    except (ImageError, OSError) as error:
        return rel, None, str(error)
    target = dest / rel if small else dest / Path(rel).with_suffix(".jpg")
    with atomic_path(target) as tmp:
        if image is None:  # nothing to gain by re-encoding: copy the file as it is
            shutil.copyfile(path, tmp)
        else:
            image.save(tmp, "JPEG", quality=quality)
    return rel, {"stamp": stamp, "copy": str(target.relative_to(dest))}, None


def _remove_stale(dest: Path, manifest: dict, classes: list[str]) -> None:
    """Delete copies whose source is gone; keep every class folder (even an emptied one)."""
    wanted = {dest / entry["copy"] for entry in manifest.values()}
    for split in SPLITS:
        for stale in (dest / split).rglob("*") if (dest / split).is_dir() else []:
            if stale.is_file() and stale not in wanted:
                stale.unlink()
        for name in classes:
            (dest / split / name).mkdir(parents=True, exist_ok=True)
