"""landmarklib.data.loaders: datasets and loaders; a photo that breaks never stops an epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from landmarklib import data
from landmarklib.images import open_image
from landmarklib.preprocessing import preprocess


def test_make_loaders_never_touches_test_or_validation_for_stats(tiny_copy, monkeypatch):
    from landmarklib.data import loaders as loaders_module

    seen = []
    original = loaders_module.channel_stats
    monkeypatch.setattr(loaders_module, "channel_stats",
                        lambda samples, *a, **k: seen.extend(samples) or original(samples, *a, **k))
    loaders = data.make_loaders(tiny_copy, size=48, batch_size=8, progress=False)
    valid_paths = {path for path, _ in loaders.valid.dataset.samples}
    assert seen and all("/train/" in str(p) for p, _ in seen)
    assert valid_paths.isdisjoint(p for p, _ in seen)
    assert len(seen) + len(valid_paths) == 70


@pytest.mark.parametrize("in_memory", [True, False])
def test_make_loaders_on_tiny_data(in_memory):
    loaders = data.make_loaders(data.tiny_data_root(), size=64, batch_size=16,
                                in_memory=in_memory, num_workers=0, progress=False)
    sizes = len(loaders.train.dataset), len(loaders.valid.dataset), len(loaders.test.dataset)
    assert sizes == (56, 14, 21)
    images, labels = next(iter(loaders.train))
    assert images.shape == (16, 3, 64, 64) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < 7
    assert loaders.class_names[0] == "Haleakala National Park"
    # Eval batches are deterministic; normalised training pixels are centred near 0.
    a, _ = next(iter(loaders.valid))
    b, _ = next(iter(loaders.valid))
    assert torch.equal(a, b)
    assert abs(float(images.mean())) < 0.5


@pytest.mark.parametrize("in_memory", [True, False])
def test_validation_and_test_photos_are_exactly_what_predictions_see(in_memory):
    loaders = data.make_loaders(data.tiny_data_root(), size=48, batch_size=8, in_memory=in_memory,
                                num_workers=0, progress=False)
    images, labels = next(iter(loaders.test))
    for i in (0, 5):
        path, label = loaders.test.dataset.samples[i]
        expected = preprocess(open_image(path, short_side=48), 48, loaders.mean, loaders.std)
        assert np.array_equal(images[i].numpy(), expected) and labels[i] == label


def test_a_photo_that_breaks_after_the_check_is_skipped_with_its_name(tiny_copy):
    loaders = data.make_loaders(tiny_copy, size=32, batch_size=8, in_memory=False,
                                num_workers=0, progress=False)
    broken, _ = loaders.train.dataset.samples[3]
    broken.write_bytes(broken.read_bytes()[:200])  # cut short after the layout check
    with pytest.warns(UserWarning, match=broken.name):
        seen = sum(len(labels) for _, labels in loaders.train)
    assert seen == len(loaders.train.dataset) - 1


def test_decoded_photos_leave_out_what_does_not_decode(tiny_copy):
    report = data.check_layout(tiny_copy)
    samples = report.files["test"][:4]
    samples[1][0].write_bytes(b"garbage")
    photos = data.PhotoDataset(samples, report.classes, short_side=32)
    with pytest.warns(UserWarning, match=samples[1][0].name):
        kept = data.DecodedPhotos(photos, progress=False)
    assert len(kept) == 3 and [p for p, _ in kept.samples] == [samples[i][0] for i in (0, 2, 3)]
    assert isinstance(kept[0][0], Image.Image)


def test_collate_leaves_out_missing_photos():
    batch = data.collate_photos([(torch.zeros(3, 4, 4), 1), None, (torch.ones(3, 4, 4), 2)])
    assert batch[0].shape == (2, 3, 4, 4) and batch[1].tolist() == [1, 2]
    images, labels = data.collate_photos([None, None])
    assert len(images) == 0 and len(labels) == 0
