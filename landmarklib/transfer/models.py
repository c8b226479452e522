"""Transfer-learning models: a pre-trained backbone with a new classifier head, and the
fine-tuned variant. These classes are all a model file needs (:mod:`landmarklib.export`).

A network trained on ImageNet has already learnt edges, textures and shapes; only its last
layer is specific to ImageNet's 1000 classes. We keep everything else frozen, put a small new
head on top, and train only the head (*feature extraction*):

    photo (3, 224, 224) -> frozen backbone -> features (F,) -> head -> log-probabilities (C,)

**Fine-tuning the top.** Next, the last block(s) of the backbone may train too, starting from
the ImageNet weights. :func:`split_backbone` cuts the backbone into a *trunk* that stays frozen
and a *top* that is fine-tuned. A :class:`FineTunedModel` holds the trunk and one or more
fine-tuned tops, each with its own head ("members"); with several members it averages their
probabilities, an *ensemble*:

    photo -> frozen trunk -> activations (C, h, w) -> [top -> head] x members -> mean

How they are trained cheaply on a CPU (features and activations computed once and cached) is
in :mod:`landmarklib.transfer.features` and :mod:`landmarklib.recipes`.

Taught in notebooks/03_transfer_learning.ipynb.
"""

from __future__ import annotations

import copy
import math
import os
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from landmarklib.backbones import BackboneSpec

# landmarklib.backbones (which imports timm and torchvision) is imported inside the functions
# that need it: the model classes below are all that rebuilding a saved model needs.

__all__ = ["classifier_head", "TransferModel", "build_transfer_model", "transfer_model_from",
           "unfreeze_last", "SPLITTABLE", "split_backbone", "FineTunedTop", "FineTunedModel",
           "build_finetuned_model", "finetuned_model_from"]


def classifier_head(num_features: int, n_classes: int, hidden: int = 512,
                    dropout: float = 0.3) -> nn.Sequential:
    """The new head: Linear -> ReLU -> Dropout -> Linear -> LogSoftmax.

    Args:
        num_features: size of the backbone's feature vector (``spec.num_features``).
        n_classes: number of landmarks.
        hidden: width of the hidden layer; 0 gives a plain linear classifier
            (Dropout -> Linear -> LogSoftmax).
        dropout: dropout probability before the last Linear layer.

    Returns:
        A module mapping float32 ``(N, num_features)`` to log-probabilities ``(N, n_classes)``.
    """
    if hidden == 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, n_classes),
                             nn.LogSoftmax(dim=1))
    return nn.Sequential(
        nn.Linear(num_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
        nn.LogSoftmax(dim=1),
    )


class TransferModel(nn.Module):
    """A backbone and a head: ``forward`` maps normalised photos ``(N, 3, H, W)`` float32 to
    log-probabilities ``(N, C)``.

    While the backbone is frozen (no parameter requires a gradient), ``model.train()`` leaves
    it in eval mode: its BatchNorm statistics stay those learnt on ImageNet and its dropout
    stays off. Only the head trains.

    Attributes:
        backbone, head: the two parts.
        spec: the backbone's :class:`~landmarklib.backbones.BackboneSpec` (input size, mean,
            std); ``None`` for a model rebuilt from a file (those are in the file).
        config: the arguments of :func:`build_transfer_model` that rebuild this architecture.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, spec: BackboneSpec | None,
                 config: dict | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.spec = spec
        self.config = dict(config or {"backbone": spec.name})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def classify_and_embed(self, images: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities and logits ``(N, C)`` (the head's scores before its log-softmax),
        and the photos' embeddings ``(N, F)``: the backbone's features, L2-normalised (a dot
        product of two embeddings is a cosine similarity)."""
        features = self.backbone(images)
        logits = self.head[:-1](features)
        return self.head[-1](logits), logits, nn.functional.normalize(features, dim=1)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if not any(p.requires_grad for p in self.backbone.parameters()):
            self.backbone.eval()
        return self


def build_transfer_model(
    n_classes: int,
    backbone: str = "efficientnet_lite0",
    hidden: int = 512,
    dropout: float = 0.3,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
) -> TransferModel:
    """A pre-trained backbone, frozen, with a new head for ``n_classes`` landmarks.

    Args:
        n_classes: classes of the new head.
        backbone: a name from :data:`landmarklib.backbones.BACKBONES`.
        hidden, dropout: see :func:`classifier_head`.
        pretrained, weights_path: see :func:`landmarklib.backbones.create_backbone`.

    Returns:
        A :class:`TransferModel` whose only trainable parameters are the head's. Give only
        ``model.head.parameters()`` (or the parameters with ``requires_grad``) to the optimiser.
    """
    from landmarklib.backbones import create_backbone

    features, spec = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path)
    return transfer_model_from(features, n_classes, backbone, hidden, dropout, spec)


