"""Inference without torchvision and timm: the same answers as the full pipeline, imported in
a fraction of the time (a new process should tag a photo within 3 s on a 2-core laptop)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from landmarklib import data, export, inference, transfer
from landmarklib.efficientnet_lite import EfficientNetLite0
from landmarklib.images import open_image

PHOTOS = sorted(data.tiny_data_root().glob("test/*/*.jpg"))


def test_inference_and_cli_import_neither_torchvision_nor_timm(tiny_model_file):
    """Also after a prediction (model loaded, photo resized) through the command line."""
    code = textwrap.dedent(f"""
        import sys
        import landmarklib.inference, landmarklib.cli

        def heavy():
            return sorted({{m.split(".")[0] for m in sys.modules}} & {{"torchvision", "timm"}}
                          | {{m for m in sys.modules if m in ("landmarklib.data",
                             "landmarklib.backbones")}})

        assert not heavy(), heavy()
        status = landmarklib.cli.main(["predict", {str(PHOTOS[0])!r}, "--model",
                                       {str(tiny_model_file)!r}])
        assert status == 0 and not heavy(), (status, heavy())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(PHOTOS[0]))


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


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
             for h, w in [(10, 10), (301, 157), (157, 301), (224, 224), (225, 300), (99, 400)]]
    gray = Image.fromarray(rng.integers(0, 256, (50, 71), dtype=np.uint8)).convert("RGB")
    return [open_image(PHOTOS[0]), open_image(PHOTOS[-1]), *noise, gray]


@pytest.mark.parametrize("size, resize_ratio, mean, std", [
    (224, 1.0, (0.5,) * 3, (0.5,) * 3),
    (97, 256 / 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (225, 1.0, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)),
    (128, 0.8, None, None),  # short side 102 < 128: the crop pads
])
def test_resize_crop_normalize_is_eval_transform(size, resize_ratio, mean, std):
    transform = data.eval_transform(size, mean, std, resize_ratio)
    for image in _images():
        got = inference.resize_crop_normalize(image, size, mean, std, resize_ratio)
        assert got.shape == (3, size, size) and got.dtype == torch.float32
        torch.testing.assert_close(got, transform(image), atol=0, rtol=0,
                                   msg=f"{image.size} at {size} px")


def test_resize_crop_normalize_converts_to_rgb():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # transparent: white
    x = inference.resize_crop_normalize(rgba, 16, None, None)
    assert x.shape == (3, 16, 16) and torch.all(x == 1.0)


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


def test_default_model_path_is_in_datas_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path))
    assert inference.default_model_path() == data.cache_dir() / "models" / "landmark_classifier.pt"
    assert inference.default_model_path().parent.parent == tmp_path
    monkeypatch.delenv("LANDMARKLIB_CACHE")
    assert inference.default_model_path() == data.cache_dir() / "models" / "landmark_classifier.pt"
