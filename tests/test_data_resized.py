"""landmarklib.data.resized: smaller copies laid out like the original, rebuilt only where
the source changed."""

from __future__ import annotations

from PIL import Image

from landmarklib import data


def test_resized_copy_is_a_dataset_and_is_reused(tiny_copy, tmp_path):
    dest = tmp_path / "resized"
    out = data.resized_copy(tiny_copy, short_side=48, dest=dest, progress=False)
    report = data.check_layout(out)
    assert report.classes == data.check_layout(tiny_copy).classes
    assert len(report.files["train"]) == 70 and len(report.files["test"]) == 21
    assert all(min(Image.open(p).size) == 48 for p, _ in report.files["train"])
    stamps = {p: p.stat().st_mtime_ns for p, _ in report.files["train"]}
    # Unchanged sources: nothing rewritten. A changed and a removed source: only those.
    changed = sorted((tiny_copy / "train" / "16.Eiffel_Tower").glob("*.jpg"))[0]
    Image.new("RGB", (90, 60), "blue").save(changed)
    removed = sorted((tiny_copy / "train" / "21.Taj_Mahal").glob("*.jpg"))[0]
    removed.unlink()
    data.resized_copy(tiny_copy, short_side=48, dest=dest, progress=False)
    after = {p: p.stat().st_mtime_ns for p, _ in data.check_layout(out).files["train"]}
    rewritten = [p for p in after if after[p] != stamps[p]]
    assert [p.name for p in rewritten] == [changed.name]
    assert len(after) == 69
    assert Image.open(dest / "train/16.Eiffel_Tower" / changed.name).size == (72, 48)


def test_resized_copy_copies_small_photos_as_they_are(tiny_copy, tmp_path):
    out = data.resized_copy(tiny_copy, short_side=100, dest=tmp_path / "r", progress=False)
    source = sorted((tiny_copy / "train" / "16.Eiffel_Tower").glob("*.jpg"))[0]  # 96 x 96
    assert (out / "train/16.Eiffel_Tower" / source.name).read_bytes() == source.read_bytes()
    haleakala = sorted((out / "train/00.Haleakala_National_Park").glob("*.jpg"))[0]  # 160 x 120
    assert min(Image.open(haleakala).size) == 100
