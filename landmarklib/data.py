"""Where the photos are, and how they become batches of tensors.

Read top to bottom, this module follows the photos:

1. **Where** (:func:`data_root`): an explicit path, else tiny mode, else ``$LANDMARK_DATA``,
   else the default cache folder; :func:`download_landmarks` fetches the real zip there.
2. **Check** (:func:`check_layout`): ``train/`` and ``test/`` with the same class folders;
   files that are not photos, broken photos and train/test duplicates are reported, not fatal.
3. **Split** (:func:`stratified_split`): 80/20 of ``train/`` into training and validation,
   the same in every class and on every machine.
4. **Statistics** (:func:`channel_stats`): per-channel mean and std over the training split only.
5. **Transforms** (:func:`train_transform`, :func:`eval_transform`) and **loaders**
   (:func:`make_loaders`).

Decoding 800-pixel JPEGs is the slowest part of a CPU epoch; :func:`resized_copy` writes
smaller copies once, laid out exactly like the original, so everything above works on either.

Environment variables: ``LANDMARK_DATA`` (the dataset folder), ``LANDMARKLIB_TINY=1`` (use the
tiny subset shipped in the package; see ``landmarklib/tiny/PROVENANCE.md``) and
``LANDMARKLIB_CACHE`` (where downloads, resized copies and statistics are kept).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from landmarklib.cache import CACHE_ENV, cache_dir  # noqa: F401 - part of this module's API
from landmarklib.images import ImageError, is_image_file, open_image
from landmarklib.places import display_name

#: The Udacity "landmark_images" zip: 50 classes, 4,996 train and 1,250 test photos.
DATASET_URL = "https://udacity-dlnfd.s3-us-west-1.amazonaws.com/datasets/landmark_images.zip"
DATA_ENV = "LANDMARK_DATA"
TINY_ENV = "LANDMARKLIB_TINY"
SPLITS = ("train", "test")


# --------------------------------------------------------------------------- where the data is


def tiny_mode() -> bool:
    """True when ``$LANDMARKLIB_TINY`` is set to something other than ``""``, ``0`` or ``false``.

    Notebooks read this to run on the tiny subset with fewer epochs (used by CI).
    """
    return os.environ.get(TINY_ENV, "").strip().lower() not in ("", "0", "false", "no")


def tiny_data_root() -> Path:
    """The tiny real subset shipped inside the package (7 classes, 10 train + 3 test each)."""
    return Path(__file__).resolve().parent / "tiny"


def data_root(path: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """Resolve the dataset folder (the one holding ``train/`` and ``test/``).

    Order: ``path`` if given; else the tiny subset in tiny mode; else ``$LANDMARK_DATA``;
    else ``<cache_dir()>/landmark_images``.

    Args:
        path: an explicit dataset folder.
        download: fetch the real dataset (about 1 GB unpacked) into the default folder when it
            is not there yet.

    Raises:
        FileNotFoundError: the folder does not exist (the message says how to get the data).

    Taught in notebooks/01_data_exploration.ipynb, 'Where the photos are'.
    """
    if path is not None:
        root = Path(path).expanduser()
    elif tiny_mode():
        root = tiny_data_root()
    elif os.environ.get(DATA_ENV):
        root = Path(os.environ[DATA_ENV]).expanduser()
    else:
        root = cache_dir() / "landmark_images"
        if not root.is_dir() and download:
            return download_landmarks()
    if not root.is_dir():
        raise FileNotFoundError(
            f"No dataset folder at {root}. Download it with "
            "landmarklib.data.download_landmarks() (or `landmarklib download`), point "
            f"${DATA_ENV} at a copy laid out as train/NN.Name/*.jpg and test/NN.Name/*.jpg, "
            f"or set {TINY_ENV}=1 to use the tiny subset shipped with the package."
        )
    return root


def download_landmarks(
    dest: str | os.PathLike | None = None,
    url: str | None = None,
    known_hash: str | None = None,
    progressbar: bool = True,
) -> Path:
    """Download and unzip the landmark dataset, then check its layout.

    The download is done by `pooch <https://www.fatiando.org/pooch>`_: it streams to a temporary
    file and renames it only once complete, so an interrupted download is never taken for a
    whole one, and the next call starts again. The zip is unpacked into a temporary folder that
    is renamed when complete, for the same reason.

    Args:
        dest: folder to download into (default :func:`cache_dir`). The photos end up in
            ``<dest>/landmark_images/``.
        url: where the zip is (default :data:`DATASET_URL`, read when called).
        known_hash: ``"sha256:..."`` or ``"md5:..."`` of the zip, checked by pooch; ``None``
            skips the check.
        progressbar: show a tqdm progress bar.

    Returns:
        The dataset folder (holding ``train/`` and ``test/``).

    Raises:
        requests.HTTPError, OSError: the download failed (nothing is left behind).
        ValueError: the zip holds no ``train/`` and ``test/`` folders, or the hash differs.
    """
    import pooch

    dest = Path(dest).expanduser() if dest is not None else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest / "landmark_images"
    zip_path = pooch.retrieve(
        url or DATASET_URL, known_hash=known_hash, fname="landmark_images.zip", path=dest, progressbar=progressbar
    )
    if not root.is_dir():
        _unzip_atomically(Path(zip_path), root)
    report = check_layout(root)
    if report.problems:
        raise ValueError(f"The downloaded dataset in {root} is not usable:\n{report}")
    return root


def _unzip_atomically(zip_path: Path, root: Path) -> None:
    """Unpack ``zip_path`` so that ``root`` holds ``train/`` and ``test/``, or does not exist."""
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".unzip-") as tmp:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        found = [p.parent for p in Path(tmp).rglob("train") if (p.parent / "test").is_dir()]
        if not found:
            raise ValueError(f"{zip_path}: the zip holds no train/ and test/ folders")
        os.replace(min(found, key=lambda p: len(p.parts)), root)


# ------------------------------------------------------------------------------ layout check


@dataclass
class LayoutReport:
    """What :func:`check_layout` found in a dataset folder.

    Attributes:
        root: the dataset folder.
        classes: class folder names (sorted; class id = position in this list).
        files: ``files[split]`` is a list of ``(path, class_id)`` for every usable photo.
        problems: fatal problems (no ``train/``, class folders that differ, empty classes).
        not_images: files skipped because their extension is not a photo's.
        unreadable: ``(path, reason)`` for photos skipped because they cannot be decoded.
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
            lines.append(
                f"  {split}: {sum(counts)} photos, {min(counts, default=0)}-"
                f"{max(counts, default=0)} per class"
            )
        for problem in self.problems:
            lines.append(f"  PROBLEM: {problem}")
        for path in self.not_images:
            lines.append(f"  skipped (not a photo): {path}")
        for path, reason in self.unreadable:
            lines.append(f"  skipped (unreadable): {path}: {reason}")
        for train_path, test_path in self.duplicates:
            lines.append(f"  duplicate in train and test: {train_path} == {test_path}")
        return "\n".join(lines)


