"""The one evaluation preprocessing: a photo becomes the network's input.

Validation, testing, ``landmarklib evaluate``, every prediction and the apps all feed a
network through :func:`preprocess`, so the numbers measured during training are the numbers a
user gets. It uses PIL and NumPy only (no torch), so that tagging photos never has to import
torch. Training's random augmentation is elsewhere (:mod:`landmarklib.data.transforms`).

The steps, for a network trained on ``size`` x ``size`` photos:

1. :func:`center_crop`: resize (bilinear, antialiased: PIL's resampling filters widen with the
   scale factor) so that the short side is ``n = round(size * resize_ratio)`` pixels and the
   long side ``int(n * long / short)``, then crop the central ``size`` x ``size`` square
   (black padding where a side is shorter, which only ``resize_ratio < 1`` can cause); only
   the square that is kept is resampled;
2. :func:`normalize`: scale the 8-bit values to [0, 1], subtract the per-channel mean, divide by
   the standard deviation, and put the channels first.

Photos come from :func:`landmarklib.images.open_image` (upright 8-bit RGB).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from landmarklib.images import to_rgb

__all__ = ["center_crop", "normalize", "preprocess", "describe"]


def center_crop(image: Image.Image, size: int, resize_ratio: float = 1.0) -> Image.Image:
    """Resize a photo's short side to ``round(size * resize_ratio)`` and cut out the central
    ``size`` x ``size`` square.

    Args:
        image: a PIL image of any mode (converted to RGB by
            :func:`landmarklib.images.to_rgb`).
        size: side of the square, in pixels.
        resize_ratio: 1.0 keeps the whole short side; ImageNet models are often evaluated at
            256/224 = 1.14, which crops a margin away.

    Returns:
        An RGB ``PIL.Image.Image`` of ``size`` x ``size`` pixels.

    Raises:
        ValueError: ``size`` or ``resize_ratio`` not positive.

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    if size < 1 or resize_ratio <= 0:
        raise ValueError(f"size and resize_ratio must be positive, got {size}, {resize_ratio}")
    image = to_rgb(image)
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_short = max(1, round(size * resize_ratio))
    new_long = max(1, int(new_short * long / short))
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    left = int(round((new_size[0] - size) / 2.0))
    top = int(round((new_size[1] - size) / 2.0))
    if new_size != image.size and left >= 0 and top >= 0:
        # Resample only the square that is kept: its box in the photo's own coordinates. PIL
        # still reads the pixels around the box that the filter reaches, so this is the
        # resize-then-crop below (pixel values equal to within 1 of 255), a third faster.
        sx, sy = width / new_size[0], height / new_size[1]
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        return image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BILINEAR)
    return image.crop((left, top, left + size, top + size))  # outside the photo: black


def normalize(image: Image.Image | np.ndarray, mean: Sequence[float] | None,
              std: Sequence[float] | None) -> np.ndarray:
    """8-bit RGB pixels as the network's float input: ``(x / 255 - mean) / std``, channels first.

    Args:
        image: an RGB PIL image, or a uint8 array ``(H, W, 3)``.
        mean, std: per-channel (R, G, B) statistics of pixels scaled to [0, 1], 3 floats each;
            ``None`` leaves the values in [0, 1].

    Returns:
        float32 ``(3, H, W)``.
    """
    # Channels first, then x * (1 / (255 std)) - mean / std in place: one pass over a copy.
    pixels = np.asarray(image).transpose(2, 0, 1).astype(np.float32, order="C")
    std = np.ones(3, np.float32) if std is None else np.asarray(std, np.float32)
    pixels *= (np.float32(1 / 255) / std)[:, None, None]
    if mean is not None:
        pixels -= (np.asarray(mean, np.float32) / std)[:, None, None]
    return pixels


def preprocess(image: Image.Image, size: int, mean: Sequence[float] | None,
               std: Sequence[float] | None, resize_ratio: float = 1.0) -> np.ndarray:
    """A photo as the network's input: :func:`center_crop`, then :func:`normalize`.

    Args:
        image: a PIL image (any mode).
        size: the input size the network was trained at, in pixels.
        mean, std: the normalisation it was trained with (3 floats each), or ``None``.
        resize_ratio: see :func:`center_crop`.

    Returns:
        float32 ``(3, size, size)``.

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    return normalize(center_crop(image, size, resize_ratio), mean, std)


def describe(size: int, mean, std, resize_ratio: float = 1.0) -> str:
    """A one-line description of the preprocessing's settings, the same on every machine
    (recorded in model files, and part of the key of cached features)."""
    stats = "none" if mean is None else (f"mean={[round(float(m), 6) for m in mean]} "
                                         f"std={[round(float(s), 6) for s in std]}")
    return f"center_crop(size={size}, resize_ratio={resize_ratio}, bilinear) normalize({stats})"
