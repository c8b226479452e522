"""What the network sees: training augmentation, and the evaluation preprocessing as steps a
dataset can apply.

Every transform here is a small picklable object with a stable ``repr`` (it is part of the key
of cached features, and DataLoader worker processes receive it by pickling).

* :func:`train_transform`: random crop and zoom, flip, colour jitter (torchvision).
* :class:`CenterCrop` and :class:`ToInput`: the two halves of the one evaluation preprocessing
  (:mod:`landmarklib.preprocessing`), which :func:`eval_transform` chains. Kept apart so that
  an in-memory dataset can keep the deterministic crop and normalise it each time.
* :class:`Downsize` shrinks photos once before they are kept in memory for augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2

from landmarklib import preprocessing
from landmarklib.images import to_rgb

__all__ = ["train_transform", "CenterCrop", "ToInput", "EvalTransform", "eval_transform",
           "Downsize", "Mirror", "denormalize"]


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
        A transform mapping an RGB PIL image to a ``(3, size, size)`` float32 tensor.

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


@dataclass(frozen=True)
class CenterCrop:
    """PIL photo -> the central ``size`` x ``size`` RGB PIL image
    (:func:`landmarklib.preprocessing.center_crop`)."""

    size: int
    resize_ratio: float = 1.0

    def __call__(self, image: Image.Image) -> Image.Image:
        return preprocessing.center_crop(image, self.size, self.resize_ratio)


@dataclass(frozen=True)
class ToInput:
    """RGB PIL image -> float32 tensor ``(3, H, W)``, normalised
    (:func:`landmarklib.preprocessing.normalize`; ``mean=None``: values in [0, 1])."""

    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(preprocessing.normalize(image, self.mean, self.std))


@dataclass(frozen=True)
class EvalTransform:
    """The evaluation preprocessing as a transform: :class:`CenterCrop`, then
    :class:`ToInput`; a PIL photo becomes float32 ``(3, size, size)``."""

    crop: CenterCrop
    to_input: ToInput

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.to_input(self.crop(image))


def eval_transform(size: int, mean, std, resize_ratio: float = 1.0) -> EvalTransform:
    """The deterministic transform for validation, test and inference: resize, center crop,
    normalise (:func:`landmarklib.preprocessing.preprocess`, as a transform).

    Args:
        size: output height and width, in pixels.
        mean, std: per-channel normalisation (3 floats each); ``None`` skips normalising.
        resize_ratio: see :func:`landmarklib.preprocessing.center_crop`.

    Returns:
        A transform mapping a PIL image to a ``(3, size, size)`` float32 tensor.

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    stats = (None, None) if mean is None else (tuple(mean), tuple(std))
    return EvalTransform(CenterCrop(size, resize_ratio), ToInput(*stats))


@dataclass(frozen=True)
class Downsize:
    """PIL photo -> RGB PIL photo whose short side is at most ``short_side`` pixels
    (antialiased bilinear), to keep in memory for augmentation."""

    short_side: int

    def __call__(self, image: Image.Image) -> Image.Image:
        image = to_rgb(image)
        scale = self.short_side / min(image.size)
        if scale >= 1:
            return image
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class Mirror:
    """A transform followed by a left-right flip of its output tensor ``(..., H, W)``: the
    mirrored view of a photo, a second training example for a frozen backbone."""

    transform: object

    def __call__(self, image) -> torch.Tensor:
        return torch.flip(self.transform(image), dims=[-1])


def denormalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo normalisation on ``(..., 3, H, W)`` float tensors, for showing a batch as
    pictures. Values are clamped to [0, 1]."""
    mean = torch.as_tensor(mean, dtype=images.dtype).view(3, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)
