"""landmarklib.export: one model file (weights_only), rebuilt without downloading anything."""

from __future__ import annotations

import pytest
import torch

from landmarklib import data, export, inference, transfer
from landmarklib.efficientnet_lite import EfficientNetLite0
from landmarklib.images import open_image
from landmarklib.models import LandmarkCNN

PHOTOS = sorted(data.tiny_data_root().glob("test/*/*.jpg"))


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, hidden=16, pretrained=False).eval()
    folders = data.check_layout(data.tiny_data_root()).classes
    path = export.save_model(tmp_path / "m.pt", model, folders, 224, (0.5,) * 3, (0.5,) * 3,
                             metrics={"test_accuracy": 0.5})
    assert not list(tmp_path.glob(".*tmp"))
    saved = export.load_model(path)
    assert saved.class_names[1] == "Golden Gate Bridge" and saved.class_folders == folders
    assert (saved.input_size, saved.mean) == (224, (0.5,) * 3)
    assert saved.metrics == {"test_accuracy": 0.5}
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


def test_lean_model_gives_the_full_models_probabilities(tiny_model_file):
    """The file rebuilt with efficientnet_lite.py and resized with torch alone, against the
    same file in a TransferModel built by timm, fed by torchvision's eval_transform."""
    record = torch.load(tiny_model_file, weights_only=True)
    full = transfer.build_transfer_model(len(record["class_folders"]), pretrained=False,
                                         **{k: v for k, v in record["architecture"].items()
                                            if k != "kind"})
    full.load_state_dict(record["state_dict"])
    full.eval()
    transform = data.eval_transform(record["input_size"], record["mean"], record["std"])

    predictor = inference.Predictor(export.load_model(tiny_model_file))
    assert isinstance(predictor.model, transfer.TransferModel)
    assert isinstance(predictor.model.backbone, EfficientNetLite0)
    images = [open_image(photo, short_side=224) for photo in PHOTOS[::4]]
    with torch.inference_mode():
        expected = full(torch.stack([transform(image) for image in images])).exp()
    torch.testing.assert_close(predictor.probabilities(images), expected, atol=1e-4, rtol=0)


def test_rebuilt_model_saves_again_and_trains_like_a_transfer_model(tiny_model_file, tmp_path):
    saved = export.load_model(tiny_model_file)
    model = saved.model
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    assert model.head.training and not model.backbone.training
    again = export.save_model(tmp_path / "again.pt", model.eval(), saved.class_folders,
                              saved.input_size, saved.mean, saved.std)
    reloaded = export.load_model(again).model
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(reloaded(x), model(x))


def test_other_backbones_are_rebuilt_by_transfer(tmp_path):
    torch.manual_seed(0)
    model = transfer.build_transfer_model(3, "resnet18", hidden=0, pretrained=False).eval()
    path = export.save_model(tmp_path / "resnet.pt", model, ["a", "b", "c"], 64,
                             (0.5,) * 3, (0.5,) * 3)
    loaded = export.load_model(path).model
    assert isinstance(loaded, transfer.TransferModel)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_unknown_backbone_is_a_damaged_file(tmp_path):
    record = {"format": export.FORMAT, "architecture": {"kind": "transfer", "backbone": "nope"},
              "state_dict": {}, "class_names": ["A"], "class_folders": ["a"], "input_size": 64,
              "mean": [0.5] * 3, "std": [0.5] * 3}
    torch.save(record, tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="nope.pt: a damaged or edited model file"):
        export.load_model(tmp_path / "nope.pt")


def test_finetuned_model_file_round_trip_without_timm(tmp_path):
    """Saved and loaded back: the same outputs, the trunk rebuilt from efficientnet_lite.py."""
    from landmarklib import export
    from landmarklib.efficientnet_lite import EfficientNetLite0

    torch.manual_seed(0)
    model = transfer.build_finetuned_model(3, hidden=8, members=2, pretrained=False).eval()
    path = export.save_model(tmp_path / "f.pt", model, ["a", "b", "c"], 224, (0.5,) * 3,
                             (0.5,) * 3)
    loaded = export.load_model(path).model
    assert isinstance(loaded, transfer.FineTunedModel) and len(loaded.members) == 2
    assert isinstance(loaded.trunk[0], torch.nn.Conv2d)
    assert not any(isinstance(m, EfficientNetLite0) for m in loaded.modules())  # parts only
    assert loaded.config == model.config
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)
