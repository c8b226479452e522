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
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: File extensions treated as photos (lower case). Anything else in a class folder is skipped.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")

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
    """True if the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


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
        ImageError: the path does not exist, is a folder, is empty, is not an image, is
            truncated or corrupt, has more than :data:`MAX_PIXELS` pixels, or is thinner than
            :data:`MAX_ASPECT_RATIO`.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "no such file")
    if path.is_dir():
        raise ImageError(path, "is a folder, not a photo")
    data = path.read_bytes()
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