def transfer_model_from(features: nn.Module, n_classes: int, backbone: str,
                        hidden: int = 512, dropout: float = 0.3,
                        spec: BackboneSpec | None = None) -> TransferModel:
    """:func:`build_transfer_model` around a backbone already built (``features``, which
    gets frozen): also how :mod:`landmarklib.export` rebuilds a saved model.

    Args:
        features: maps ``(N, 3, H, W)`` to ``(N, F)``; ``F`` is ``spec.num_features``, or
            ``features.num_features`` without a spec.
        backbone: its registry name (recorded in ``config``).
    """
    features.requires_grad_(False)
    features.eval()
    num_features = spec.num_features if spec is not None else features.num_features
    head = classifier_head(num_features, n_classes, hidden, dropout)
    config = {"backbone": backbone, "hidden": hidden, "dropout": dropout}
    return TransferModel(features, head, spec, config)


def unfreeze_last(model: TransferModel, blocks: int = 1) -> int:
    """Make the last ``blocks`` blocks of the backbone trainable again, for fine-tuning.

    "Blocks" are the backbone's last top-level children that hold parameters (for Lite0: the
    head convolution and its BatchNorm count as one block each, then ``blocks[-1]``, ...).
    This fine-tunes on photos, running the whole backbone every epoch; on a CPU, prefer
    :func:`split_backbone` and :class:`FineTunedModel`, which run only the top on cached
    activations. Start from a trained head (a random one sends large, noisy gradients into the
    pre-trained weights), and try a few learning rates: :func:`finetuning_optimizer` gives the
    values that worked on landmarks44.

    Returns:
        The number of scalar weights made trainable.
    """
    parts = [m for m in _blocks_of(model.backbone) if any(True for _ in m.parameters())]
    count = 0
    for part in parts[-blocks:]:
        for parameter in part.parameters():
            parameter.requires_grad = True
            count += parameter.numel()
    return count


