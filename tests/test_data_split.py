"""landmarklib.data.split: the stratified split and the training split's statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from landmarklib import data
from landmarklib.data import split as split_module
from landmarklib.images import open_image
from landmarklib.preprocessing import center_crop

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LANDMARKS44 = SHARED / "landmarks44"


@pytest.mark.skipif(not LANDMARKS44.is_dir(), reason="needs ../shared/data/landmarks44")
def test_landmarks44_counts_and_split():
    report = data.check_layout(LANDMARKS44)
    assert len(report.classes) == 44
    assert len(report.files["train"]) == 4400 and len(report.files["test"]) == 1100
    keys = [str(p.relative_to(LANDMARKS44)) for p, _ in report.files["train"]]
    targets = [t for _, t in report.files["train"]]
    train, val = data.stratified_split(keys, targets)
    assert (len(train), len(val)) == (3520, 880)
    assert np.bincount(np.asarray(targets)[val]).tolist() == [20] * 44


def test_stratified_split_is_stable_and_stratified():
    keys = [f"train/{c:02d}/{i}.jpg" for c in range(5) for i in range(99 + (c % 2))]
    targets = [int(k.split("/")[1]) for k in keys]
    train, val = data.stratified_split(keys, targets, 0.2, seed=0)
    assert len(val) == 5 * 20 and len(train) == len(keys) - 100
    assert set(train).isdisjoint(val) and sorted(train + val) == list(range(len(keys)))
    # The split depends on names, not on the order files were listed in.
    order = np.random.default_rng(1).permutation(len(keys))
    _, val_shuffled = data.stratified_split([keys[i] for i in order], [targets[i] for i in order])
    assert sorted(keys[order[i]] for i in val_shuffled) == sorted(keys[i] for i in val)
    assert data.stratified_split(keys, targets, 0.2, seed=1)[1] != val
    # A fixed example, so a change of algorithm cannot pass unnoticed.
    assert data.stratified_split([f"{i}" for i in range(10)], [0] * 10, 0.3)[1] == [4, 7, 9]
    with pytest.raises(ValueError):
        data.stratified_split(keys, targets[:-1])


# ------------------------------------------------------------------------------ statistics


def test_channel_stats_reads_only_the_files_given(tiny_copy, monkeypatch):
    report = data.check_layout(tiny_copy)
    train = report.files["train"][::2]
    opened = []
    monkeypatch.setattr(split_module, "open_image",
                        lambda p, **k: opened.append(p) or open_image(p, **k))
    mean, std = data.channel_stats(train, size=32, progress=False)
    assert sorted(opened) == sorted(p for p, _ in train)
    assert all(0 < m < 1 for m in mean) and all(0 < s < 0.5 for s in std)
    # Against a direct computation over the same pixels, the evaluation crops.
    pixels = np.concatenate([np.asarray(center_crop(open_image(p, short_side=32), 32))
                             .reshape(-1, 3) for p, _ in train]) / 255.0
    assert np.allclose(mean, pixels.mean(0), atol=1e-6)
    assert np.allclose(std, pixels.std(0), atol=1e-6)
    # Second call: from the cache, nothing opened.
    opened.clear()
    assert data.channel_stats(train, size=32, progress=False) == (mean, std)
    assert opened == []


def test_fingerprint_changes_with_the_files(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1"), b.write_bytes(b"2")
    key = data.fingerprint([a, b], "size=32")
    assert key == data.fingerprint([b, a], "size=32")  # not the order listed
    assert key != data.fingerprint([a, b], "size=64")
    b.write_bytes(b"22")
    assert key != data.fingerprint([a, b], "size=32")
