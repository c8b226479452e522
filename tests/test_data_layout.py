"""landmarklib.data.layout: the layout check decodes every photo and reports what it skips."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmarklib import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LANDMARKS44 = SHARED / "landmarks44"


def test_tiny_data_is_laid_out_like_the_real_dataset():
    report = data.check_layout(data.tiny_data_root())
    assert report.problems == []
    assert len(report.classes) >= 4
    assert report.classes[0] == "00.Haleakala_National_Park"
    assert all(n >= 6 for n in report.counts("train").values())
    assert all(n >= 2 for n in report.counts("test").values())
    total = sum(p.stat().st_size for p in data.tiny_data_root().rglob("*") if p.is_file())
    assert total <= 2 * 1024 * 1024


def test_broken_files_are_reported_not_fatal(tiny_copy):
    eiffel = tiny_copy / "train" / "16.Eiffel_Tower"
    photo = sorted(eiffel.glob("*.jpg"))[0]
    truncated = eiffel / "truncated.jpg"
    truncated.write_bytes(photo.read_bytes()[:1500])
    (eiffel / "notes.txt").write_text("not a photo")
    leaked = tiny_copy / "test" / "16.Eiffel_Tower" / "leaked.jpg"
    shutil.copy(sorted(eiffel.glob("*.jpg"))[1], leaked)

    with pytest.warns(UserWarning) as warned:
        report = data.check_layout(tiny_copy)
    assert report.problems == []
    assert report.not_images == [eiffel / "notes.txt"]
    assert [p for p, _ in report.unreadable] == [truncated]
    assert [test for _, test in report.duplicates] == [leaked]
    assert report.counts("train")["16.Eiffel_Tower"] == 10
    assert report.counts("test")["16.Eiffel_Tower"] == 4
    messages = " ".join(str(w.message) for w in warned)
    assert "truncated.jpg" in messages and "notes.txt" in messages and "leaked.jpg" in messages
    assert "truncated.jpg" in str(report) and "duplicate" in str(report)


def test_hidden_folders_are_not_classes(tiny_copy):
    (tiny_copy / "train" / ".ipynb_checkpoints").mkdir()
    (tiny_copy / "test" / "__MACOSX").mkdir()
    report = data.check_layout(tiny_copy)
    assert report.problems == [] and len(report.classes) == 7


def test_fatal_layout_problems(tiny_copy):
    shutil.rmtree(tiny_copy / "test" / "44.Trevi_Fountain")
    for photo in (tiny_copy / "train" / "41.Machu_Picchu").iterdir():
        photo.unlink()
    report = data.check_layout(tiny_copy)
    assert any("only in train ['44.Trevi_Fountain']" in p for p in report.problems)
    assert any("41.Machu_Picchu" in p and "no usable photo" in p for p in report.problems)
    shutil.rmtree(tiny_copy / "test")
    assert any("missing folder" in p for p in data.check_layout(tiny_copy).problems)
    with pytest.raises(ValueError, match="missing folder"):
        data.make_loaders(tiny_copy, progress=False)


def test_unicode_names_and_mixed_formats(tmp_path):
    for split, count in (("train", 3), ("test", 1)):
        for name in ("00.anıtkabir", "01.boğaziçi_köprüsü"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            kinds = [("CMYK", ".jpeg"), ("P", ".png"), ("L", ".JPG")][:count]
            for i, (mode, ext) in enumerate(kinds):
                colour = (i * 80, 10, 100 if split == "train" else 200)
                Image.new("RGB", (20, 20), colour).convert(mode).save(folder / f"{i}{ext}")
    report = data.check_layout(tmp_path)
    assert report.problems == [] and report.unreadable == []
    assert report.counts("train") == {"00.anıtkabir": 3, "01.boğaziçi_köprüsü": 3}
    assert data.class_names(tmp_path) == ["anıtkabir", "boğaziçi köprüsü"]


def test_class_names_follow_sorted_folders():
    assert data.class_names(["09.Golden_Gate_Bridge", "16.Eiffel_Tower"]) == [
        "Golden Gate Bridge", "Eiffel Tower"]
    assert data.class_names(data.tiny_data_root())[1] == "Golden Gate Bridge"


def test_image_sizes_reads_headers():
    paths = [p for p, _ in data.check_layout(data.tiny_data_root()).files["train"]]
    sizes = data.image_sizes(paths)
    assert sizes.shape == (70, 2) and sizes.dtype == np.int64
    assert {tuple(s) for s in sizes[10:]} == {(96, 96)}
    assert max(sizes[:10].max(axis=1)) == 160


def _png_with_bad_crc(path: Path) -> Path:
    """A PNG whose pixel data was damaged (so its CRC no longer matches): its header reads
    fine, only decoding finds the damage."""
    Image.new("RGB", (40, 40), (10, 120, 200)).save(path)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"IDAT") + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert Image.open(path).size == (40, 40)
    return path


def test_photos_that_do_not_decode_are_found_and_skipped(tiny_copy):
    eiffel = tiny_copy / "train" / "16.Eiffel_Tower"
    bad_crc = _png_with_bad_crc(eiffel / "bad_crc.png")
    huge = eiffel / "huge.png"  # just above Pillow's limit, tiny on disk
    side = int((Image.MAX_IMAGE_PIXELS or 89_478_485) ** 0.5) + 10
    Image.new("1", (side, side)).save(huge)
    good = sorted(eiffel.glob("*.jpg"))[0]
    trailing = eiffel / "trailing_bytes.jpg"  # phones and editors append data after the end
    trailing.write_bytes(good.read_bytes() + b"\x00" * 100 + b"APPENDED METADATA")
    avif = eiffel / "photo.avif"
    Image.open(good).save(avif)

    report = data.check_layout(tiny_copy, warn=False)
    unreadable = dict(report.unreadable)
    assert set(unreadable) == {bad_crc, huge}
    assert "corrupt" in unreadable[bad_crc] and "pixels" in unreadable[huge]
    usable = [p for p, _ in report.files["train"]]
    assert trailing in usable and avif in usable
    # The loaders never see the two broken photos, and training data decodes.
    with pytest.warns(UserWarning, match="Skipped 2 photos that do not decode"):
        loaders = data.make_loaders(tiny_copy, size=32, batch_size=64, in_memory=False,
                                    num_workers=0, progress=False)
    listed = [p for p, _ in loaders.train.dataset.samples + loaders.valid.dataset.samples]
    assert bad_crc not in listed and huge not in listed and trailing in listed
    assert sum(len(y) for _, y in loaders.train) == len(loaders.train.dataset)


def test_decoding_verdicts_are_cached_and_renewed_when_a_file_changes(tiny_copy, monkeypatch):
    from landmarklib.data import layout

    data.check_layout(tiny_copy, warn=False)
    decoded = []
    original = layout._why_unreadable
    monkeypatch.setattr(layout, "_why_unreadable", lambda p: decoded.append(p) or original(p))
    data.check_layout(tiny_copy, warn=False)
    assert decoded == []  # nothing changed: nothing decoded again
    photo = sorted((tiny_copy / "test" / "44.Trevi_Fountain").glob("*.jpg"))[0]
    photo.write_bytes(photo.read_bytes()[:300])
    report = data.check_layout(tiny_copy, warn=False)
    assert decoded == [photo] and [p for p, _ in report.unreadable] == [photo]