def _blocks_of(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's top-level children, with a ``blocks``/``features`` stage list expanded."""
    parts = []
    for name, child in backbone.named_children():
        if name in ("blocks", "features", "layer4") and isinstance(child, nn.Sequential):
            parts.extend(child.children())
        else:
            parts.append(child)
    return parts


#: Registry backbones that :func:`split_backbone` can cut (their ``forward`` runs their children
#: in order); torchvision's VGG and EfficientNet flatten in between.
SPLITTABLE = ("efficientnet_lite0", "resnet18", "resnet50")


def split_backbone(backbone: nn.Module, top_blocks: int = 3) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut a backbone into a frozen *trunk* and a *top* to fine-tune.

    The backbone's parts are its top-level children in order, with its stage list expanded
    (see :func:`unfreeze_last`); the top is the last ``top_blocks`` parts that hold weights,
    and everything after them (pooling, flattening). For Lite0, ``top_blocks=3`` makes the
    top ``blocks[6]`` (one inverted-residual block, 192 -> 320 channels at 7x7), ``conv_head``
    (1x1, 320 -> 1280) and ``bn2``: 1.0 M of its 3.4 M weights. The modules are shared, not
    copied: ``top(trunk(x))`` equals ``backbone(x)``.

    Only backbones whose ``forward`` runs their children one after the other can be cut
    (timm's EfficientNets, torchvision's ResNets); torchvision's VGG and EfficientNet flatten
    between two children.

    Args:
        backbone: a network from :func:`landmarklib.backbones.create_backbone`.
        top_blocks: how many parts with weights go to the top (at least 1).

    Returns:
        ``(trunk, top)``: the trunk maps float32 ``(N, 3, H, W)`` photos to activation maps
        ``(N, C, h, w)``; the top maps those to features ``(N, F)``.

    Raises:
        ValueError: ``top_blocks`` out of range, or a backbone that cannot be cut this way.
    """
    if type(backbone).__name__ in ("VGG", "EfficientNet") and hasattr(backbone, "avgpool"):
        raise ValueError(f"cannot cut torchvision's {type(backbone).__name__} into trunk and "
                         "top (its forward flattens between two children); use it frozen, "
                         "with members=0")
    parts = _blocks_of(backbone)
    with_weights = [i for i, part in enumerate(parts) if any(True for _ in part.parameters())]
    if not 1 <= top_blocks < len(with_weights):
        raise ValueError(f"top_blocks must be between 1 and {len(with_weights) - 1}, "
                         f"not {top_blocks}")
    cut = with_weights[-top_blocks]
    return nn.Sequential(*parts[:cut]), nn.Sequential(*parts[cut:], nn.Flatten())


class FineTunedTop(nn.Module):
    """One member of a :class:`FineTunedModel`: a copy of the backbone's top and a head.

    ``forward`` maps activation maps ``(N, C, h, w)`` from the trunk to log-probabilities
    ``(N, classes)``. In training mode the BatchNorm layers of the top stay in eval mode: they
    keep the statistics learnt on ImageNet's millions of photos rather than re-estimating them
    from batches of 64 (only their scale and shift weights train).
    """

    def __init__(self, top: nn.Module, head: nn.Module):
        super().__init__()
        self.top = top
        self.head = head

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return self.head(self.top(activations))

    def train(self, mode: bool = True) -> FineTunedTop:
        super().train(mode)
        for module in self.top.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


class FineTunedModel(nn.Module):
    """A frozen trunk and one or more fine-tuned members (:class:`FineTunedTop`).

    ``forward`` maps normalised photos ``(N, 3, H, W)`` float32 to log-probabilities
    ``(N, C)``: the log of the mean of the members' probabilities (one member: its own
    log-probabilities). Averaging members trained from different random starts is an
    ensemble; their mistakes differ, so the average makes fewer.

    Attributes:
        trunk, members: the parts; ``members`` is an :class:`~torch.nn.ModuleList`.
        spec: the backbone's :class:`~landmarklib.backbones.BackboneSpec`; ``None`` for a
            model rebuilt from a file.
        config: the arguments of :func:`build_finetuned_model` that rebuild this architecture.
    """

    def __init__(self, trunk: nn.Module, members: list[FineTunedTop],
                 spec: BackboneSpec | None, config: dict | None = None):
        super().__init__()
        self.trunk = trunk
        self.members = nn.ModuleList(members)
        self.spec = spec
        self.config = dict(config or {"backbone": spec.name})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.from_activations(self.trunk(images))

    def from_activations(self, activations: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(N, C)`` from the trunk's activation maps ``(N, C', h, w)``."""
        return _mean_probability([member(activations) for member in self.members])

    def classify_and_embed(self, images: torch.Tensor, imagenet: bool = False
                           ) -> tuple[torch.Tensor, ...]:
        """Log-probabilities ``(N, C)`` (of the members' mean probability), logits ``(N, C)``
        (the members' mean logits, for energy scores) and the photos' embeddings ``(N, F)``:
        each member's features (its top's output) L2-normalised, averaged over the members,
        and normalised again (a dot product of two embeddings is then a cosine similarity).

        With ``imagenet=True``, a fourth tensor: the **ImageNet embeddings** ``(N, F')``, the
        frozen trunk's activation maps averaged over the image and L2-normalised: features
        learnt on ImageNet alone, never tuned to the landmarks, and free (the trunk runs
        anyway). They tell photos of no landmark from landmarks better than the fine-tuned
        embeddings do (the score ``"imagenet_knn"`` of :mod:`landmarklib.calibration`)."""
        activations = self.trunk(images)
        features = [member.top(activations) for member in self.members]
        logits = [m.head[:-1](f) for m, f in zip(self.members, features)]
        log_probs = _mean_probability([m.head[-1](lg) for m, lg in zip(self.members, logits)])
        unit = [nn.functional.normalize(f, dim=1) for f in features]
        outputs = (log_probs, torch.stack(logits).mean(0),
                   nn.functional.normalize(torch.stack(unit).mean(0), dim=1))
        if imagenet:
            outputs += (nn.functional.normalize(activations.mean((2, 3)), dim=1),)
        return outputs

    def train(self, mode: bool = True) -> FineTunedModel:
        super().train(mode)
        self.trunk.eval()
        return self


