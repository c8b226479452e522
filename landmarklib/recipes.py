"""Complete training runs: from a dataset folder to a saved, evaluated model file.

The notebooks build these step by step; the command line (``landmarklib train``), the
benchmarks and notebook 04's tiny-data fallback call them whole, so all of them train the
same way.

* :func:`train_scratch`: :class:`~landmarklib.models.LandmarkCNN` with the recipe of
  :class:`~landmarklib.training.Recipe` (notebook 02).
* :func:`train_transfer`: a frozen pre-trained backbone, its features computed once and cached,
  and a new head trained on them (notebook 03).
* :func:`quick_tiny_model`: a transfer model trained in seconds on the tiny subset.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from landmarklib import data, evaluation, export, training, transfer
from landmarklib.models import LandmarkCNN, init_weights


@dataclass
class RunResult:
    """What a training run produced."""

    model_path: Path
    test: evaluation.EvaluationResult
    history: training.History
    seconds: float


@dataclass
class TransferRecipe:
    """Hyper-parameters of :func:`train_transfer` (the defaults are those of notebook 03).

    Attributes:
        backbone: a name from :data:`landmarklib.backbones.BACKBONES`.
        hidden, dropout: the head (see :func:`landmarklib.transfer.classifier_head`).
        epochs, lr, weight_decay: Adam(W) on the head's parameters only.
        label_smoothing: see :func:`landmarklib.training.make_loss`.
        flip_views: also extract features of the mirrored training photos (twice the
            training examples for the head, for twice the extraction time of the training
            split; no gain measured on landmarks44, so off by default).
        batch_size: feature vectors per batch for the head.
        seed: seeds the head's weights and the batch order.
    """

    backbone: str = "efficientnet_lite0"
    hidden: int = 512
    dropout: float = 0.5
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    flip_views: bool = False
    batch_size: int = 64
    seed: int = 0


def train_scratch(
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    recipe: training.Recipe | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> RunResult:
    """Train :class:`~landmarklib.models.LandmarkCNN` from scratch, evaluate it on the test
    split once, and save it.

    Args:
        root: dataset folder (default :func:`landmarklib.data.data_root`).
        out: model file to write (default ``scratch_model.pt`` beside the default model).
        recipe: hyper-parameters (default :class:`~landmarklib.training.Recipe`).
        checkpoint: checkpoint file; an interrupted run started again resumes from it.
        progress: progress bars.

    Returns:
        A :class:`RunResult`.
    """
    from landmarklib.inference import default_model_path

    start = time.perf_counter()
    recipe = recipe or training.Recipe()
    loaders = data.make_loaders(root, size=recipe.size, batch_size=recipe.batch_size,
                                seed=recipe.seed, progress=progress)
    training.seed_everything(recipe.seed)
    model = init_weights(LandmarkCNN(n_classes=len(loaders.classes)), "default")
    optimizer = training.make_optimizer(model, recipe.lr, recipe.weight_decay)
    history = training.fit(model, loaders.train, loaders.valid, recipe.epochs,
                           optimizer=optimizer, scheduler=recipe.scheduler,
                           label_smoothing=recipe.label_smoothing, checkpoint_path=checkpoint,
                           seed=recipe.seed, channels_last=True, progress=progress)
    test = evaluation.evaluate_model(model, loaders.test, loaders.class_names, progress=progress)
    out = Path(out) if out else default_model_path().with_name("scratch_model.pt")
    export.save_model(out, model, loaders.classes, recipe.size, loaders.mean, loaders.std,
                      metrics=_metrics(test, history))
    return RunResult(out, test, history, time.perf_counter() - start)


def train_transfer(
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    recipe: TransferRecipe | None = None,
    pretrained: bool = True,
    progress: bool = True,
) -> RunResult:
    """Train a new head on a frozen pre-trained backbone, evaluate once on test, and save.

    The backbone's features of every photo are computed once and cached on disk
    (:func:`landmarklib.transfer.cached_features`); the head then trains on them in seconds.

    Args:
        root: dataset folder (default :func:`landmarklib.data.data_root`).
        out: model file to write (default :func:`landmarklib.inference.default_model_path`).
        recipe: hyper-parameters (default :class:`TransferRecipe`).
        pretrained: ImageNet weights for the backbone (``False``: random, for tests only).
        progress: progress bars.

    Returns:
        A :class:`RunResult`.
    """
    from landmarklib.inference import default_model_path

    start = time.perf_counter()
    recipe = recipe or TransferRecipe()
    torch.manual_seed(recipe.seed)
    loaders = data.make_loaders(root, progress=progress, augment=False, in_memory=False,
                                batch_size=64, **_backbone_input(recipe.backbone))
    model = transfer.build_transfer_model(len(loaders.classes), recipe.backbone, recipe.hidden,
                                          recipe.dropout, pretrained=pretrained)
    features = {}
    for split, loader in (("train", loaders.train), ("valid", loaders.valid),
                          ("test", loaders.test)):
        features[split] = transfer.cached_features(model.backbone, recipe.backbone, loader,
                                                   progress=progress, split=split)
    train = features["train"]
    if recipe.flip_views:
        flipped = transfer.flipped(loaders.train)
        extra = transfer.cached_features(model.backbone, recipe.backbone, flipped,
                                         progress=progress, split="train, mirrored")
        train = (torch.cat([train[0], extra[0]]), torch.cat([train[1], extra[1]]))
    train_loader, valid_loader = transfer.feature_loaders(train, features["valid"],
                                                          recipe.batch_size, recipe.seed)
    optimizer = training.make_optimizer(model.head, recipe.lr, recipe.weight_decay)
    history = training.fit(model.head, train_loader, valid_loader, recipe.epochs,
                           optimizer=optimizer, label_smoothing=recipe.label_smoothing,
                           seed=recipe.seed, progress=False, live_plot=False)
    model.eval()
    with torch.inference_mode():
        log_probs = model.head(features["test"][0])
    test = evaluation.summarize(log_probs, features["test"][1], loaders.class_names)
    spec = model.spec
    out = Path(out) if out else default_model_path()
    export.save_model(out, model, loaders.classes, spec.input_size, spec.mean, spec.std,
                      metrics=_metrics(test, history))
    return RunResult(out, test, history, time.perf_counter() - start)


def _backbone_input(name: str) -> dict:
    from landmarklib.backbones import BACKBONES

    spec = BACKBONES[name]
    return {"size": spec.input_size, "mean": spec.mean, "std": spec.std}


def _metrics(test: evaluation.EvaluationResult, history: training.History) -> dict:
    return {"test_accuracy": test.accuracy, "test_correct": test.correct,
            "test_total": test.total, "test_top3": test.top3, "test_top5": test.top5,
            "epochs": len(history), "best_epoch": history.best_epoch}


def quick_tiny_model(path: str | os.PathLike, progress: bool = False) -> Path:
    """Train a small transfer model on the tiny subset shipped with the package (seconds).

    For demonstrations and tests where no real model has been trained yet (notebook 04 in tiny
    mode): it knows only the tiny subset's 7 landmarks.

    Returns:
        The model file written.
    """
    recipe = TransferRecipe(hidden=64, epochs=15, batch_size=16)
    return train_transfer(data.tiny_data_root(), path, recipe, progress=progress).model_path
