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

Every public name of those modules is importable from here: ``from landmarklib import data``
then ``data.make_loaders(...)``.
"""

from landmarklib.cache import CACHE_ENV, cache_dir
from landmarklib.data.layout import (
    SPLITS,
    LayoutReport,
    check_layout,
    class_folders,
    class_names,
    image_sizes,
)
from landmarklib.data.loaders import (
    DecodedPhotos,
    Loaders,
    PhotoDataset,
    collate_photos,
    default_num_workers,
    make_loaders,
)
from landmarklib.data.locate import (
    DATA_ENV,
    DATASET_URL,
    TINY_ENV,
    data_root,
    download_landmarks,
    tiny_data_root,
    tiny_mode,
)
from landmarklib.data.resized import resized_copy
from landmarklib.data.split import channel_stats, fingerprint, stratified_split
from landmarklib.data.transforms import (
    CenterCrop,
    Downsize,
    EvalTransform,
    Mirror,
    ToInput,
    denormalize,
    eval_transform,
    train_transform,
)

__all__ = [
    "CACHE_ENV", "cache_dir",
    "SPLITS", "LayoutReport", "check_layout", "class_folders", "class_names", "image_sizes",
    "DecodedPhotos", "Loaders", "PhotoDataset", "collate_photos", "default_num_workers",
    "make_loaders",
    "DATA_ENV", "DATASET_URL", "TINY_ENV", "data_root", "download_landmarks", "tiny_data_root",
    "tiny_mode",
    "resized_copy",
    "channel_stats", "fingerprint", "stratified_split",
    "CenterCrop", "Downsize", "EvalTransform", "Mirror", "ToInput", "denormalize",
    "eval_transform", "train_transform",
]