def _mean_probability(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """The log of the members' mean probability, from their log-probabilities ``(N, C)``."""
    if len(log_probs) == 1:
        return log_probs[0]
    return torch.logsumexp(torch.stack([lp.float() for lp in log_probs]), dim=0) - math.log(
        len(log_probs))


def build_finetuned_model(
    n_classes: int,
    backbone: str = "efficientnet_lite0",
    hidden: int = 512,
    dropout: float = 0.5,
    members: int = 1,
    top_blocks: int = 3,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
) -> FineTunedModel:
    """A frozen trunk and ``members`` trainable copies of the top, each with a new head.

    Args:
        n_classes: classes of the heads.
        backbone: a name from :data:`landmarklib.backbones.BACKBONES` that
            :func:`split_backbone` can cut.
        hidden, dropout: see :func:`classifier_head`.
        members: how many tops (and heads) to fine-tune (at least 1); more than one is an
            ensemble.
        top_blocks: see :func:`split_backbone`.
        pretrained, weights_path: see :func:`landmarklib.backbones.create_backbone`.

    Returns:
        A :class:`FineTunedModel` whose trunk is frozen; every member's top and head train.

    Raises:
        ValueError: ``members < 1``; a backbone not in :data:`SPLITTABLE` (checked before
            anything is built or downloaded); ``top_blocks`` out of range.
    """
    if backbone not in SPLITTABLE:
        raise ValueError(f"{backbone} cannot be cut into trunk and top, so it cannot be "
                         f"fine-tuned here (choose from {', '.join(SPLITTABLE)}); use it "
                         "frozen (members=0)")
    if members < 1:
        raise ValueError(f"a fine-tuned model needs at least 1 member, not {members}")
    from landmarklib.backbones import create_backbone

    features, spec = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path)
    return finetuned_model_from(features, n_classes, backbone, hidden, dropout, members,
                                top_blocks, spec)


def finetuned_model_from(features: nn.Module, n_classes: int, backbone: str,
                         hidden: int = 512, dropout: float = 0.5, members: int = 1,
                         top_blocks: int = 3,
                         spec: BackboneSpec | None = None) -> FineTunedModel:
    """:func:`build_finetuned_model` around a backbone already built (``features``): also
    how :mod:`landmarklib.export` rebuilds a saved model.

    Args:
        features: maps ``(N, 3, H, W)`` to ``(N, F)``; ``F`` is ``spec.num_features``, or
            ``features.num_features`` without a spec.
        backbone: its registry name (recorded in ``config``).
    """
    if members < 1:
        raise ValueError(f"a fine-tuned model needs at least 1 member, not {members}")
    features.eval()
    trunk, top = split_backbone(features, top_blocks)
    trunk.requires_grad_(False)
    num_features = spec.num_features if spec is not None else features.num_features
    tops = [copy.deepcopy(top).requires_grad_(True) for _ in range(members)]
    heads = [classifier_head(num_features, n_classes, hidden, dropout) for _ in tops]
    config = {"backbone": backbone, "hidden": hidden, "dropout": dropout, "members": members,
              "top_blocks": top_blocks}
    return FineTunedModel(trunk, [FineTunedTop(t, h) for t, h in zip(tops, heads)], spec, config)
