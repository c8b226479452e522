"""Where the photos are, and how they become batches of tensors.

Read in this order, the modules follow the photos:

1. :mod:`~landmarklib.data.locate`: **where** the dataset is (:func:`data_root`) and how to
   download it (:func:`download_landmarks`); the tiny subset (:func:`tiny_mode`).
2. :mod:`~landmarklib.data.layout`: **check** the layout and decode every photo once
   (:func:`check_layout`); class names.
3. :mod:`~landmarklib.data.split`: the stratified **split** of ``train/`` into training and
   validation (:func:`stratified_split`) and the training split's **statistics**
   (:func:`channel_stats`).
4. :mod:`~landmarklib.data.transforms`: **what the network sees**: training augmentation and
   the one evaluation preprocessing (:func:`train_transform`, :func:`eval_transform`).
5. :mod:`~landmarklib.data.loaders`: datasets and **loaders** (:func:`make_loaders`).
6. :mod:`~landmarklib.data.resized`: smaller copies of large photos (:func:`resized_copy`).
7. :mod:`~landmarklib.data.shards`: the splits as WebDataset tar files, and loaders that read
   them on many processes (:func:`write_shards`, :func:`shard_loaders`).
8. :mod:`~landmarklib.data.subset`: a dataset folder with some of the classes only
   (:func:`class_subset`), to meet landmarks a model never saw.

Every public name of those modules is importable from here: ``from landmarklib import data``
then ``data.make_loaders(...)``. Each is imported from its module when first used (below, the
names and where they live), so that the torch-free parts (:mod:`~landmarklib.data.locate`) can
be used without importing torch.
"""

from __future__ import annotations

import importlib

#: Every public name of the package, and the module that defines it.
MODULES = {
    "layout": ["SPLITS", "LayoutReport", "check_layout", "class_folders", "class_names",
               "dataset_of_model", "image_sizes"],
    "loaders": ["DecodedPhotos", "Loaders", "PhotoDataset", "collate_photos",
                "default_num_workers", "make_loaders"],
    "locate": ["DATA_ENV", "DATASET_URL", "TINY_ENV", "data_root", "download_landmarks",
               "tiny_data_root", "tiny_mode"],
    "resized": ["resized_copy"],
    "shards": ["MANIFEST", "SHARDS_FORMAT", "ShardLoader", "ShardStream", "read_manifest",
               "shard_loader", "shard_loaders", "write_shards"],
    "split": ["channel_stats", "fingerprint", "split_samples", "stratified_split"],
    "subset": ["class_subset"],
    "transforms": ["CenterCrop", "Downsize", "EvalTransform", "Mirror", "ToInput", "denormalize",
                   "eval_transform", "train_transform"],
}
_HOME = {name: module for module, names in MODULES.items() for name in names}

__all__ = ["CACHE_ENV", "cache_dir", *_HOME]


def __getattr__(name: str):
    """``data.<name>``: the name from its module, imported on first use (PEP 562)."""
    if name in ("CACHE_ENV", "cache_dir"):
        return getattr(importlib.import_module("landmarklib.cache"), name)
    if name not in _HOME:
        raise AttributeError(f"module 'landmarklib.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"landmarklib.data.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
