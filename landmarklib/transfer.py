"""Transfer learning: a frozen pre-trained backbone with a new classifier head.

A network trained on ImageNet has already learnt edges, textures and shapes; only its last
layer is specific to ImageNet's 1000 classes. We keep everything else frozen, put a small new
head on top, and train only the head:

    photo (3, 224, 224) -> frozen backbone -> features (F,) -> head -> log-probabilities (C,)

Because a frozen backbone without augmentation maps each photo to the same features every
epoch, :func:`extract_features` computes them once and caches them on disk; the head then
trains on the feature vectors in seconds (:func:`feature_loaders`). :func:`unfreeze_last`
opens the last block(s) of the backbone for an optional fine-tuning step at a lower learning
rate, which runs on photos, with augmentation.

Taught in notebooks/03_transfer_learning.ipynb.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from landmarklib.backbones import BackboneSpec, create_backbone, freeze
from landmarklib.data import Transformed, cache_dir


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
        spec: the backbone's :class:`~landmarklib.backbones.BackboneSpec` (input size, mean, std).
        config: the arguments of :func:`build_transfer_model` that rebuild this architecture.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, spec: BackboneSpec,
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
    features, spec = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path)
    freeze(features)
    features.eval()
    head = classifier_head(spec.num_features, num_classes, hidden, dropout)
    config = {"backbone": backbone, "hidden": hidden, "dropout": dropout}
    return TransferModel(features, head, spec, config)


def unfreeze_last(model: TransferModel, blocks: int = 1) -> int:
    """Make the last ``blocks`` blocks of the backbone trainable again, for fine-tuning.

    "Blocks" are the backbone's last top-level children that hold parameters (for Lite0: the
    head convolution and its BatchNorm count as one block each, then ``blocks[-1]``, ...).
    Fine-tune with a learning rate about ten times lower than the head's, so the pre-trained
    weights move only a little.

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

    Returns:
        ``(features, labels)``: float32 ``(N, F)`` and int64 ``(N,)``, on the CPU.
    """
    device = torch.device(device)
    if bfloat16 is None:
        bfloat16 = fast_bfloat16(device)
    backbone = backbone.to(device).eval().to(memory_format=torch.channels_last)
    features, labels = [], []
    for images, targets in tqdm(loader, desc=desc, disable=not progress):
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bfloat16):
            features.append(backbone(images).float().cpu())
        labels.append(targets)
    # Concatenated outside inference mode: ordinary tensors, usable to train the head.
    return torch.cat(features), torch.cat(labels)


def fast_bfloat16(device: torch.device | str) -> bool:
    """True where bfloat16 autocast speeds up convolutions: CUDA, or a CPU that oneDNN says
    supports bfloat16 natively (elsewhere it is emulated, and slower)."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def cached_features(
    backbone: nn.Module,
    backbone_name: str,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    progress: bool = True,
    split: str = "",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_features`, computed once and then read from disk.

    The cache file is ``<cache_dir()>/features/<backbone_name>-<key>.pt``, where the key hashes
    the backbone's weights, the files the loader reads (paths, sizes, modification times, in
    loader order) and the transform's description, so other weights (say, after
    fine-tuning), new photos or another input size give a new file. Written
    atomically; read with ``weights_only=True``.

    Args:
        backbone, loader, device, progress: see :func:`extract_features`.
        backbone_name: the registry name of the backbone (part of the cache key).
        split: a label for the progress bar ("train", "test", ...).

    Returns:
        ``(features, labels)``: float32 ``(N, F)`` and int64 ``(N,)``.
    """
    key = hashlib.sha256((_weights_key(backbone) + _loader_key(loader)).encode()).hexdigest()[:20]
    path = cache_dir() / "features" / f"{backbone_name}-{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["features"], saved["labels"]
    features, labels = extract_features(backbone, loader, device, progress,
                                        desc=f"Features of {split or 'photos'}")
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


def flipped(loader: DataLoader) -> DataLoader:
    """The same photos in the same order, mirrored left to right: a second view of each
    training photo for the head, at the cost of one more pass of feature extraction.

    Args:
        loader: a loader made by :func:`landmarklib.data.make_loaders` (its dataset is a
            :class:`~landmarklib.data.Transformed`).
    """
    dataset = loader.dataset
    mirror = v2.Compose([dataset.transform, v2.RandomHorizontalFlip(p=1.0)])
    return DataLoader(Transformed(dataset.dataset, mirror), batch_size=loader.batch_size,
                      num_workers=loader.num_workers, persistent_workers=loader.num_workers > 0)


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
