"""landmarklib.images: every kind of photo opens as upright RGB; bad files say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from landmarklib import images
from landmarklib.images import ImageError, image_from_bytes, open_image


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "mode, suffix",
    [("RGB", ".jpg"), ("L", ".jpg"), ("CMYK", ".jpg"), ("RGBA", ".png"), ("P", ".gif"),
     ("LA", ".png"), ("RGB", ".webp"), ("RGB", ".bmp"), ("RGB", ".tiff")],
)
def test_every_colour_mode_opens_as_rgb(tmp_path, mode, suffix):
    image = Image.new("RGB", (40, 30), (200, 30, 60)).convert(mode)
    path = _save(image, tmp_path / f"photo{suffix}")
    opened = open_image(path)
    assert opened.mode == "RGB"
    assert opened.size == (40, 30)


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    pixels = np.full((8, 8), 65535, dtype=np.uint16)
    pixels[0, 0] = 0
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode.startswith("I")
    opened = np.asarray(open_image(path))
    assert opened.dtype == np.uint8
    assert opened[1, 1].tolist() == [255, 255, 255]
    assert opened[0, 0].tolist() == [0, 0, 0]


def test_transparent_areas_become_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    path = _save(image, tmp_path / "clear.png")
    assert np.asarray(open_image(path))[0, 0].tolist() == [255, 255, 255]


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = _save(image, tmp_path / "sideways.jpg", exif=exif)
    assert Image.open(path).size == (60, 20)
    assert open_image(path).size == (20, 60)


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    good = _save(Image.new("RGB", (64, 64), "green"), tmp_path / "good.jpg", quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = {
        tmp_path / "missing.jpg": "no such file",
        tmp_path: "is a folder",
        empty: "empty",
        text: "not an image",
        truncated: "truncated",
    }
    for path, words in cases.items():
        with pytest.raises(ImageError) as caught:
            open_image(path)
        assert str(path) in str(caught.value)
        assert words in str(caught.value)


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = _save(Image.new("RGB", (20, 20)), tmp_path / "big.png")
    with pytest.raises(ImageError, match="more than the 100 pixels"):
        open_image(path)


def test_thin_images_are_refused(tmp_path):
    path = _save(Image.new("L", (2, 200)), tmp_path / "needle.png")
    with pytest.raises(ImageError, match="2x200 pixels: too thin"):
        open_image(path)
    assert open_image(_save(Image.new("L", (10, 290)), tmp_path / "tall.png")).size == (10, 290)


def test_bytes_and_file_give_the_same_image(tmp_path):
    path = _save(Image.new("RGB", (9, 7), (1, 2, 3)), tmp_path / "x.png")
    from_bytes = image_from_bytes(memoryview(path.read_bytes()), name="x.png")
    assert np.array_equal(np.asarray(from_bytes), np.asarray(open_image(path)))
    with pytest.raises(ImageError, match="upload.png: the file is empty"):
        image_from_bytes(b"", name="upload.png")


def test_short_side_hint_decodes_large_jpegs_at_reduced_scale(tmp_path):
    path = _save(Image.new("RGB", (1000, 800), (10, 200, 30)), tmp_path / "large.jpg")
    reduced = open_image(path, short_side=150)
    assert reduced.size == (250, 200)  # 1/4 scale still leaves at least 150 px
    assert open_image(path, short_side=500).size == (1000, 800)
    assert np.abs(np.asarray(reduced, dtype=int)[100, 100] - [10, 200, 30]).max() < 8


def test_an_io_error_becomes_that_photos_error(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (8, 8)), tmp_path / "on_a_failing_disk.jpg")
    original = type(path).read_bytes

    def failing(self):
        if self.name == path.name:
            raise OSError(5, "Input/output error")
        return original(self)

    monkeypatch.setattr(type(path), "read_bytes", failing)
    with pytest.raises(ImageError, match="on_a_failing_disk.jpg: cannot be read"):
        open_image(path)


def test_one_rule_for_which_files_are_photos():
    assert images.is_image_file("a/photo.JPG") and images.is_image_file("b.avif")
    assert images.is_image_file("c.webp") and images.is_image_file("d.tiff")
    assert not images.is_image_file("notes.txt") and not images.is_image_file("model.pt")
    assert not images.is_image_file("._photo.jpg")  # a macOS resource fork


def test_find_photos_walks_folders_in_order(tmp_path):
    for name in ("b/2.jpg", "b/1.png", "a.jpg", ".hidden/x.jpg", "b/.y.jpg", "notes.txt",
                 "c/d/e.avif"):
        (tmp_path / "root" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / name).write_bytes(b"x")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x")
    root = tmp_path / "root"
    (root / "link_out.jpg").symlink_to(outside)          # points out of the root: skipped
    (root / "link_in.jpg").symlink_to(root / "a.jpg")    # stays inside: followed
    (root / "loop").symlink_to(root, target_is_directory=True)  # a loop: never entered
    found = [p.relative_to(root).as_posix() for p in images.find_photos([root])]
    assert found == ["a.jpg", "link_in.jpg", "b/1.png", "b/2.jpg", "c/d/e.avif"]
    # A file named directly is yielded whatever it is; so is a missing one.
    named = list(images.find_photos([root / "notes.txt", tmp_path / "missing.jpg"]))
    assert named == [root / "notes.txt", tmp_path / "missing.jpg"]


def test_find_photos_in_a_photo_library(tmp_path):
    from test_tagging import EXPECTED, make_library

    library = make_library(tmp_path)
    walked = [p.relative_to(library).as_posix() for p in images.find_photos([library])]
    assert walked == [  # a folder's photos, then its folders', in name order
        "broken.jpg", "faces.png", "fog.jpg", "located.jpg", "phone.jpg", "rated.jpg",
        "2019/truncated.jpg", "2019/paris/eiffel_1.jpg", "2019/paris/eiffel_2.JPG",
        "2019/sf/golden gate.jpg", "Türkiye ☀/köprü İstanbul.jpg"]
    # Files given are yielded as given (a missing one too); a nested folder is walked once.
    given = [library / "notes.txt", tmp_path / "missing.jpg", library, library / "2019"]
    walked = list(images.find_photos(given))
    assert walked[:2] == [library / "notes.txt", tmp_path / "missing.jpg"]
    assert len(walked) == 2 + len(EXPECTED)
