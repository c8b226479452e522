"""Feature extraction: what a frozen network computes for every photo, once, kept on disk.

A frozen backbone (or trunk) without augmentation maps each photo to the same output every
epoch, so :func:`cached_features` computes the outputs once and stores them; the head (or a
fine-tuned top) then trains on them in seconds (:func:`feature_loaders`,
:func:`activation_loaders`). :func:`trunk_activations` does this for every split of a dataset,
and for a mirrored view of the training photos (a second example of each).

The loop that runs the network is :func:`landmarklib.evaluation.predict`, the project's one
loop over a loader.

Taught in notebooks/03_transfer_learning.ipynb.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from landmarklib.cache import cache_dir
from landmarklib.evaluation import predict
from landmarklib.files import atomic_path
from landmarklib.hardware import resolve_precision

__all__ = ["extract_features", "cached_features", "trunk_activations", "in_order",
           "run_in_batches", "feature_loaders", "RandomView", "activation_loaders"]


def extract_features(
    backbone: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "Extracting features",
    precision: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run every batch of ``loader`` through a frozen backbone once.

    :func:`landmarklib.evaluation.predict` in the channels-last memory layout (faster
    convolutions on CPUs), in the given precision.

    Args:
        backbone: maps ``(B, 3, H, W)`` float32 to ``(B, F)`` features (or to activation maps).
        loader: yields ``(images, labels)``, without augmentation.
        device: where to run the backbone.
        progress, desc: a progress bar and its label.
        precision: see :mod:`landmarklib.hardware` (``None``: the default setting).
        dtype: dtype of the returned outputs (``torch.bfloat16`` halves the memory of large
            activation maps).

    Returns:
        ``(features, labels)``: ``(N, ...)`` in ``dtype`` and int64 ``(N,)``, on the CPU.
    """
    return predict(backbone, loader, device, progress, precision=precision, dtype=dtype,
                   channels_last=True, desc=desc)


def cached_features(
    backbone: nn.Module,
    backbone_name: str,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    progress: bool = True,
    split: str = "",
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_features`, computed once and then read from disk.

    The cache file is ``<cache_dir()>/features/<backbone_name>-<key>.pt``, where the key hashes
    the backbone's weights, the photos the loader reads (paths, sizes, modification times, in
    loader order), its preprocessing, and the precision, so other weights (say, after
    fine-tuning), new photos, another input size or another precision give a new file. Outputs
    computed in bfloat16 are kept in bfloat16 (half the memory and disk), float32 ones in
    float32. Written atomically; read with ``weights_only=True``.

    Args:
        backbone, loader, device, progress, precision: see :func:`extract_features`.
        backbone_name: the start of the file name, e.g. ``"efficientnet_lite0-trunk3"``.
        split: a label for the progress bar ("train", "test", ...).

    Returns:
        ``(features, labels)``: ``(N, ...)`` and int64 ``(N,)``.
    """
    precision = resolve_precision(precision, device)
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    key = hashlib.sha256(f"{_weights_key(backbone)}\n{loader.dataset.key()}\n{precision}"
                         .encode()).hexdigest()[:20]
    path = cache_dir() / "features" / f"{backbone_name}-{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["features"], saved["labels"]
    features, labels = extract_features(backbone, loader, device, progress,
                                        f"Features of {split or 'photos'}", precision, dtype)
    with atomic_path(path) as tmp:
        torch.save({"features": features, "labels": labels}, tmp)
    return features, labels


def _weights_key(module: nn.Module) -> str:
    """Hash of a module's weights and buffers (SHA-256 of their bytes)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def trunk_activations(
    trunk: nn.Module,
    name: str,
    loaders,
    mirrored: bool = True,
    device: torch.device | str = "cpu",
    progress: bool = True,
    precision: str | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The frozen trunk's outputs for every photo of every split, computed once and cached.

    The training and validation splits are computed in ``precision``; the test split always
    in float32, the precision predictions run in, so that the test accuracy recorded with a
    model is the accuracy its users get.

    Args:
        trunk: the frozen part, e.g. from :func:`landmarklib.transfer.split_backbone` (or a
            whole frozen backbone).
        name: the start of the cache files' names, e.g. ``"efficientnet_lite0-trunk3"``.
        loaders: a :class:`landmarklib.data.Loaders` without augmentation.
        mirrored: also the training photos mirrored left to right (key ``"train, mirrored"``,
            row ``i`` the same photo as row ``i`` of ``"train"``).
        device, progress, precision: see :func:`extract_features`.

    Returns:
        ``{"train": (outputs, labels), ["train, mirrored": ...,] "valid": ..., "test": ...}``
        with outputs ``(N, ...)`` and labels int64 ``(N,)``, in dataset order.
    """
    splits = [("train", loaders.train, False, precision)]
    if mirrored:
        splits.append(("train, mirrored", loaders.train, True, precision))
    splits += [("valid", loaders.valid, False, precision), ("test", loaders.test, False, "float32")]
    return {
        split: cached_features(trunk, name, in_order(loader, flip), device, progress, split, how)
        for split, loader, flip, how in splits
    }


def in_order(loader: DataLoader, mirrored: bool = False) -> DataLoader:
    """The photos of ``loader`` in dataset order (not shuffled), optionally mirrored.

    Features of two views of the same photos (as they are, and mirrored left to right) line up
    row by row when both come from ``in_order``: row ``i`` of each is photo ``i``.

    Args:
        loader: a loader made by :func:`landmarklib.data.make_loaders` (its dataset is a
            :class:`~landmarklib.data.PhotoDataset`).
        mirrored: flip every photo horizontally after its transform
            (:class:`~landmarklib.data.Mirror`).
    """
    from landmarklib.data import Mirror

    dataset = loader.dataset
    if mirrored:
        dataset = dataset.with_transform(Mirror(dataset.transform))
    # One pass only: no persistent workers (a later loader's forked workers would inherit
    # this one's and fail to shut them down).
    return DataLoader(dataset, batch_size=loader.batch_size, shuffle=False,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn)


def run_in_batches(module, inputs: torch.Tensor, batch_size: int = 256,
                   precision: str | None = "float32") -> torch.Tensor:
    """``module(inputs)`` in eval mode, ``batch_size`` rows at a time, on the CPU.

    Turns cached activation maps into features (``run_in_batches(top, activations)``) and
    into log-probabilities (``run_in_batches(model.from_activations, activations)``).

    Args:
        module: a module or a function of a batch, e.g. ``model.from_activations``.
        inputs: ``(N, ...)`` of any float dtype (cached activations may be bfloat16).
        precision: see :mod:`landmarklib.hardware` (default float32).

    Returns:
        float32 ``(N, ...)``: the module's outputs, an ordinary tensor (usable for training).
    """
    rows = TensorDataset(inputs, torch.zeros(len(inputs), dtype=torch.int64))
    outputs, _ = predict(module, DataLoader(rows, batch_size=batch_size), "cpu", False,
                         precision=precision, channels_last=inputs.dim() == 4)
    return outputs


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
    """Loaders over cached trunk activations, to fine-tune a
    :class:`~landmarklib.transfer.FineTunedTop`.

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
