"""landmarklib.data.transforms: augmentation and the evaluation preprocessing as steps."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from landmarklib import data
from landmarklib.preprocessing import preprocess


def test_transforms_give_normalised_square_tensors():
    photo = Image.new("RGB", (300, 200), (255, 0, 0))
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    for transform in (data.train_transform(64, mean, std), data.eval_transform(64, mean, std)):
        out = transform(photo)
        assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    red = data.eval_transform(64, mean, std)(photo)
    assert torch.allclose(red[0], torch.full((64, 64), 2.0))
    assert torch.allclose(red[1], torch.full((64, 64), -2.0))
    assert torch.allclose(data.denormalize(red, mean, std)[0], torch.ones(64, 64))


def test_eval_transform_is_the_one_preprocessing():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    for size, ratio in ((64, 1.0), (48, 1.14), (100, 0.8)):
        ours = data.eval_transform(size, mean, std, ratio)(photo).numpy()
        assert np.array_equal(ours, preprocess(photo, size, mean, std, ratio))


def test_transforms_have_stable_descriptions():
    # Cached features are keyed by these descriptions: equal settings, equal text.
    assert repr(data.eval_transform(64, (0.5,) * 3, (0.5,) * 3)) == repr(
        data.eval_transform(64, [0.5] * 3, [0.5] * 3))
    mirror = data.Mirror(data.ToInput(None, None))
    assert repr(mirror) == "Mirror(transform=ToInput(mean=None, std=None))"


def test_mirror_flips_left_to_right_and_downsize_keeps_the_aspect():
    photo = Image.new("RGB", (40, 20), "black")
    photo.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    mirrored = data.Mirror(data.ToInput(None, None))(photo)
    assert mirrored[:, :, -1].min() == 1.0 and mirrored[:, :, 0].max() == 0.0
    assert data.Downsize(10)(photo).size == (20, 10)
    assert data.Downsize(30)(photo).size == (40, 20)  # never enlarged
