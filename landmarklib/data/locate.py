"""Where the dataset is: an explicit folder, the tiny subset, ``$LANDMARK_DATA``, or the cache
folder, where :func:`download_landmarks` puts the real dataset.

Environment variables: ``LANDMARK_DATA`` (the dataset folder), ``LANDMARKLIB_TINY=1`` (use the
tiny subset shipped in the package; see ``landmarklib/tiny/PROVENANCE.md``) and
``LANDMARKLIB_CACHE`` (see :mod:`landmarklib.cache`).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from landmarklib.cache import cache_dir

__all__ = ["DATASET_URL", "DATA_ENV", "TINY_ENV", "tiny_mode", "tiny_data_root", "data_root",
           "download_landmarks"]

#: The Udacity "landmark_images" zip: 50 classes, 4,996 train and 1,250 test photos.
DATASET_URL = "https://udacity-dlnfd.s3-us-west-1.amazonaws.com/datasets/landmark_images.zip"
DATA_ENV = "LANDMARK_DATA"
TINY_ENV = "LANDMARKLIB_TINY"


def tiny_mode() -> bool:
    """True when ``$LANDMARKLIB_TINY`` is set to something other than ``""``, ``0``, ``no`` or
    ``false``. Notebooks read this to run on the tiny subset with fewer epochs (used by CI)."""
    return os.environ.get(TINY_ENV, "").strip().lower() not in ("", "0", "false", "no")


def tiny_data_root() -> Path:
    """The tiny real subset shipped inside the package (7 classes, 10 train + 3 test each)."""
    return Path(__file__).resolve().parents[1] / "tiny"


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
        dest: folder to download into (default :func:`~landmarklib.cache.cache_dir`). The
            photos end up in ``<dest>/landmark_images/``.
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

    from landmarklib.data.layout import check_layout

    dest = Path(dest).expanduser() if dest is not None else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest / "landmark_images"
    zip_path = pooch.retrieve(url or DATASET_URL, known_hash=known_hash,
                              fname="landmark_images.zip", path=dest, progressbar=progressbar)
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
