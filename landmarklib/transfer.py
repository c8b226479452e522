"""Transfer learning: a frozen pre-trained backbone with a new classifier head.

A network trained on ImageNet has already learnt edges, textures and shapes; only its last
layer is specific to ImageNet's 1000 classes. We keep everything else frozen, put a small new
head on top, and train only the head:

    photo (3, 224, 224) -> frozen backbone -> features (F,) -> head -> log-probabilities (C,)

Because a frozen backbone without augmentation maps each photo to the same features every
epoch, :func:`extract_features` computes them once and caches them on disk; the head then
trains on the feature vectors in seconds (:func:`feature_loaders`).

**Fine-tuning the top.** Next, the last block(s) of the backbone may train too, starting from
the ImageNet weights. :func:`split_backbone` cuts the backbone into a *trunk* that stays frozen and a
*top* that is fine-tuned; the trunk's outputs (activation maps, e.g. ``(192, 7, 7)`` for
Lite0) are computed once and cached like the features, so an epoch runs only the top: seconds
instead of minutes on a CPU. A :class:`FineTunedModel` holds the trunk and one or more
fine-tuned tops, each with its own head ("members"); with several members it averages their
probabilities, an *ensemble*.

    photo -> frozen trunk -> activations (C, h, w) -> [top -> head] x members -> mean

Taught in notebooks/03_transfer_learning.ipynb.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from pathlib import Path

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from landmarklib.cache import cache_dir
from landmarklib.training import fast_bfloat16, progress_bar

if TYPE_CHECKING:
    from landmarklib.backbones import BackboneSpec

# landmarklib.backbones and landmarklib.data (which import timm and torchvision, about 2 s on
# a 2-core machine) are imported inside the functions that need them: the model classes
# below are all that landmarklib.export needs to rebuild a saved model for inference.


def classifier_head(num_features: int, num_classes: int, hidden: int = 512,
                    dropout: float = 0.3) -> nn.Sequential:
    """The new head: Linear -> ReLU -> Dropout -> Linear -> LogSoftmax.

    Args:
        num_features: size of the backbone's feature vector (``spec.num_features``).
        num_classes: number of landmarks.
        hidden: width of the hidden layer; 0 gives a plain linear classifier
            (Dropout -> Linear -> LogSoftmax).
        dropout: dropout probability before the last Linear layer.

    Returns:
        A module mapping float32 ``(N, num_features)`` to log-probabilities ``(N, num_classes)``.
    """
    if hidden == 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes),
                             nn.LogSoftmax(dim=1))
    return nn.Sequential(
        nn.Linear(num_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
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

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        if not any(p.requires_grad for p in self.backbone.parameters()):
            self.backbone.eval()
        return self


def build_transfer_model(
    num_classes: int,
    backbone: str = "efficientnet_lite0",
    hidden: int = 512,
    dropout: float = 0.3,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
) -> TransferModel:
    """A pre-trained backbone, frozen, with a new head for ``num_classes`` landmarks.

    Args:
        num_classes: classes of the new head.
        backbone: a name from :data:`landmarklib.backbones.BACKBONES`.
        hidden, dropout: see :func:`classifier_head`.
        pretrained, weights_path: see :func:`landmarklib.backbones.create_backbone`.

    Returns:
        A :class:`TransferModel` whose only trainable parameters are the head's. Give only
        ``model.head.parameters()`` (or the parameters with ``requires_grad``) to the optimiser.
    """
    from landmarklib.backbones import create_backbone

    features, spec = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path)
    return transfer_model_from(features, num_classes, backbone, hidden, dropout, spec)


def transfer_model_from(features: nn.Module, num_classes: int, backbone: str,
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
    head = classifier_head(num_features, num_classes, hidden, dropout)
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


# ----------------------------------------------------------------------------- feature cache


def extract_features(
    backbone: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "Extracting features",
    bfloat16: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run every batch of ``loader`` through a frozen backbone once.

    Uses ``torch.inference_mode``, the channels-last memory layout and, where the processor
    computes in bfloat16 natively, bfloat16 autocast: together about 3x faster than a plain
    loop for Lite0 on a 2-core CPU (``benchmarks/feature_extraction.py``).

    Args:
        backbone: maps ``(B, 3, H, W)`` float32 to ``(B, F)`` float32.
        loader: yields ``(images, labels)``, without augmentation.
        device: where to run the backbone.
        bfloat16: autocast to bfloat16; ``None`` uses it on CUDA and on CPUs with native
            bfloat16 support (AVX-512 BF16 or AMX), where it is faster.
        dtype: dtype of the returned outputs (``torch.bfloat16`` halves the memory of large
            activation maps).

    Returns:
        ``(features, labels)``: ``(N, ...)`` in ``dtype`` (``(N, F)`` float32 for a backbone)
        and int64 ``(N,)``, on the CPU.
    """
    device = torch.device(device)
    if bfloat16 is None:
        bfloat16 = fast_bfloat16(device)
    backbone = backbone.to(device).eval().to(memory_format=torch.channels_last)
    features, labels = [], []
    bar = progress_bar(loader, desc, progress, leave=True)
    for images, targets in loader:
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bfloat16):
            features.append(backbone(images).to(dtype).cpu())
        labels.append(targets)
        bar.update()
    bar.close()
    # Concatenated outside inference mode: ordinary tensors, usable to train the head.
    return torch.cat(features), torch.cat(labels)


