"""landmarklib.export: one model file (weights_only), rebuilt without downloading anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from landmarklib import data, export, transfer
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


def test_rebuilt_model_saves_again_and_trains_like_a_transfer_model(tiny_training_file, tmp_path):
    saved = export.load_model(tiny_training_file)
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


def test_finetuned_model_file_round_trip(tmp_path):
    """Saved and loaded back: the same outputs, trunk and members rebuilt from the record."""
    torch.manual_seed(0)
    model = transfer.build_finetuned_model(3, hidden=8, members=2, pretrained=False).eval()
    path = export.save_model(tmp_path / "f.pt", model, ["a", "b", "c"], 224, (0.5,) * 3,
                             (0.5,) * 3)
    loaded = export.load_model(path).model
    assert isinstance(loaded, transfer.FineTunedModel) and len(loaded.members) == 2
    assert isinstance(loaded.trunk[0], torch.nn.Conv2d)
    assert loaded.config == model.config
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ the deployment file


def _onnx_outputs(path, images: np.ndarray):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    return session.run(None, {"images": images}), meta


@pytest.mark.parametrize("kind", ["scratch", "transfer", "finetuned", "resnet18"])
def test_every_kind_of_model_exports_with_its_metadata(kind, tmp_path):
    torch.manual_seed(0)
    model, size = {
        "scratch": lambda: (LandmarkCNN(3, widths=(8, 16)), 32),
        "transfer": lambda: (transfer.build_transfer_model(3, hidden=8, pretrained=False), 64),
        "finetuned": lambda: (transfer.build_finetuned_model(3, hidden=8, members=2,
                                                             pretrained=False), 64),
        "resnet18": lambda: (transfer.build_transfer_model(3, "resnet18", hidden=0,
                                                           pretrained=False), 64),
    }[kind]()
    folders = ["00.A", "01.B", "02.C"]
    pt = export.save_model(tmp_path / f"{kind}.pt", model.eval(), folders, size, (0.5,) * 3,
                           (0.25,) * 3, metrics={"test_accuracy": 0.5}, precision="bfloat16")
    path = export.export_onnx(pt)
    assert path == pt.with_suffix(".onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pt.name, path.name])
    images = np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)
    imagenet = kind == "finetuned"  # a frozen ImageNet trunk: its pooled features too
    for batch in (images, images[:1]):  # any batch size
        outputs, meta = _onnx_outputs(path, batch)
        with torch.inference_mode():
            expected = model.classify_and_embed(torch.from_numpy(batch), imagenet=True) \
                if imagenet else model.classify_and_embed(torch.from_numpy(batch))
            assert torch.allclose(expected[0], model(torch.from_numpy(batch)), atol=1e-5)
        assert len(outputs) == len(expected) == (4 if imagenet else 3)
        for output, wanted in zip(outputs, expected):
            assert output.shape == tuple(wanted.shape)
            np.testing.assert_allclose(output, wanted.numpy(), atol=1e-4)
        for unit_rows in outputs[2:]:  # the embeddings (and the ImageNet embeddings)
            np.testing.assert_allclose(np.linalg.norm(unit_rows, axis=1), 1.0, atol=1e-5)
    if imagenet:  # the trunk's channels (Lite0's 192 before its last two blocks)
        assert outputs[3].shape == (1, 192)
    assert meta["format"] == export.ONNX_FORMAT and meta["class_folders"] == folders
    assert meta["class_names"] == ["A", "B", "C"] and meta["input_size"] == size
    assert (meta["mean"], meta["std"], meta["resize_ratio"]) == ([0.5] * 3, [0.25] * 3, 1.0)
    assert meta["precision"] == "bfloat16" and meta["metrics"] == {"test_accuracy": 0.5}
    assert "crop" in meta["resize"] and meta["source"] == pt.name


def test_onnx_and_pytorch_give_the_same_answers_on_every_tiny_test_photo(
        tiny_training_file, tiny_model_file):
    from landmarklib.deployment import Predictor

    saved, predictor = export.load_model(tiny_training_file), Predictor(tiny_model_file)
    photos = [open_image(p, short_side=predictor.input_size) for p in PHOTOS]
    x = predictor.inputs(photos)
    with torch.inference_mode():
        expected = saved.model(torch.from_numpy(x)).exp().numpy()
    got = predictor.probabilities(photos)
    assert got.shape == (21, 7) and np.abs(got - expected).max() <= 1e-4
    for ours, theirs in zip(got, expected):
        top2 = np.sort(theirs)[-2:]
        assert ours.argmax() == theirs.argmax() or top2[1] - top2[0] <= 1e-4


def test_a_deployment_file_is_not_a_training_file(tiny_model_file):
    with pytest.raises(ValueError, match="deployment file.*training file"):
        export.load_model(tiny_model_file)
