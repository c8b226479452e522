"""Datasets and data loaders: photos on disk (or decoded once into memory) become batches.

* :class:`PhotoDataset`: photos listed as ``(path, class_id)``, decoded when asked for.
* :class:`DecodedPhotos`: the same photos decoded once and kept in memory.
* :func:`make_loaders`: training, validation and test loaders for a dataset folder, in a
  :class:`Loaders`.

A photo that cannot be decoded when a batch is made (it changed on disk after the layout
check, or a disk failed) is skipped with a warning that names it; :func:`collate_photos`
leaves it out of its batch, so one bad file never stops an epoch.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from landmarklib.data.layout import LayoutReport, check_layout, class_names
from landmarklib.data.locate import data_root
from landmarklib.data.split import channel_stats, split_samples
from landmarklib.data.transforms import CenterCrop, Downsize, ToInput, train_transform
from landmarklib.images import ImageError, open_image

__all__ = ["PhotoDataset", "DecodedPhotos", "collate_photos", "Loaders", "make_loaders",
           "default_num_workers"]


class PhotoDataset(Dataset):
    """Photos listed as ``(path, class_id)``, opened with :func:`landmarklib.images.open_image`.

    ``dataset[i]`` is ``(transform(prepare(photo)), class_id)``, where ``prepare`` is a
    deterministic first step (for evaluation, the center crop), kept apart so that
    :class:`DecodedPhotos` can store its result. Without a transform the item is the RGB
    ``PIL.Image``. A photo that cannot be opened gives ``None`` and a warning naming the file
    (:func:`collate_photos` leaves it out).

    Args:
        samples: ``(path, class_id)`` pairs.
        classes: class folder names in class-id order.
        transform: applied to every item (e.g. augmentation, or normalisation).
        short_side: passed to :func:`~landmarklib.images.open_image` (large JPEGs decoded at
            reduced scale).
        prepare: a deterministic step before ``transform``.
    """

    def __init__(self, samples: Sequence[tuple[Path, int]], classes: Sequence[str],
                 transform: Callable | None = None, short_side: int | None = None,
                 prepare: Callable | None = None):
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.classes = list(classes)
        self.transform = transform
        self.short_side = short_side
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Image.Image:
        """Photo ``index``, decoded and prepared. Raises ImageError (naming the file)."""
        image = open_image(self.samples[index][0], short_side=self.short_side)
        return self.prepare(image) if self.prepare else image

    def __getitem__(self, index: int):
        try:
            image = self.load(index)
        except ImageError as error:
            warnings.warn(f"skipped a photo that does not decode: {error}", stacklevel=2)
            return None
        return (self.transform(image) if self.transform else image), self.targets[index]

    def with_transform(self, transform: Callable | None) -> PhotoDataset:
        """The same photos with another transform (e.g. a mirrored view)."""
        return PhotoDataset(self.samples, self.classes, transform, self.short_side, self.prepare)

    def key(self) -> str:
        """What the items depend on, as text: files (sizes, modification times) and steps."""
        lines = [f"{self.short_side!r} {self.prepare!r} {self.transform!r}"]
        for path, label in self.samples:
            stat = Path(path).stat()
            lines.append(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}")
        return "\n".join(lines)


class DecodedPhotos(PhotoDataset):
    """The photos of a :class:`PhotoDataset`, decoded and prepared once and kept in memory.

    Decoding a JPEG costs more than a small CNN's forward pass on a CPU; decoding each photo
    once removes that cost from every epoch. Photos that do not decode are left out, with one
    warning listing them. Memory: 3 bytes per pixel of each prepared photo (about 60 KB at a
    short side of 146 pixels).
    """

    def __init__(self, photos: PhotoDataset, progress: bool = True):
        super().__init__(photos.samples, photos.classes, photos.transform, photos.short_side,
                         photos.prepare)

        def decode(index):
            try:
                return photos.load(index)
            except ImageError as error:
                return error

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL frees the GIL
            decoded = list(tqdm(pool.map(decode, range(len(photos))), total=len(photos),
                                desc=f"Decoding {len(photos)} photos", disable=not progress))
        failed = [str(error) for error in decoded if isinstance(error, ImageError)]
        if failed:
            warnings.warn(f"skipped {len(failed)} photos that do not decode: "
                          + "; ".join(failed[:10]), stacklevel=2)
        kept = [i for i, image in enumerate(decoded) if not isinstance(image, ImageError)]
        self.samples = [photos.samples[i] for i in kept]
        self.targets = [label for _, label in self.samples]
        self.images = [decoded[i] for i in kept]

    def load(self, index: int) -> Image.Image:
        return self.images[index]

    def with_transform(self, transform: Callable | None) -> DecodedPhotos:
        view = object.__new__(DecodedPhotos)
        view.__dict__.update(self.__dict__, transform=transform)
        return view


def collate_photos(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`torch.utils.data.default_collate`, leaving out the photos that did not decode
    (``None`` items). A batch in which no photo decoded is empty: ``(empty, empty)``."""
    items = [item for item in items if item is not None]
    if not items:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return default_collate(items)