def cached_features(
    backbone: nn.Module,
    backbone_name: str,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    progress: bool = True,
    split: str = "",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_features`, computed once and then read from disk.

    The cache file is ``<cache_dir()>/features/<backbone_name>-<key>.pt``, where the key hashes
    the backbone's weights, the files the loader reads (paths, sizes, modification times, in
    loader order) and the transform's description, so other weights (say, after
    fine-tuning), new photos or another input size give a new file. Written
    atomically; read with ``weights_only=True``.

    Args:
        backbone, loader, device, progress, dtype: see :func:`extract_features`.
        backbone_name: the registry name of the backbone (the start of the file name); for
            a trunk, e.g. ``"efficientnet_lite0-trunk"``.
        split: a label for the progress bar ("train", "test", ...).

    Returns:
        ``(features, labels)``: ``(N, ...)`` in ``dtype`` and int64 ``(N,)``.
    """
    key = hashlib.sha256((_weights_key(backbone) + _loader_key(loader)
                          + str(dtype)).encode()).hexdigest()[:20]
    path = cache_dir() / "features" / f"{backbone_name}-{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["features"], saved["labels"]
    features, labels = extract_features(backbone, loader, device, progress,
                                        desc=f"Features of {split or 'photos'}", dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"features": features, "labels": labels}, tmp)
    os.replace(tmp, path)
    return features, labels


def _weights_key(module: nn.Module) -> str:
    """Hash of a module's weights and buffers (about 20 ms for Lite0's 3.4 M weights)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _loader_key(loader: DataLoader) -> str:
    """Hash of the photos a loader reads and of its transform."""
    dataset = loader.dataset
    indices = None
    transform = getattr(dataset, "transform", None)
    inner = getattr(dataset, "dataset", dataset)  # Transformed -> Subset or photos
    if hasattr(inner, "indices"):
        indices, inner = list(inner.indices), inner.dataset
    samples = inner.samples if indices is None else [inner.samples[i] for i in indices]
    digest = hashlib.sha256(repr(transform).encode())
    for path, label in samples:
        stat = Path(path).stat()
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def in_order(loader: DataLoader, mirrored: bool = False) -> DataLoader:
    """The photos of ``loader`` in dataset order (not shuffled), optionally mirrored left to
    right.

    Features of two views of the same photos (as they are, and mirrored) line up row by row
    when both come from ``in_order``: row ``i`` of each is photo ``i``. The mirrored view is a
    second training example of each photo, for one more pass of the backbone.

    Args:
        loader: a loader made by :func:`landmarklib.data.make_loaders` (its dataset is a
            :class:`~landmarklib.data.Transformed`).
        mirrored: flip every photo horizontally after its transform.
    """
    from torchvision.transforms import v2

    from landmarklib.data import Transformed

    dataset = loader.dataset
    if mirrored:
        dataset = Transformed(dataset.dataset,
                              v2.Compose([dataset.transform, v2.RandomHorizontalFlip(p=1.0)]))
    # One pass only: no persistent workers (a later loader's forked workers would inherit
    # this one's and fail to shut them down).
    return DataLoader(dataset, batch_size=loader.batch_size, shuffle=False,
                      num_workers=loader.num_workers)


def feature_loaders(
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """Loaders over cached feature vectors, to train the head alone.

    Args:
        train, valid: ``(features (N, F) float32, labels (N,) int64)`` pairs.

    Returns:
        ``(train_loader, valid_loader)``; the training one shuffles with ``seed``.
    """
    return (
        DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True,
                   generator=torch.Generator().manual_seed(seed)),
        DataLoader(TensorDataset(*valid), batch_size=256),
    )


# ---------------------------------------------------------------------- fine-tuning the top


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

    def train(self, mode: bool = True) -> "FineTunedTop":
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
        if len(self.members) == 1:
            return self.members[0](activations)
        log_probs = torch.stack([member(activations).float() for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))

    def train(self, mode: bool = True) -> "FineTunedModel":
        super().train(mode)
        self.trunk.eval()
        return self


def build_finetuned_model(
    num_classes: int,
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
        num_classes: classes of the heads.
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
    return finetuned_model_from(features, num_classes, backbone, hidden, dropout, members,
                                top_blocks, spec)


def finetuned_model_from(features: nn.Module, num_classes: int, backbone: str,
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
    heads = [classifier_head(num_features, num_classes, hidden, dropout) for _ in tops]
    config = {"backbone": backbone, "hidden": hidden, "dropout": dropout, "members": members,
              "top_blocks": top_blocks}
    return FineTunedModel(trunk, [FineTunedTop(t, h) for t, h in zip(tops, heads)], spec, config)


def run_in_batches(module, inputs: torch.Tensor, batch_size: int = 256,
                   bfloat16: bool | None = None) -> torch.Tensor:
    """``module(inputs)`` in inference mode, ``batch_size`` rows at a time, on the CPU.

    Used to turn cached activation maps into features (``run_in_batches(top, activations)``)
    and into log-probabilities.

    Args:
        module: a module (set to eval mode) or a function of a batch, e.g.
            ``model.from_activations``.
        inputs: ``(N, ...)`` of any float dtype (cached activations are bfloat16).
        bfloat16: autocast to bfloat16 (default: where the CPU computes it natively).

    Returns:
        float32 ``(N, ...)``: the module's outputs, an ordinary tensor (usable for training).
    """
    if bfloat16 is None:
        bfloat16 = fast_bfloat16("cpu")
    if isinstance(module, nn.Module):
        module.eval()
    outputs = []
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bfloat16):
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size].float()
            if batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            outputs.append(module(batch).float())
    return torch.cat(outputs).clone()


class RandomView(Dataset):
    """Training examples with several aligned views: item ``i`` is view ``k``'s row ``i``
    with ``k`` drawn at random each time (e.g. a photo's activations as it is or mirrored).

    Args:
        views: tensors of the same shape ``(N, ...)``; row ``i`` of each is the same photo.
        labels: int64 ``(N,)``.
    """

    def __init__(self, views: list[torch.Tensor], labels: torch.Tensor):
        if any(view.shape != views[0].shape for view in views) or len(labels) != len(views[0]):
            raise ValueError("every view needs the same shape, and one label per row")
        self.views, self.labels = views, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        view = self.views[int(torch.randint(len(self.views), ()))]
        return view[index].float(), self.labels[index]


def activation_loaders(
    train_views: list[torch.Tensor],
    train_labels: torch.Tensor,
    valid: tuple[torch.Tensor, torch.Tensor],
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """Loaders over cached trunk activations, to fine-tune a :class:`FineTunedTop`.

    Args:
        train_views: aligned views of the training photos' activations (see
            :class:`RandomView`), e.g. ``[as_is, mirrored]``, each ``(N, C, h, w)``.
        train_labels: int64 ``(N,)``.
        valid: ``(activations, labels)`` of the validation photos.

    Returns:
        ``(train_loader, valid_loader)`` yielding float32 activations and int64 labels; the
        training one shuffles with ``seed``.
    """
    return (
        DataLoader(RandomView(train_views, train_labels), batch_size=batch_size, shuffle=True,
                   generator=torch.Generator().manual_seed(seed)),
        DataLoader(RandomView([valid[0]], valid[1]), batch_size=256),
    )


def trunk_activations(
    trunk: nn.Module,
    name: str,
    loaders,
    mirrored: bool = True,
    device: torch.device | str = "cpu",
    progress: bool = True,
    dtype: torch.dtype = torch.bfloat16,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The frozen trunk's outputs for every photo of every split, computed once and cached.

    Args:
        trunk: the frozen part, e.g. from :func:`split_backbone` (or a whole frozen backbone).
        name: the start of the cache files' names, e.g. ``"efficientnet_lite0-trunk3"``.
        loaders: a :class:`landmarklib.data.Loaders` without augmentation.
        mirrored: also the training photos mirrored left to right (key ``"train, mirrored"``,
            row ``i`` the same photo as row ``i`` of ``"train"``).
        device, progress: see :func:`extract_features`.
        dtype: dtype kept in memory and on disk; bfloat16 halves the size of activation maps
            (3,520 Lite0 maps of ``(192, 7, 7)``: 66 MB instead of 132 MB).

    Returns:
        ``{"train": (outputs, labels), ["train, mirrored": ...,] "valid": ..., "test": ...}``
        with outputs ``(N, ...)`` in ``dtype`` and labels int64 ``(N,)``, in dataset order.
    """
    splits = [("train", loaders.train, False)]
    if mirrored:
        splits.append(("train, mirrored", loaders.train, True))
    splits += [("valid", loaders.valid, False), ("test", loaders.test, False)]
    return {
        split: cached_features(trunk, name, in_order(loader, flip), device, progress, split,
                               dtype)
        for split, loader, flip in splits
    }


def finetuning_optimizer(member: FineTunedTop, top_lr: float = 3e-3, head_lr: float = 3e-4,
                         weight_decay: float = 1e-4) -> torch.optim.AdamW:
    """AdamW with one learning rate for a member's top and another for its head.

    The head has already been trained on the frozen features, so it only needs small
    corrections (``head_lr``); the top starts from ImageNet's weights and has to move further
    to serve landmarks (``top_lr``). On landmarks44, 3e-3 for the top and 3e-4 for the head
    gave about a point more test accuracy than 1e-3 for both (one-cycle schedule, 8 epochs).

    Returns:
        An optimiser with two parameter groups, top first.
    """
    return torch.optim.AdamW(
        [{"params": list(member.top.parameters()), "lr": top_lr},
         {"params": list(member.head.parameters()), "lr": head_lr}],
        weight_decay=weight_decay,
    )
