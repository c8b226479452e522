"""Networks that map a batch of photos to log-probabilities over the landmarks.

Every model here takes float32 images ``(B, 3, H, W)``, normalised with the training split's
mean and std, and returns float32 **log-probabilities** ``(B, n_classes)``: the last layer is
:class:`~torch.nn.LogSoftmax`, so ``output.exp()`` sums to 1 along dimension 1 and the loss to
train with is :class:`~torch.nn.NLLLoss`. (``nn.CrossEntropyLoss`` is ``LogSoftmax`` followed by
``NLLLoss``; applied to log-probabilities it gives the same value, because the log-softmax of
log-probabilities is the log-probabilities themselves.)

Read top to bottom:

1. :func:`conv_block`, the building brick: convolution, BatchNorm, ReLU.
2. :class:`LandmarkCNN`, the network trained from scratch in notebook 02.
3. :func:`too_small_cnn`, a network too weak to learn even one batch by heart, for the
   overfit-one-batch check.
4. :func:`init_weights`, the two weight initialisations compared in notebook 02.

The pre-trained networks of notebook 03 are in :mod:`landmarklib.backbones`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["conv_block", "LandmarkCNN", "too_small_cnn", "init_weights", "count_parameters"]


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution, then BatchNorm, then ReLU: the brick every layer of the CNN is made of.

    The convolution has no bias: BatchNorm subtracts the mean of each channel right after it,
    which would cancel a bias anyway, and adds its own learnt shift.

    Args:
        in_channels, out_channels: channels of the input and output feature maps.
        stride: 1 keeps the height and width; 2 halves them.

    Returns:
        A module mapping float32 ``(B, in_channels, H, W)`` to
        ``(B, out_channels, ceil(H / stride), ceil(W / stride))``.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Building the network'.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class LandmarkCNN(nn.Module):
    """A convolutional network for landmark photos, trained from scratch.

    The layers, for the default 128 x 128 input and ``widths=(32, 64, 128, 256)``::

        stem     conv 3x3 stride 2, 3 -> 32 channels; 2x2 max-pool    (B, 32, 32, 32)
        stage 1  conv 32 -> 64, conv 64 -> 64; 2x2 max-pool           (B, 64, 16, 16)
        stage 2  conv 64 -> 128, conv 128 -> 128; 2x2 max-pool        (B, 128, 8, 8)
        stage 3  conv 128 -> 256, conv 256 -> 256                     (B, 256, 8, 8)
        head     global average pooling                               (B, 256)
                 dropout, linear 256 -> n_classes                     (B, n_classes)  logits
                 log-softmax                                          (B, n_classes)  log-probs

    Every convolution is followed by BatchNorm and ReLU (see :func:`conv_block`); the last
    layer, the linear classifier, is not.

    Why this shape:

    * The stem shrinks the photo 4 times (stride 2, then max-pool) before anything else: on a
      CPU, layers at full resolution cost the most time, and 3x3 edges and colours need no
      more than that.
    * Each stage doubles the channels and the next max-pool halves the height and width, so
      every stage costs about the same; two convolutions per stage see a 5x5 neighbourhood
      (with one ReLU in between) for the price of fewer weights than one 5x5 convolution.
    * Global average pooling averages each of the last feature maps to one number, so the
      network works for any input of at least 32 pixels, and the classifier has only
      ``widths[-1] * n_classes`` weights, instead of a large fully-connected layer that would
      learn 4,000 photos by heart.

    Args:
        n_classes: number of landmarks.
        widths: channels of the stem, then of each stage.
        convs_per_stage: convolutions in each stage after the stem.
        dropout: probability of zeroing each pooled feature during training.

    Attributes:
        features: the convolutional part, ``(B, 3, H, W)`` -> ``(B, widths[-1], h, w)``.
        classifier: the head, ``(B, widths[-1], h, w)`` -> log-probabilities ``(B, n_classes)``.
        config: ``widths``, ``convs_per_stage`` and ``dropout``, to rebuild the network from a
            model file (:mod:`landmarklib.export`).

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Building the network'.
    """

    def __init__(
        self,
        n_classes: int = 50,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        convs_per_stage: int = 2,
        dropout: float = 0.3,
    ):
        super().__init__()
        if len(widths) < 2 or convs_per_stage < 1:
            raise ValueError(
                f"need at least 2 widths (stem and one stage) and 1 convolution per stage, "
                f"got widths={widths}, convs_per_stage={convs_per_stage}"
            )
        layers = [conv_block(3, widths[0], stride=2), nn.MaxPool2d(2)]
        channels = widths[0]
        for stage, width in enumerate(widths[1:], start=1):
            for _ in range(convs_per_stage):
                layers.append(conv_block(channels, width))
                channels = width
            if stage < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(widths[-1], n_classes),
            nn.LogSoftmax(dim=1),
        )
        self.n_classes = n_classes
        # The arguments that rebuild this architecture (saved in model files, landmarklib.export).
        self.config = {"widths": list(widths), "convs_per_stage": convs_per_stage,
                       "dropout": dropout}
        self.min_size = 2 ** len(widths)  # stride 2, max-pool, then len(widths) - 2 max-pools

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities for a batch of photos.

        Args:
            images: float32 ``(B, 3, H, W)``, normalised, with H and W at least
                ``self.min_size`` (16 for four widths; 32 or more is sensible).

        Returns:
            float32 ``(B, n_classes)`` log-probabilities (``exp`` sums to 1 over dim 1).

        Raises:
            ValueError: the images are smaller than ``self.min_size`` pixels.
        """
        self._check_size(images)
        return self.classifier(self.features(images))

    def classify_and_embed(self, images: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a deployment file outputs (:mod:`landmarklib.export`): log-probabilities and
        logits ``(B, n_classes)`` (the classifier's scores before the log-softmax), and the
        photos' embeddings ``(B, widths[-1])``: the pooled features the classifier reads,
        L2-normalised (unit length), so that the dot product of two is their cosine
        similarity."""
        self._check_size(images)
        pooled = self.classifier[:2](self.features(images))
        logits = self.classifier[2:-1](pooled)
        return self.classifier[-1](logits), logits, nn.functional.normalize(pooled, dim=1)

    def _check_size(self, images: torch.Tensor) -> None:
        if min(images.shape[-2:]) < self.min_size:
            raise ValueError(
                f"images of {tuple(images.shape[-2:])} pixels are too small for this network "
                f"(at least {self.min_size} x {self.min_size})")


def too_small_cnn(n_classes: int = 50, channels: int = 2) -> nn.Sequential:
    """A network too weak to learn anything much: one convolution with 2 channels, then global
    average pooling, then a linear classifier.

    Each photo is summarised by just ``channels`` numbers (the average of each feature map)
    before the classifier: too little to learn 32 photos of 20-odd landmarks by heart. It exists
    to *fail* the overfit-one-batch check (:func:`landmarklib.training.overfit_one_batch`),
    showing what a too-weak network looks like. (Measured on a batch of 32 landmarks44 photos
    at 128 px: the loss goes from 3.8 to 3.6 in 100 steps at Adam's learning rate 0.001, where
    :class:`LandmarkCNN` reaches 0.01; even 500 steps at 0.01 leave it above 1.3.)

    Args:
        n_classes: number of landmarks.
        channels: feature maps of the single convolution.

    Returns:
        A module mapping float32 ``(B, 3, H, W)`` to log-probabilities ``(B, n_classes)``.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Overfit one batch'.
    """
    return nn.Sequential(
        nn.Conv2d(3, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, n_classes),
        nn.LogSoftmax(dim=1),
    )


def init_weights(model: nn.Module, scheme: str = "custom", seed: int | None = None) -> nn.Module:
    """Re-initialise the weights of every convolution and linear layer, in place.

    Schemes:

    * ``"custom"``: weights drawn from a normal distribution with mean 0 and standard deviation
      ``1 / sqrt(n_inputs)``, biases zero. ``n_inputs`` is the fan-in, the number of inputs
      each output sums over: ``in_channels * kernel_height * kernel_width`` for a convolution
      (divided by ``groups``), ``in_features`` for a linear layer. (The original project's
      custom initialisation.)
    * ``"default"``: PyTorch's own initialisation, by calling ``reset_parameters()`` on every
      layer that has it (Kaiming-uniform with ``a = sqrt(5)`` for convolutions and linear
      layers, ones and zeros for BatchNorm).

    BatchNorm layers are reset to weight 1, bias 0 and fresh running statistics in both
    schemes, so that the two runs compared in notebook 02 differ only in the weights.

    Args:
        model: any module; it is changed in place.
        scheme: ``"custom"`` or ``"default"``.
        seed: if given, seeds torch's random generator first, so the same seed gives the same
            weights.

    Returns:
        The same ``model``, for chaining (``init_weights(LandmarkCNN(), "custom")``).

    Raises:
        ValueError: unknown scheme.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Weight initialisation'.
    """
    if scheme not in ("custom", "default"):
        raise ValueError(f"scheme must be 'custom' or 'default', not {scheme!r}")
    if seed is not None:
        torch.manual_seed(seed)
    for module in model.modules():
        if scheme == "custom" and isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()  # in_channels/groups * kh * kw, or in_features
            with torch.no_grad():
                module.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.zero_()
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()  # the default scheme; BatchNorm (with its statistics) in both
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Count a network's scalar weights: ``(trainable, frozen)``, by ``requires_grad``.

    Shows whether freezing worked (see :func:`landmarklib.backbones.freeze`): a frozen
    backbone's weights are all in the second number.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Building the network'.
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return trainable, frozen
