"""landmarklib.transfer.features: features computed once and cached; aligned views."""

from __future__ import annotations

import pytest
import torch

from landmarklib import data, transfer
from landmarklib.backbones import create_backbone


def _tiny_loaders(spec, **kwargs):
    return data.make_loaders(data.tiny_data_root(), size=spec.input_size, mean=spec.mean,
                             std=spec.std, in_memory=False, num_workers=0, progress=False,
                             augment=False, **kwargs)


def test_feature_cache_is_hit_on_the_second_run(monkeypatch):
    model = transfer.build_transfer_model(7, pretrained=False)
    loaders = _tiny_loaders(model.spec)
    first = transfer.cached_features(model.backbone, "efficientnet_lite0", loaders.valid,
                                     progress=False, precision="float32")
    assert first[0].shape == (14, 1280) and first[0].dtype == torch.float32
    assert first[1].tolist() == [t for _, t in loaders.valid.dataset.samples]
    calls = []
    from landmarklib.transfer import features as features_module

    original = features_module.extract_features
    monkeypatch.setattr(features_module, "extract_features",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    second = transfer.cached_features(model.backbone, "efficientnet_lite0", loaders.valid,
                                      progress=False, precision="float32")
    assert calls == [] and torch.equal(first[0], second[0])
    # Another input size is another transform: a new cache entry.
    other = _tiny_loaders(model.spec.__class__(**{**model.spec.__dict__, "input_size": 96}))
    transfer.cached_features(model.backbone, "efficientnet_lite0", other.valid, progress=False,
                             precision="float32")
    assert calls == [1]
    # Other weights (another initialisation, or after fine-tuning): a new cache entry too.
    retrained = transfer.build_transfer_model(7, pretrained=False)
    transfer.cached_features(retrained.backbone, "efficientnet_lite0", loaders.valid,
                             progress=False, precision="float32")
    assert calls == [1, 1]
    # Another precision: a new cache entry, stored in bfloat16.
    half, _ = transfer.cached_features(model.backbone, "efficientnet_lite0", loaders.valid,
                                       progress=False, precision="bfloat16")
    assert calls == [1, 1, 1] and half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), first[0], atol=0.1, rtol=0.05)


def test_features_match_the_full_model():
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, pretrained=False).eval()
    loaders = _tiny_loaders(model.spec)
    features, labels = transfer.extract_features(model.backbone, loaders.test, progress=False,
                                                 precision="float32")
    images = torch.cat([x for x, _ in loaders.test])
    with torch.inference_mode():
        assert torch.allclose(model.head(features), model(images), atol=1e-4)


def test_mirrored_view_lines_up_with_the_photos():
    backbone, spec = create_backbone("efficientnet_lite0", pretrained=False)
    loaders = _tiny_loaders(spec)
    plain = torch.cat([x for x, _ in transfer.in_order(loaders.train)])
    mirrored = torch.cat([x for x, _ in transfer.in_order(loaders.train, mirrored=True)])
    assert plain.shape == (56, 3, 224, 224)
    assert torch.equal(mirrored, plain.flip(-1))
    labels = torch.cat([y for _, y in transfer.in_order(loaders.train)])
    assert labels.tolist() == sorted(labels.tolist())  # dataset order, not shuffled


def test_random_view_draws_every_view():
    views = [torch.zeros(5, 2), torch.ones(5, 2)]
    dataset = transfer.RandomView(views, torch.arange(5))
    torch.manual_seed(0)
    drawn = {float(dataset[3][0][0]) for _ in range(50)}
    assert drawn == {0.0, 1.0} and int(dataset[3][1]) == 3
    with pytest.raises(ValueError, match="same shape"):
        transfer.RandomView([torch.zeros(5, 2), torch.zeros(4, 2)], torch.arange(5))


def test_run_in_batches_matches_one_call():
    layer = torch.nn.Linear(8, 3)
    x = torch.randn(70, 8)
    out = transfer.run_in_batches(layer, x, batch_size=16)
    with torch.inference_mode():
        assert torch.allclose(out, layer(x), atol=1e-6)
    assert not out.is_inference()