def check_layout(root: str | os.PathLike, decode: bool = False, warn: bool = True) -> LayoutReport:
    """Check that a folder is laid out like ``landmark_images`` and list its photos.

    Works for any number of classes, unicode folder names and mixed extensions. A photo is
    unreadable if PIL cannot read its header, or if a JPEG or PNG lacks its end marker (a
    truncated download); with ``decode=True`` every photo is fully decoded as well (slower).
    Skipped files and train/test duplicates are also reported with :func:`warnings.warn`
    (``warn=False``: only in the report).

    Args:
        root: the folder holding ``train/`` and ``test/``.
        decode: fully decode every photo (about 10 ms per 800-pixel JPEG).
        warn: also issue warnings for skipped files and duplicates.

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
    folders = {s: class_folders(root / s) for s in present}
    report.classes = folders[present[0]]
    if len(present) == 2 and folders["train"] != folders["test"]:
        only_train = sorted(set(folders["train"]) - set(folders["test"]))
        only_test = sorted(set(folders["test"]) - set(folders["train"]))
        report.problems.append(
            f"class folders differ between train/ and test/: only in train {only_train}, "
            f"only in test {only_test}"
        )
        report.classes = sorted(set(folders["train"]) | set(folders["test"]))
    for split in present:
        report.files[split] = []
        for label, name in enumerate(report.classes):
            folder = root / split / name
            paths = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            for path in paths:
                if path.name.startswith("."):
                    continue
                if not is_image_file(path):
                    report.not_images.append(path)
                    continue
                reason = _why_unreadable(path, decode)
                if reason:
                    report.unreadable.append((path, reason))
                else:
                    report.files[split].append((path, label))
        empty = [n for n, c in report.counts(split).items() if c == 0]
        if empty:
            report.problems.append(f"{split}/ has classes with no usable photo: {empty}")
    if len(present) == 2:
        report.duplicates = _byte_identical(report.files["train"], report.files["test"])
    if warn:
        _warn_about_skipped(report)
    return report


def class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the class folders in ``train/`` or ``test/``, leaving out hidden ones
    (``.ipynb_checkpoints``, made by Jupyter) and ``__MACOSX`` (made by macOS zips)."""
    return sorted(p.name for p in split_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


def _why_unreadable(path: Path, decode: bool) -> str | None:
    """A reason the photo cannot be used, or None. Reads the header and end of the file."""
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    if decode:
        try:
            open_image(path)
        except ImageError as error:
            return error.reason
        return None
    try:
        with Image.open(path) as image:
            kind = image.format
    except Exception:  # noqa: BLE001 - PIL raises many kinds; all mean "not readable"
        return "not an image file PIL can read"
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        tail = f.read()
    if kind == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "PNG" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
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
            digest = _md5(test_path)
            pairs += [(p, test_path) for p in candidates if _md5(p) == digest]
    return pairs


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _warn_about_skipped(report: LayoutReport) -> None:
    if report.not_images:
        warnings.warn(
            f"Skipped {len(report.not_images)} files that are not photos: "
            + ", ".join(str(p) for p in report.not_images[:10]),
            stacklevel=3,
        )
    if report.unreadable:
        warnings.warn(
            f"Skipped {len(report.unreadable)} unreadable photos: "
            + ", ".join(f"{p} ({r})" for p, r in report.unreadable[:10]),
            stacklevel=3,
        )
    if report.duplicates:
        warnings.warn(
            f"{len(report.duplicates)} test photos are byte-identical to training photos "
            f"(a leak, e.g. {report.duplicates[0][1]} == {report.duplicates[0][0]})",
            stacklevel=3,
        )


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


# ------------------------------------------------------------------------------------ split


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
        ranked = sorted(indices, key=lambda i: hashlib.sha256(f"{seed}:{keys[i]}".encode()).digest())
        val += ranked[: round(len(indices) * val_fraction)]
    val_set = set(val)
    return [i for i in range(len(keys)) if i not in val_set], sorted(val)


# --------------------------------------------------------------------------------- datasets


class PhotoDataset(Dataset):
    """Photos listed as ``(path, class_id)``, opened with :func:`landmarklib.images.open_image`.

    ``dataset[i]`` is ``(transform(image), class_id)``; without a transform the image is an
    RGB ``PIL.Image``. ``short_side`` is passed to :func:`~landmarklib.images.open_image` (large
    JPEGs decoded at reduced scale, as inference does). A photo that fails to open (changed on disk since it was listed) raises
    :class:`~landmarklib.images.ImageError` naming the file.

    Attributes:
        samples: list of ``(path, class_id)``.
        targets: list of class ids, one per sample.
        classes: class folder names in class-id order.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        classes: Sequence[str],
        transform: Callable | None = None,
        short_side: int | None = None,
    ):
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.classes = list(classes)
        self.transform = transform
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = open_image(path, short_side=self.short_side)
        return (self.transform(image) if self.transform else image), label


class DecodedPhotos(Dataset):
    """The same photos decoded once and kept in memory as uint8 tensors.

    Decoding a JPEG costs more than a small CNN's forward pass on a CPU; decoding each photo
    once (with ``short_side`` resizing) removes that cost from every epoch. Memory:
    ``3 * short_side * long_side`` bytes per photo (about 50 KB at ``short_side=128``).

    ``dataset[i]`` is ``(transform(image), class_id)`` with ``image`` a ``(3, H, W)`` uint8
    tensor (torchvision's v2 transforms accept it as they accept a PIL image).
    """

    def __init__(self, photos: PhotoDataset, short_side: int, transform: Callable | None = None,
                 progress: bool = True):
        self.classes = photos.classes
        self.samples = photos.samples
        self.targets = photos.targets
        self.transform = transform
        resize = v2.Compose([v2.ToImage(), v2.Resize(short_side, antialias=True)])

        def decode(sample):
            return resize(open_image(sample[0], short_side)).as_subclass(torch.Tensor)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            self.images = list(
                tqdm(pool.map(decode, self.samples), total=len(self.samples),
                     desc=f"Decoding {len(self.samples)} photos", disable=not progress)
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return (self.transform(image) if self.transform else image), self.targets[index]


class Transformed(Dataset):
    """A view of a dataset with its own transform: the training and validation subsets of one
    in-memory dataset share its decoded photos but not their augmentation."""

    def __init__(self, dataset: Dataset, transform: Callable):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return self.transform(image), label


# ------------------------------------------------------------------------------ statistics


def channel_stats(
    samples: Sequence[tuple[Path, int]],
    size: int,
    cache: bool = True,
    progress: bool = True,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation of RGB values in [0, 1].

    Computed over exactly the photos given (pass the training split only, never validation
    or test: that would leak their statistics into training), each resized and center-cropped
    to ``size`` x ``size`` as in training, in one streaming pass accumulating float64 sums of
    x and x^2. The result is cached in ``<cache_dir()>/stats/`` under a fingerprint of the
    file list (paths, sizes, modification times) and ``size``.

    Args:
        samples: ``(path, class_id)`` pairs of the training split.
        size: the training resolution, in pixels.
        cache: read and write the on-disk cache.
        progress: show a progress bar.

    Returns:
        ``(mean, std)``, each a tuple of 3 floats (R, G, B).

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    fingerprint = _fingerprint([p for p, _ in samples], extra=f"size={size}")
    cache_file = cache_dir() / "stats" / f"{fingerprint}.json"
    if cache and cache_file.is_file():
        stats = json.loads(cache_file.read_text())
        return tuple(stats["mean"]), tuple(stats["std"])
    to_tensor = eval_transform(size, mean=None, std=None)
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for path, _ in tqdm(samples, desc="Mean and std", disable=not progress):
        pixels = to_tensor(open_image(path)).double().flatten(1)  # (3, size*size)
        total += pixels.sum(1).numpy()
        total_sq += (pixels**2).sum(1).numpy()
        count += pixels.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    result = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if cache:
        _write_json_atomically(cache_file, {"mean": result[0], "std": result[1], "size": size,
                                            "photos": len(samples)})
    return result


def _fingerprint(paths: Sequence[Path], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(str(p) for p in paths):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ transforms


def train_transform(size: int, mean, std, scale: tuple[float, float] = (0.35, 1.0)) -> v2.Compose:
    """Augmentation for training: random crop and zoom, horizontal flip, colour jitter.

    Suits landmark photos: a landmark may fill the frame or stand small in it (random resized
    crop, keeping 35-100% of the area), a mirrored bridge is still the same bridge (flip), and
    photos are taken at any time of day (brightness, contrast, saturation jitter). No vertical
    flips or large rotations: landmarks are photographed upright.

    Args:
        size: output height and width, in pixels.
        mean, std: per-channel normalisation (3 floats each); ``None`` skips normalising.
        scale: range of the crop's area as a share of the photo's.

    Returns:
        A transform mapping an RGB PIL image or a ``(3, H, W)`` uint8 tensor to a
        ``(3, size, size)`` float32 tensor.

    Taught in notebooks/01_data_exploration.ipynb, 'What the network sees'.
    """
    steps = [
        v2.ToImage(),
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if mean is not None:
        steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)


def eval_transform(size: int, mean, std, resize_ratio: float = 1.0) -> v2.Compose:
    """Deterministic transform for validation, test and inference: resize, center crop.

    Args:
        size: output height and width, in pixels.
        mean, std: per-channel normalisation (3 floats each); ``None`` skips normalising.
        resize_ratio: the short side is first resized to ``round(size * resize_ratio)``
            (1.0 keeps the whole short side; ImageNet models are usually evaluated at 256/224).

    Returns:
        A transform mapping an RGB PIL image or a ``(3, H, W)`` uint8 tensor to a
        ``(3, size, size)`` float32 tensor.

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    steps = [
        v2.ToImage(),
        v2.Resize(round(size * resize_ratio), antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if mean is not None:
        steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)


def denormalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo :class:`~torchvision.transforms.v2.Normalize` on ``(..., 3, H, W)`` float tensors,
    for showing a batch as pictures. Values are clamped to [0, 1]."""
    mean = torch.as_tensor(mean, dtype=images.dtype).view(3, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


# --------------------------------------------------------------------------------- loaders


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
    report: LayoutReport

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

    The validation split is taken from ``train/`` by :func:`stratified_split`; ``test/`` is
    only loaded, for the final evaluation. Mean and std come from the training split
    (:func:`channel_stats`) unless given (a pre-trained backbone brings its own).

    Args:
        root: dataset folder (default :func:`data_root`).
        size: training resolution, in pixels (images are ``size`` x ``size``).
        batch_size: photos per batch.
        val_fraction, seed: see :func:`stratified_split`.
        mean, std: normalisation; computed from the training split when ``None``.
        in_memory: decode every photo once into memory (:class:`DecodedPhotos`, at short side
            ``size * 8 // 7``); ``False`` decodes from disk every epoch (less memory).
        num_workers: DataLoader worker processes (default :func:`default_num_workers`, or 0
            in memory, where there is nothing left to parallelise).
        augment: use :func:`train_transform` for training; ``False`` uses the eval transform
            (for feature extraction).
        progress: show progress bars.

    Returns:
        A :class:`Loaders`. Batches are ``(images, labels)``: float32 ``(B, 3, size, size)``
        and int64 ``(B,)``.

    Raises:
        FileNotFoundError: see :func:`data_root`.
        ValueError: the layout check found fatal problems (the message lists them).

    Taught in notebooks/01_data_exploration.ipynb, 'What the network sees'.
    """
    root = data_root(root)
    report = check_layout(root)
    if report.problems:
        raise ValueError(f"The dataset in {root} cannot be used:\n{report}")
    train_files = report.files["train"]
    keys = [str(p.relative_to(root)) for p, _ in train_files]
    train_idx, val_idx = stratified_split(keys, [t for _, t in train_files], val_fraction, seed)
    if mean is None or std is None:
        mean, std = channel_stats([train_files[i] for i in train_idx], size, progress=progress)

    fit_tf = train_transform(size, mean, std) if augment else eval_transform(size, mean, std)
    eval_tf = eval_transform(size, mean, std)
    train_photos = PhotoDataset(train_files, report.classes, short_side=size)
    test_photos = PhotoDataset(report.files["test"], report.classes, short_side=size)
    if in_memory:
        short_side = size * 8 // 7
        train_photos = DecodedPhotos(train_photos, short_side, progress=progress)
        test_photos = DecodedPhotos(test_photos, short_side, progress=progress)
        num_workers = 0 if num_workers is None else num_workers
    elif num_workers is None:
        num_workers = default_num_workers()

    def loader(dataset, transform, shuffle):
        return DataLoader(
            Transformed(dataset, transform),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(seed) if shuffle else None,
        )

    return Loaders(
        train=loader(Subset(train_photos, train_idx), fit_tf, shuffle=True),
        valid=loader(Subset(train_photos, val_idx), eval_tf, shuffle=False),
        test=loader(test_photos, eval_tf, shuffle=False),
        classes=report.classes,
        mean=tuple(mean),
        std=tuple(std),
        size=size,
        report=report,
    )


# --------------------------------------------------------------------- resized-image cache


def resized_copy(
    root: str | os.PathLike,
    short_side: int = 256,
    dest: str | os.PathLike | None = None,
    quality: int = 90,
    progress: bool = True,
) -> Path:
    """Write copies of every photo resized to ``short_side`` pixels, laid out like the original.

    The copy is a dataset folder like any other (``train/NN.Name/*.jpg``, ``test/...``), so
    every function here works on it unchanged. Built once (with a progress bar, two threads);
    a later call rewrites only the photos whose source changed (size or modification time)
    and removes copies whose source is gone. Photos whose short side is already at most
    ``short_side`` are copied as they are. Unreadable photos are skipped with a warning.

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
    report = check_layout(root)
    manifest: dict[str, dict] = {}
    todo = []
    for split in report.files:
        for path, _ in report.files[split]:
            rel = str(path.relative_to(root))
            stat = path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{short_side}:{quality}"
            if rel in old and old[rel]["stamp"] == stamp and (dest / old[rel]["copy"]).is_file():
                manifest[rel] = old[rel]
            else:
                todo.append((rel, path, stamp))

    def write(job):
        rel, path, stamp = job
        try:
            with Image.open(path) as header:
                small = min(header.size) <= short_side
            if small:  # nothing to gain by re-encoding: copy the file as it is
                target = dest / rel
                image = None
            else:
                target = dest / Path(rel).with_suffix(".jpg")
                image = open_image(path, short_side=short_side)
        except (ImageError, OSError) as error:
            return rel, None, str(error)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        if image is None:
            shutil.copyfile(path, tmp)
        else:
            scale = short_side / min(image.size)
            new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=2.0)
            image.save(tmp, "JPEG", quality=quality)
        os.replace(tmp, target)
        return rel, {"stamp": stamp, "copy": str(target.relative_to(dest))}, None

    errors = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = pool.map(write, todo)
        for rel, entry, error in tqdm(jobs, total=len(todo), desc=f"Resizing to {short_side} px",
                                      disable=not progress or not todo):
            if error:
                errors.append(error)
            else:
                manifest[rel] = entry
    if errors:
        warnings.warn(f"Skipped {len(errors)} unreadable photos: " + "; ".join(errors[:10]))
    wanted = {dest / entry["copy"] for entry in manifest.values()}
    for split in SPLITS:
        for stale in (dest / split).rglob("*") if (dest / split).is_dir() else []:
            if stale.is_file() and stale not in wanted:
                stale.unlink()
        for name in report.classes:  # keep class folders aligned even if one is emptied
            (dest / split / name).mkdir(parents=True, exist_ok=True)
    _write_json_atomically(manifest_path, manifest)
    return dest


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
