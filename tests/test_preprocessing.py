"""landmarklib.preprocessing: the one evaluation preprocessing, in PIL and NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import imported_by
from PIL import Image

from landmarklib.preprocessing import center_crop, describe, normalize, preprocess


def _photo(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * 1000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("width, height, size, ratio, resized", [
    (300, 200, 64, 1.0, (96, 64)),     # landscape: short side to 64, long side int(64 * 1.5)
    (200, 300, 64, 1.0, (64, 96)),     # portrait
    (97, 97, 97, 1.0, (97, 97)),       # already the right size: not resized
    (800, 600, 224, 256 / 224, (341, 256)),  # ImageNet's 256/224 convention
])
def test_center_crop_resizes_the_short_side_then_crops_the_middle(width, height, size, ratio,
                                                                  resized):
    photo = _photo(width, height)
    crop = center_crop(photo, size, ratio)
    assert crop.size == (size, size) and crop.mode == "RGB"
    full = photo.resize(resized, Image.Resampling.BILINEAR) if resized != photo.size else photo
    left, top = round((resized[0] - size) / 2), round((resized[1] - size) / 2)
    expected = np.asarray(full)[top:top + size, left:left + size].astype(int)
    difference = np.abs(np.asarray(crop).astype(int) - expected)  # the crop is resampled alone
    assert difference.max() <= 1 and difference.mean() < 0.05


def test_a_ratio_below_one_pads_with_black():
    crop = np.asarray(center_crop(Image.new("RGB", (50, 50), "white"), 40, 0.8))
    assert crop.shape == (40, 40, 3)
    assert crop[0, 0].tolist() == [0, 0, 0] and crop[20, 20].tolist() == [255, 255, 255]


def test_normalize_scales_subtracts_and_divides_channels_first():
    pixels = np.zeros((2, 3, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    x = normalize(pixels, (0.5, 0.5, 0.5), (0.25, 0.5, 0.5))
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    assert np.allclose(x[0], 2.0) and np.allclose(x[1], -1.0)
    assert np.allclose(normalize(pixels, None, None)[0], 1.0)


def test_preprocess_converts_any_mode_to_rgb():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # transparent: white
    x = preprocess(rgba, 16, None, None)
    assert x.shape == (3, 16, 16) and np.all(x == 1.0)
    gray = preprocess(Image.new("L", (20, 20), 128), 8, (0.5,) * 3, (0.5,) * 3)
    assert gray.shape == (3, 8, 8) and np.allclose(gray, 128 / 255 * 2 - 1, atol=1e-6)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        center_crop(_photo(10, 10), 0)


def test_description_is_stable_text():
    text = describe(224, (0.5, 0.5, 0.5), [0.5, 0.5, 0.5])
    assert text == describe(224, [0.5] * 3, (0.5,) * 3)
    assert "size=224" in text and "mean=[0.5, 0.5, 0.5]" in text
    assert "none" in describe(128, None, None)


def test_preprocessing_needs_no_torch():
    assert "torch" not in imported_by("import landmarklib.preprocessing")
