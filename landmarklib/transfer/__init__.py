"""Transfer learning: a frozen pre-trained backbone with a new head, and fine-tuning its top.

* :mod:`~landmarklib.transfer.models`: the networks (:class:`TransferModel`,
  :class:`FineTunedModel`, :func:`split_backbone`, ...), all a model file needs.
* :mod:`~landmarklib.transfer.features`: feature extraction, computed once and cached on disk
  (:func:`cached_features`, :func:`trunk_activations`), and loaders over cached features.

The training runs that use them are in :mod:`landmarklib.recipes`. Every public name of both
modules is importable from here: ``from landmarklib import transfer``.

Taught in notebooks/03_transfer_learning.ipynb.
"""

from landmarklib.transfer.features import (
    RandomView,
    activation_loaders,
    cached_features,
    extract_features,
    feature_loaders,
    in_order,
    run_in_batches,
    trunk_activations,
)
from landmarklib.transfer.models import (
    SPLITTABLE,
    FineTunedModel,
    FineTunedTop,
    TransferModel,
    build_finetuned_model,
    build_transfer_model,
    classifier_head,
    finetuned_model_from,
    split_backbone,
    transfer_model_from,
    unfreeze_last,
)

__all__ = [
    "RandomView", "activation_loaders", "cached_features", "extract_features",
    "feature_loaders", "in_order", "run_in_batches", "trunk_activations",
    "SPLITTABLE", "FineTunedModel", "FineTunedTop", "TransferModel", "build_finetuned_model",
    "build_transfer_model", "classifier_head", "finetuned_model_from", "split_backbone",
    "transfer_model_from", "unfreeze_last",
]
