"""landmarklib.transfer and landmarklib.export: frozen backbone, head, feature cache, model file."""

from __future__ import annotations

import pytest
import torch

from landmarklib import data, export, training, transfer
from landmarklib.backbones import count_parameters


def _tiny_loaders(spec, **kwargs):
    return data.make_loaders(data.tiny_data_root(), size=spec.input_size, mean=spec.mean,
                             std=spec.std, in_memory=False, num_workers=0, progress=False,
                             **kwargs)


def test_only_the_head_trains_and_the_backbone_is_unchanged():
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, hidden=32)
    trainable, frozen = count_parameters(model)
    head_size = sum(p.numel() for p in model.head.parameters())
    assert trainable == head_size == 1280 * 32 + 32 + 32 * 7 + 7
    assert frozen == sum(p.numel() for p in model.backbone.parameters()) == 3_371_008
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = [p.clone() for p in model.head.parameters()]

    images = torch.randn(8, 3, 96, 96)
    labels = torch.arange(8) % 7
    optimizer = training.make_optimizer(model, lr=1e-2)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == head_size
    model.train()
    assert not model.backbone.training  # BatchNorm statistics stay ImageNet's
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(model(images), labels).backward()
        optimizer.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters()))


def test_head_shapes():
    head = transfer.classifier_head(1280, 50, hidden=256, dropout=0.5)
    out = head.eval()(torch.randn(4, 1280))
    assert out.shape == (4, 50)
    assert torch.allclose(out.exp().sum(1), torch.ones(4))
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear", "LogSoftmax"]
    assert len(transfer.classifier_head(1280, 50, hidden=0)) == 3


def test_unfreeze_last_opens_only_the_last_blocks():
    model = transfer.build_transfer_model(7, pretrained=False)
    opened = transfer.unfreeze_last(model, blocks=2)
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert opened == sum(p.numel() for p in model.backbone.parameters() if p.requires_grad) > 0
    assert all(n.startswith(("conv_head", "bn2")) for n in trainable)
    model.train()
    assert model.backbone.training  # no longer frozen: BatchNorm may adapt


def test_feature_cache_is_hit_on_the_second_run(monkeypatch):
    model = transfer.build_transfer_model(7, pretrained=False)
    loaders = _tiny_loaders(model.spec)
    first = transfer.cached_features(model.backbone, "efficientnet_lite0", loaders.valid,
                                     progress=False)
    assert first[0].shape == (14, 1280) and first[0].dtype == torch.float32
    assert first[1].tolist() == [t for _, t in (loaders.valid.dataset.dataset.dataset.samples[i]
                                                for i in loaders.valid.dataset.dataset.indices)]
    calls = []
    original = transfer.extract_features
    monkeypatch.setattr(transfer, "extract_features",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    second = transfer.cached_features(model.backbone, "efficientnet_lite0", loaders.valid,
                                      progress=False)
    assert calls == [] and torch.equal(first[0], second[0])
    # Another input size is another transform: a new cache entry.
    other = _tiny_loaders(model.spec.__class__(**{**model.spec.__dict__, "input_size": 96}))
    transfer.cached_features(model.backbone, "efficientnet_lite0", other.valid, progress=False)
    assert calls == [1]
    # Other weights (another initialisation, or after fine-tuning): a new cache entry too.
    retrained = transfer.build_transfer_model(7, pretrained=False)
    transfer.cached_features(retrained.backbone, "efficientnet_lite0", loaders.valid,
                             progress=False)
    assert calls == [1, 1]


def test_features_match_the_full_model():
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, pretrained=False).eval()
    loaders = _tiny_loaders(model.spec)
    features, labels = transfer.extract_features(model.backbone, loaders.test, progress=False,
                                                 bfloat16=False)
    images = torch.cat([x for x, _ in loaders.test])
    with torch.inference_mode():
        assert torch.allclose(model.head(features), model(images), atol=1e-4)


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, hidden=16, pretrained=False).eval()
    folders = data.check_layout(data.tiny_data_root()).classes
    path = export.save_model(tmp_path / "m.pt", model, folders, 224, (0.5,) * 3, (0.5,) * 3,
                             metrics={"test_accuracy": 0.5})
    assert not list(tmp_path.glob(".*tmp"))
    saved = export.load_model(path)
    assert saved.class_names[1] == "Golden Gate Bridge" and saved.class_folders == folders
    assert (saved.input_size, saved.mean, saved.metrics) == (224, (0.5,) * 3, {"test_accuracy": 0.5})
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(saved.model(x), model(x), atol=1e-6)
    # The file is plain data: it loads with weights_only=True.
    assert torch.load(path, weights_only=True)["architecture"]["kind"] == "transfer"


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        export.load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="junk.pt: not a readable model file"):
        export.load_model(junk)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a landmarklib model file"):
        export.load_model(tmp_path / "other.pt")
    torch.save({"format": export.FORMAT, "code": export.SavedModel}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="refused: the file holds code"):
        export.load_model(tmp_path / "code.pt")
    torch.save({"format": export.FORMAT, "class_folders": ["a"]}, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match="edited.pt: a damaged or edited model file"):
        export.load_model(tmp_path / "edited.pt")


def test_scratch_model_file_round_trip(tmp_path):
    from landmarklib.models import LandmarkCNN

    torch.manual_seed(0)
    model = LandmarkCNN(n_classes=7, widths=(8, 16, 32), convs_per_stage=1, dropout=0.1).eval()
    folders = data.check_layout(data.tiny_data_root()).classes
    path = export.save_model(tmp_path / "s.pt", model, folders, 64, (0.4,) * 3, (0.2,) * 3)
    saved = export.load_model(path)
    assert isinstance(saved.model, LandmarkCNN) and saved.model.config == model.config
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(saved.model(x), model(x))
    with pytest.raises(TypeError, match="only LandmarkCNN, TransferModel and FineTunedModel"):
        export.save_model(tmp_path / "x.pt", torch.nn.Linear(2, 2), folders, 64, (0,) * 3, (1,) * 3)
