"""Open one photo the same way everywhere: training, evaluation, inference and the apps.

Every photo, whatever its format, comes out as an upright 8-bit RGB :class:`PIL.Image.Image`:

* EXIF orientation is applied, so a phone photo taken sideways is classified upright;
* CMYK, grayscale (``L``), palette (``P``), 16-bit (``I;16``) and transparent (``RGBA``, ``LA``)
  images are converted to RGB (transparent areas become white);
* the whole file is decoded at once, so a truncated file is found here and not in the middle
  of a batch.

Anything wrong raises :class:`ImageError`, whose message names the file and the problem in
plain words, never a traceback from inside PIL.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Photo formats, by file extension (lower case), that landmarklib looks for in folders.
#: This is the one rule for which files are photos: the layout check, training, ``predict`` and
#: ``tag`` on a folder all use it (through :func:`is_image_file`). AVIF is included when this
#: Pillow can decode it (Pillow 11.3 and newer can).
IMAGE_EXTENSIONS = tuple(
    ext for ext in (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".webp", ".tif",
                    ".tiff", ".avif")
    if Image.registered_extensions().get(ext) in Image.OPEN
)

#: Largest image accepted, in pixels (width x height): a guard against decompression bombs,
#: small files that decode to gigabytes. PIL's own limit, 89,478,485 pixels (about 11,000 x
#: 8,000), is also ours.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

#: Largest ratio of the long side to the short side accepted. Resizing a 1 x 60,000 image so that
#: its short side is 224 pixels would need gigabytes; panoramas stay well below 30:1.
MAX_ASPECT_RATIO = 30


class ImageError(ValueError):
    """A file that cannot be used as a photo. ``str(error)`` is ``"<file>: <what is wrong>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_image_file(path: str | os.PathLike) -> bool:
    """True if the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive) and is not
    hidden (a name starting with ``.``, such as macOS's ``._photo.jpg`` resource forks)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def find_photos(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """The photos among and under ``paths``, one at a time, in a stable (sorted) order.

    A file named directly is yielded whatever its name (whoever named it wants it tried, and
    :func:`open_image` says what is wrong with it). Inside a folder, every level down (a
    folder's photos, then its folders', in name order), only files that pass
    :func:`is_image_file` are yielded; hidden files and folders (names starting with ``.``) are
    skipped, symbolic links to folders are not followed (no loops), a symbolic link to a file
    is followed only if the file lies inside the folder given, and a folder reached twice
    (folders given inside each other) is walked once.

    Args:
        paths: files and folders.

    Yields:
        :class:`~pathlib.Path` objects; a path that does not exist is yielded as it is, so
        that the caller reports it like any other unusable file.
    """
    walked: set[tuple[int, int]] = set()
    for given in paths:
        root = Path(given)
        if not root.is_dir():
            yield root
            continue
        inside = root.resolve()
        for folder, subfolders, files in os.walk(root):
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in walked:
                subfolders[:] = []
                continue
            walked.add((info.st_dev, info.st_ino))
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if not is_image_file(path):
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(inside):
                    continue
                yield path


def open_images(
    paths: Iterable[str | os.PathLike], short_side: int | None = None, workers: int = 2,
    ahead: int = 64,
) -> Iterator[tuple[Path, Image.Image | ImageError]]:
    """Open many photos with :func:`open_image` in background threads, in the order given.

    PIL releases Python's global lock while it decodes, so the threads decode in parallel
    with each other and with whatever the caller does with the photos already opened (run a
    network, say). At most ``ahead`` photos are in flight or waiting, so memory stays flat
    however many paths there are (``paths`` may be a generator, e.g. :func:`find_photos`).

    Args:
        paths: photo files.
        short_side, workers, ahead: the hint of :func:`open_image`; decoding threads; how many
            photos may be decoded ahead of the caller.

    Yields:
        ``(path, image)``, or ``(path, error)`` for a photo that cannot be used: an
        :class:`ImageError` that names the file, never raised, so one bad photo never stops
        the others.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    def load(path: Path) -> Image.Image | ImageError:
        try:
            return open_image(path, short_side)
        except ImageError as error:
            return error

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque = deque()
        for path in map(Path, paths):
            pending.append((path, pool.submit(load, path)))
            if len(pending) >= ahead:
                done_path, future = pending.popleft()
                yield done_path, future.result()
        while pending:
            done_path, future = pending.popleft()
            yield done_path, future.result()


def open_image(path: str | os.PathLike, short_side: int | None = None) -> Image.Image:
    """Open a photo file as an upright 8-bit RGB image.

    Args:
        path: a photo file (JPEG, PNG, GIF, BMP, WebP or TIFF; any colour mode).
        short_side: a hint that the caller will shrink the photo to this short side (pixels):
            a JPEG is then decoded at 1/2, 1/4 or 1/8 scale where that still leaves at least
            ``short_side`` pixels (PIL's ``draft`` mode), which is several times faster.

    Returns:
        A fully decoded ``PIL.Image.Image`` in mode ``"RGB"`` (8 bits per channel), rotated
        according to its EXIF orientation tag.

    Raises:
        ImageError: the path does not exist, is a folder, cannot be read (permissions, an
            I/O error), is empty, is not an image, is truncated or corrupt, has more than
            :data:`MAX_PIXELS` pixels, or is thinner than :data:`MAX_ASPECT_RATIO`.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "no such file")
    if path.is_dir():
        raise ImageError(path, "is a folder, not a photo")
    try:
        data = path.read_bytes()
    except OSError as error:  # permissions, a failing disk, a network share that went away
        raise ImageError(path, f"cannot be read ({error.strerror or error})") from None
    return image_from_bytes(data, name=path, short_side=short_side)


def image_from_bytes(
    data: bytes | memoryview, name: str | os.PathLike = "<upload>", short_side: int | None = None
) -> Image.Image:
    """Decode a photo held in memory (an upload, say) exactly as :func:`open_image` does.

    Args:
        data: the bytes of the file.
        name: what to call the file in error messages.
        short_side: see :func:`open_image`.

    Returns:
        A fully decoded upright ``PIL.Image.Image`` in mode ``"RGB"``.

    Raises:
        ImageError: empty, not an image, truncated or corrupt, too large or too thin.
    """
    if len(data) == 0:
        raise ImageError(name, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than fails) about images between 1x and 2x its own limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    name,
                    f"the image is {width}x{height} pixels, more than the {MAX_PIXELS:,} "
                    "pixels accepted (a guard against decompression bombs)",
                )
            if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
                raise ImageError(
                    name,
                    f"the image is {width}x{height} pixels: too thin to be a photo "
                    f"(sides more than {MAX_ASPECT_RATIO}:1)",
                )
            if short_side and image.format == "JPEG" and min(width, height) > 2 * short_side:
                scale = short_side / min(width, height)
                image.draft("RGB", (round(width * scale), round(height * scale)))
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not an image file PIL can read (is it a photo?)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            name,
            f"the image has more than the {MAX_PIXELS:,} pixels accepted "
            "(a guard against decompression bombs)",
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        # PIL reports a truncated JPEG as OSError("image file is truncated ...").
        raise ImageError(name, f"the image is truncated or corrupt ({error})") from None
    if min(image.size) < 1:
        raise ImageError(name, f"the image has no pixels ({image.size[0]}x{image.size[1]})")
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any colour mode to 8-bit RGB.

    Transparent pixels (``RGBA``, ``LA``, ``P`` with transparency) are composed onto white, as a
    photo viewer shows them; 16- and 32-bit grayscale (``I;16``, ``I``) is scaled to 8 bits.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        image = Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")
