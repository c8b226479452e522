"""EfficientNet-Lite0 in plain PyTorch: the feature extractor, without timm or torchvision.

Why this module exists: tagging one photo from a new Python process (``landmarklib predict
photo.jpg``) should take at most 3 seconds on a 2-core laptop. Importing torch alone takes
about 1.5 s there; importing timm and torchvision (which timm imports) would add about 2 s
more. Inference therefore rebuilds a saved Lite0 backbone from this file, which imports only
torch. Training still builds the backbone with timm (:mod:`landmarklib.backbones`); the two are
interchangeable because this definition copies timm's ``tf_efficientnet_lite0`` created with
``num_classes=0``: the same module tree, the same ``state_dict`` keys and, in eval mode, the
same output. ``tests/test_efficientnet_lite.py`` checks all three against timm.

Where the architecture comes from:

* EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
  Networks", ICML 2019): a stem convolution, 16 inverted-residual ("MBConv") blocks in 7
  stages, a 1x1 head convolution to 1280 channels, global average pooling.
* EfficientNet-Lite (github.com/tensorflow/tpu, models/official/efficientnet/lite), made for
  mobile processors: no squeeze-and-excitation, ReLU6 instead of Swish, and the stem (32
  channels) and head (1280 channels) kept fixed when the network is scaled. Lite0 is the
  unscaled network, trained at 224 x 224 pixels.
* The weights were trained in TensorFlow, whose "SAME" padding of a strided convolution pads
  more on the bottom and right than on the top and left. PyTorch's ``padding=`` pads both
  sides equally, so the five stride-2 convolutions pad their input themselves
  (:class:`Conv2dSame`, as timm does for its ``tf_`` models); the stride-1 ones pad ``k // 2``
  on every side, which is the same thing.

The children of :class:`EfficientNetLite0` run in order, each feeding the next:
``conv_stem, bn1, blocks[0] ... blocks[6], conv_head, bn2, global_pool, classifier`` (the
classifier is an ``nn.Identity``). So the network can be cut anywhere between them, e.g. into a
frozen trunk (``conv_stem`` to ``blocks[5]``) and a fine-tuned top.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: The 7 stages of EfficientNet-Lite0 (timm's ``arch_def``): ``(block kind, blocks, kernel
#: size, stride of the first block, expansion ratio, output channels)``. "ds" is a depthwise
#: separable convolution (no expansion), "ir" an inverted residual block.
LITE0_STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
NUM_FEATURES = 1280
#: TensorFlow's BatchNorm epsilon, which the weights were trained with (PyTorch's is 1e-5).
BN_EPS = 1e-3


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding, computed for each input size.

    The input ``(N, C, H, W)`` is zero-padded so that the output is ``ceil(H / stride)`` by
    ``ceil(W / stride)``, with the odd pixel of padding (if any) on the bottom and right.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0,
                         groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = same_padding(height, self.kernel_size[0], self.stride[0])
        pad_w = same_padding(width, self.kernel_size[1], self.stride[1])
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def same_padding(size: int, kernel_size: int, stride: int) -> int:
    """Total padding (both sides together, pixels) of TensorFlow's "SAME" convolution."""
    return max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
         groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution with "SAME" padding: a plain ``nn.Conv2d`` padding ``k // 2``
    where that is the same thing (stride 1, odd kernel), else a :class:`Conv2dSame`."""
    if stride == 1 and kernel_size % 2 == 1:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                         padding=kernel_size // 2, groups=groups, bias=False)
    return Conv2dSame(in_channels, out_channels, kernel_size, stride, groups=groups)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm followed by an activation (ReLU6, or none): timm's ``BatchNormAct2d``.

    Its children ``drop`` (always an identity here) and ``act`` hold no weights, so the
    ``state_dict`` keys are those of a plain ``nn.BatchNorm2d``.
    """

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels, eps=BN_EPS)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class DepthwiseSeparableConv(nn.Module):
    """The first block: depthwise ``k x k`` -> BN + ReLU6 -> pointwise 1x1 -> BN.

    The empty children ``aa`` (anti-aliasing), ``se`` (squeeze-excitation: none in Lite) and
    ``drop_path`` are kept so that the module tree is timm's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = conv(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.bn1 = BatchNormAct2d(in_channels)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pw = conv(in_channels, out_channels, 1)
        self.bn2 = BatchNormAct2d(out_channels, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.bn1(self.conv_dw(x))
        x = self.se(self.aa(x))
        x = self.bn2(self.conv_pw(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class InvertedResidual(nn.Module):
    """An MBConv block: expand 1x1 -> BN + ReLU6 -> depthwise ``k x k`` -> BN + ReLU6 ->
    project 1x1 -> BN, plus the input when the shape is unchanged (stride 1, same channels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expansion: int):
        super().__init__()
        mid = in_channels * expansion
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = conv(in_channels, mid, 1)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = conv(mid, mid, kernel_size, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pwl = conv(mid, out_channels, 1)
        self.bn3 = BatchNormAct2d(out_channels, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.bn1(self.conv_pw(x))
        x = self.bn2(self.conv_dw(x))
        x = self.se(self.aa(x))
        x = self.bn3(self.conv_pwl(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class SelectAdaptivePool2d(nn.Module):
    """Global average pooling to a flat vector: ``(N, C, H, W)`` -> ``(N, C)`` (timm's name)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 without its classifier: photos to 1280 features.

    ``forward`` maps float32 ``(N, 3, H, W)`` photos, scaled to [0, 1] and normalised with mean
    0.5 and std 0.5 (the ImageNet weights' convention), to float32 ``(N, 1280)`` features. Any
    ``H, W`` of at least 1 pixel works; the weights were trained at 224 x 224.

    Built with random weights (PyTorch's default initialisation); load trained ones with
    ``load_state_dict``: the keys are those of timm's
    ``timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict()``.

    Attributes:
        num_features: 1280, the length of the feature vector.
    """

    num_features = NUM_FEATURES

    def __init__(self):
        super().__init__()
        self.conv_stem = conv(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = BatchNormAct2d(STEM_CHANNELS)
        stages = []
        channels = STEM_CHANNELS
        for kind, depth, kernel_size, stride, expansion, out_channels in LITE0_STAGES:
            blocks = []
            for index in range(depth):
                block_stride = stride if index == 0 else 1
                if kind == "ds":
                    block = DepthwiseSeparableConv(channels, out_channels, kernel_size,
                                                   block_stride)
                else:
                    block = InvertedResidual(channels, out_channels, kernel_size, block_stride,
                                             expansion)
                blocks.append(block)
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = conv(channels, NUM_FEATURES, 1)
        self.bn2 = BatchNormAct2d(NUM_FEATURES)
        self.global_pool = SelectAdaptivePool2d()
        self.classifier = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        x = self.bn2(self.conv_head(x))
        return self.classifier(self.global_pool(x))
