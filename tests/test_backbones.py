"""Tests for landmarklib.backbones. None of them needs the internet."""

import urllib.error

import numpy as np
import pytest
import timm
import torch
import torchvision
from matplotlib import cbook
from PIL import Image

from landmarklib import backbones
from landmarklib.backbones import (
    BACKBONES,
    create_backbone,
    freeze,
    imagenet_class_name,
    lite0_state_dict_to_timm,
    lite0_weights_path,
    load_lite0_imagenet,
)
from landmarklib.models import count_parameters

TORCHVISION_NAMES = ["vgg19", "resnet18", "resnet50", "efficientnet_b0"]


def grace_hopper_batch(mean, std) -> torch.Tensor:
    """matplotlib's bundled sample photo (512 x 600) as a (1, 3, 224, 224) batch.

    Resized to 224 x 224 (bicubic) without cropping: a 256 resize with a centre
    crop cuts off most of the uniform, and the photo is then taken for an
    academic gown (class 400).
    """
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        image = image.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0)


def test_lite0_classifies_grace_hopper_as_military_uniform():
    spec = BACKBONES["efficientnet_lite0"]
    model = load_lite0_imagenet()
    with torch.inference_mode():
        probabilities = model(grace_hopper_batch(spec.mean, spec.std)).softmax(dim=1)[0]
    top_probability, top_class = probabilities.max(dim=0)
    assert top_class.item() == 652
    assert imagenet_class_name(top_class.item()) == "military uniform"
    assert top_probability.item() > 0.3  # 0.46 when written


def test_lite0_mapping_renames_every_key_onto_timm_with_the_same_shape():
    package = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    renamed = lite0_state_dict_to_timm(package)
    timm_keys = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(package) == len(renamed) == len(timm_keys) == 296
    assert renamed.keys() == timm_keys.keys()
    for key, tensor in renamed.items():
        assert tensor.shape == timm_keys[key].shape, key
    # Spot checks of the rule: block 3 is the first block of stage 2, with a 5x5 depthwise conv.
    assert renamed["blocks.2.0.conv_dw.weight"] is package["_blocks.3._depthwise_conv.weight"]
    assert renamed["blocks.0.0.conv_pw.weight"] is package["_blocks.0._project_conv.weight"]
    assert renamed["classifier.bias"] is package["_fc.bias"]


def test_lite0_mapping_rejects_a_key_it_does_not_know():
    with pytest.raises(KeyError):
        lite0_state_dict_to_timm({"_blocks.16._bn0.weight": torch.zeros(1)})


def test_lite0_backbone_gives_pooled_float32_features_with_imagenet_weights():
    model, spec = create_backbone("efficientnet_lite0")
    assert spec.offline and spec.num_features == 1280
    shipped = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(model.conv_stem.weight, shipped["_conv_stem.weight"])
    images = torch.zeros(2, 3, spec.input_size, spec.input_size)
    full = load_lite0_imagenet()
    with torch.inference_mode():
        features = model.eval()(images)
        assert torch.allclose(full.classifier(features), full(images), atol=1e-5)
    assert features.shape == (2, 1280)
    assert features.dtype == torch.float32


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_torchvision_backbone_gives_spec_num_features(name):
    model, spec = create_backbone(name, pretrained=False)
    assert spec.name == name and not spec.offline
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    with torch.inference_mode():
        features = model.eval()(torch.rand(1, 3, spec.input_size, spec.input_size))
    assert features.shape == (1, spec.num_features)
    assert features.dtype == torch.float32


def test_weights_path_loads_a_local_state_dict(tmp_path):
    saved = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(saved, path)
    model, _ = create_backbone("resnet18", weights_path=path)
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, saved["layer4.1.bn2.running_var"])


def test_failed_download_says_so_and_points_to_the_offline_backbone(monkeypatch):
    class UnreachableWeights:
        url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"

        def get_state_dict(self, **kwargs):
            raise urllib.error.URLError("Name or service not known")

    monkeypatch.setitem(backbones._TORCHVISION_WEIGHTS, "resnet18", UnreachableWeights())
    with pytest.raises(RuntimeError, match="no internet") as raised:
        create_backbone("resnet18", pretrained=True)
    assert "efficientnet_lite0" in str(raised.value)
    assert "weights_path" in str(raised.value)


def test_freeze_freezes_every_parameter():
    model, _ = create_backbone("resnet18", pretrained=False)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == (total, 0)
    assert freeze(model) == total
    assert not any(p.requires_grad for p in model.parameters())
    assert count_parameters(model) == (0, total)


def test_unknown_name_raises_value_error_naming_the_known_ones():
    with pytest.raises(ValueError) as raised:
        create_backbone("vgg16")
    for name in BACKBONES:
        assert name in str(raised.value)


def test_imagenet_class_names():
    assert imagenet_class_name(652) == "military uniform"
    assert imagenet_class_name(0) == "tench"
    with pytest.raises(IndexError):
        imagenet_class_name(1000)