@dataclass
class Loaders:
    """The three data loaders of an experiment, and what they were made with."""

    train: DataLoader
    valid: DataLoader
    test: DataLoader
    classes: list[str]  # class folder names, in class-id order
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: int
    report: LayoutReport | None  # None for loaders over shards (see their manifest)

    @property
    def class_names(self) -> list[str]:
        """Display names, e.g. ``Golden Gate Bridge``, in class-id order."""
        return class_names(self.classes)


def default_num_workers() -> int:
    """Worker processes for a DataLoader: 0 on Windows and macOS (worker start-up is slow there
    and fragile in notebooks), otherwise one per spare CPU core, at most 4."""
    if sys.platform in ("win32", "darwin"):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def make_loaders(
    root: str | os.PathLike | None = None,
    size: int = 128,
    batch_size: int = 32,
    val_fraction: float = 0.2,
    seed: int = 0,
    mean=None,
    std=None,
    in_memory: bool = True,
    num_workers: int | None = None,
    augment: bool = True,
    progress: bool = True,
) -> Loaders:
    """Build training, validation and test loaders for a dataset folder.

    The photos are those :func:`~landmarklib.data.check_layout` found usable; validation is
    taken from ``train/`` by :func:`~landmarklib.data.stratified_split`, and ``test/`` is kept
    for the final evaluation. Validation and test photos get the one evaluation preprocessing
    (:mod:`landmarklib.preprocessing`), exactly as predictions do.

    Args:
        root: dataset folder (default :func:`~landmarklib.data.data_root`).
        size, batch_size: training resolution (``size`` x ``size`` pixels), photos per batch.
        val_fraction, seed: see :func:`~landmarklib.data.stratified_split`; ``seed`` also
            seeds the training loader's shuffling.
        mean, std: normalisation (default: the training split's, by
            :func:`~landmarklib.data.channel_stats`).
        in_memory: decode every photo once into memory (:class:`DecodedPhotos`: training
            photos at short side ``size * 8 // 7``, evaluation photos as their center crop).
        num_workers: worker processes (default :func:`default_num_workers`; 0 in memory).
        augment, progress: training photos get :func:`~landmarklib.data.train_transform`
            (``False``: the evaluation preprocessing, for feature extraction); progress bars.

    Returns:
        A :class:`Loaders` of batches ``(images, labels)``: float32 ``(B, 3, size, size)`` and
        int64 ``(B,)``.

    Raises:
        FileNotFoundError: no dataset folder. ValueError: it has fatal problems (listed).

    Taught in notebooks/01_data_exploration.ipynb, 'What the network sees'.
    """
    report = check_layout(data_root(root), progress=progress)
    if report.problems:
        raise ValueError(f"The dataset in {report.root} cannot be used:\n{report}")
    train_files, val_files = split_samples(report.files["train"], report.root, val_fraction, seed)
    if mean is None or std is None:
        mean, std = channel_stats(train_files, size, progress=progress)
    mean, std, augmentation = tuple(mean), tuple(std), train_transform(size, mean, std)
    splits = (train_files, augment), (val_files, False)
    sets = [_photos(samples, report.classes, size, mean, std, augmentation, in_memory, training)
            for samples, training in (*splits, (report.files["test"], False))]
    if in_memory:  # then there is no decoding left for worker processes to share
        sets = [DecodedPhotos(dataset, progress) for dataset in sets]
    workers = num_workers if num_workers is not None else 0 if in_memory else default_num_workers()
    train, valid, test = (_loader(dataset, batch_size, shuffle, workers, seed)
                          for dataset, shuffle in zip(sets, (True, False, False)))
    return Loaders(train, valid, test, report.classes, mean, std, size, report)


def _photos(samples, classes, size, mean, std, augmentation, in_memory, training):
    """Training photos with ``augmentation`` (shrunk first if kept in memory), or photos with
    the evaluation preprocessing."""
    if training:
        return PhotoDataset(samples, classes, augmentation, size,
                            Downsize(size * 8 // 7) if in_memory else None)
    return PhotoDataset(samples, classes, ToInput(mean, std), size, CenterCrop(size))


def _loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
                      collate_fn=collate_photos,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)
