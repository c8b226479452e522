"""The training/validation split of ``train/`` and the training split's statistics.

:func:`stratified_split` takes the same share of every class for validation, identically on
every machine; :func:`channel_stats` measures the per-channel mean and standard deviation of
the training split only (never validation or test: that would leak their statistics into
training).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from landmarklib.cache import cache_dir
from landmarklib.files import write_json
from landmarklib.images import open_image
from landmarklib.preprocessing import center_crop

__all__ = ["stratified_split", "split_samples", "channel_stats", "fingerprint"]


def stratified_split(
    keys: Sequence[str], targets: Sequence[int], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split samples into training and validation, the same fraction from every class.

    Each sample is ranked within its class by ``sha256(f"{seed}:{key}")``, and the first
    ``round(n * val_fraction)`` of each class go to validation. Hashing, rather than a random
    generator, makes the split identical on any machine and library version, and independent
    of the order the files were listed in. On the real dataset (4,996 photos, 50 classes of
    99 or 100) it gives 3,996 training and 1,000 validation photos; on landmarks44 3,520 / 880.

    Args:
        keys: a stable name per sample, e.g. the path relative to the dataset folder.
        targets: class id per sample.
        val_fraction: share of each class for validation, in [0, 1).
        seed: another seed gives another split.

    Returns:
        ``(train_indices, val_indices)``, each sorted ascending.

    Raises:
        ValueError: lengths differ or ``val_fraction`` is outside [0, 1).

    Taught in notebooks/01_data_exploration.ipynb, 'Training, validation and test'.
    """
    if len(keys) != len(targets):
        raise ValueError(f"{len(keys)} keys but {len(targets)} targets")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_class: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        by_class.setdefault(int(target), []).append(index)
    val: list[int] = []
    for indices in by_class.values():
        ranked = sorted(indices,
                        key=lambda i: hashlib.sha256(f"{seed}:{keys[i]}".encode()).digest())
        val += ranked[: round(len(indices) * val_fraction)]
    val_set = set(val)
    return [i for i in range(len(keys)) if i not in val_set], sorted(val)


def split_samples(
    samples: Sequence[tuple[Path, int]], root: str | os.PathLike, val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """The training and validation photos of ``train/``: :func:`stratified_split` keyed by
    each path relative to ``root``, as :func:`landmarklib.data.make_loaders` splits them (so
    that whoever needs the validation split of a trained model, e.g.
    :func:`landmarklib.embeddings.fit_calibration`, gets the same photos).

    Args:
        samples: ``(path, class_id)`` pairs, e.g. ``check_layout(root).files["train"]``.
        root: the dataset folder.
        val_fraction, seed: see :func:`stratified_split`.

    Returns:
        ``(training samples, validation samples)``.
    """
    keys = [str(Path(p).relative_to(root)) for p, _ in samples]
    train_idx, val_idx = stratified_split(keys, [t for _, t in samples], val_fraction, seed)
    return [samples[i] for i in train_idx], [samples[i] for i in val_idx]


def channel_stats(
    samples: Sequence[tuple[Path, int]],
    size: int,
    cache: bool = True,
    progress: bool = True,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation of RGB values in [0, 1].

    Computed over exactly the photos given (pass the training split only), each resized and
    center-cropped to ``size`` x ``size`` as for evaluation
    (:func:`landmarklib.preprocessing.center_crop`), in one streaming pass accumulating float64
    sums of x and x^2. The result is cached in ``<cache_dir()>/stats/`` under a
    :func:`fingerprint` of the file list and ``size``.

    Args:
        samples: ``(path, class_id)`` pairs of the training split.
        size: the training resolution, in pixels.
        cache: read and write the on-disk cache.
        progress: show a progress bar.

    Returns:
        ``(mean, std)``, each a tuple of 3 floats (R, G, B).

    Raises:
        landmarklib.images.ImageError: a photo does not decode (names it); photos from
            :func:`landmarklib.data.check_layout` all do.

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    cache_file = cache_dir() / "stats" / f"{fingerprint([p for p, _ in samples], f'{size}')}.json"
    if cache and cache_file.is_file():
        stats = json.loads(cache_file.read_text())
        return tuple(stats["mean"]), tuple(stats["std"])
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    for path, _ in tqdm(samples, desc="Mean and std", disable=not progress):
        crop = center_crop(open_image(path, short_side=size), size)
        pixels = np.asarray(crop, dtype=np.float64).reshape(-1, 3) / 255.0
        total += pixels.sum(0)
        total_sq += (pixels**2).sum(0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    result = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if cache:
        write_json(cache_file, {"mean": result[0], "std": result[1], "size": size,
                                "photos": len(samples)})
    return result


def fingerprint(paths: Sequence[str | os.PathLike], extra: str = "") -> str:
    """A short hash of a list of files (names, sizes, modification times) and ``extra``: the
    key of anything computed from those files and cached."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(str(p) for p in paths):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]
