"""Complete training runs: from a dataset folder to a saved, evaluated model file.

The notebooks build these step by step; the command line (``landmarklib train``), the
benchmarks and notebook 04's tiny-data fallback call them whole, so all of them train the
same way.

* :func:`train_scratch`: :class:`~landmarklib.models.LandmarkCNN` with the recipe of
  :class:`~landmarklib.training.Recipe` (notebook 02).
* :func:`train_transfer`: the recipe of :class:`TransferRecipe` (notebook 03): a frozen
  backbone's features computed once and cached, a new head trained on them, then members
  whose top of the backbone is fine-tuned on cached activations (:func:`train_head`,
  :func:`finetune_member`, :func:`finetuning_optimizer`), averaged as an ensemble.
* :func:`quick_tiny_model`: a transfer model trained in seconds on the tiny subset.

Every run records the precision it trained in (:mod:`landmarklib.hardware`) with its metrics
and in the model file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from landmarklib import data, evaluation, export, transfer
from landmarklib.cache import default_model_path
from landmarklib.fitting import History, fit
from landmarklib.hardware import resolve_precision
from landmarklib.models import LandmarkCNN, init_weights
from landmarklib.training import Recipe, seed_everything

__all__ = ["RunResult", "TransferRecipe", "train_scratch", "train_transfer", "train_head",
           "finetune_member", "finetuning_optimizer", "quick_tiny_model"]


@dataclass
class RunResult:
    """What a training run produced: the training and deployment files
    (:mod:`landmarklib.export`), the test result, the last
    :class:`~landmarklib.fitting.History`, wall-clock seconds, the resolved precision, and for
    transfer learning the frozen backbone's test result."""

    model_path: Path
    deployment_path: Path
    test: evaluation.EvaluationResult
    history: History
    seconds: float
    precision: str = "float32"
    frozen: evaluation.EvaluationResult | None = None


@dataclass
class TransferRecipe:
    """Hyper-parameters of :func:`train_transfer` (the defaults are those of notebook 03).

    Attributes:
        backbone: a name from :data:`landmarklib.backbones.BACKBONES`.
        hidden, dropout: the head (see :func:`landmarklib.transfer.classifier_head`).
        epochs, lr, weight_decay: AdamW on the head's parameters only, on frozen features.
        label_smoothing: see :func:`landmarklib.training.make_loss`.
        mirrored: also compute features of the mirrored training photos: a second view of
            each photo, for one more pass of the backbone over the training split.
        members: fine-tuned tops after the head (0: stop at the frozen backbone and its head;
            2 or more: an ensemble, see :class:`landmarklib.transfer.FineTunedModel`).
        top_blocks: parts of the backbone in each top (see
            :func:`landmarklib.transfer.split_backbone`).
        finetune_epochs, finetune_lr, finetune_head_lr: one-cycle AdamW on a member's top
            and head together (see :func:`finetuning_optimizer`).
        batch_size: examples per batch for the head and for fine-tuning.
        precision: for feature extraction and fine-tuning (:mod:`landmarklib.hardware`); the
            test split is always measured in float32.
        seed: seeds the heads' weights and the batch order (member ``k`` uses ``seed + k``).
    """

    backbone: str = "efficientnet_lite0"
    hidden: int = 512
    dropout: float = 0.5
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    mirrored: bool = True
    members: int = 2
    top_blocks: int = 3
    finetune_epochs: int = 8
    finetune_lr: float = 3e-3
    finetune_head_lr: float = 3e-4
    batch_size: int = 64
    precision: str | None = None
    seed: int = 0


def train_scratch(
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    recipe: Recipe | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> RunResult:
    """Train :class:`~landmarklib.models.LandmarkCNN` from scratch, evaluate it on the test
    split once (in float32), and save it.

    Args:
        root: dataset folder (default :func:`landmarklib.data.data_root`).
        out: training file to write (default ``scratch_model.pt`` beside the default model);
            its deployment file (``.onnx``) is written beside it.
        recipe: hyper-parameters (default :class:`~landmarklib.training.Recipe`).
        checkpoint: checkpoint file; an interrupted run started again resumes from it.
        progress: progress bars.

    Returns:
        A :class:`RunResult`.
    """
    start = time.perf_counter()
    recipe = recipe or Recipe()
    loaders = data.make_loaders(root, size=recipe.size, batch_size=recipe.batch_size,
                                seed=recipe.seed or 0, progress=progress)
    seed_everything(recipe.seed or 0)
    model = init_weights(LandmarkCNN(n_classes=len(loaders.classes)), "default")
    history = fit(model, loaders.train, loaders.valid, recipe, checkpoint=checkpoint,
                  progress=progress)
    test = evaluation.evaluate_model(model, loaders.test, loaders.class_names, progress=progress)
    precision = resolve_precision(recipe.precision, next(model.parameters()).device)
    out = Path(out) if out else default_model_path().with_name("scratch_model.pt")
    export.save_model(out, model, loaders.classes, recipe.size, loaders.mean, loaders.std,
                      metrics=_metrics(test, history, precision), precision=precision)
    return RunResult(out, export.export_onnx(out), test, history, time.perf_counter() - start,
                     precision)


def train_transfer(
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    recipe: TransferRecipe | None = None,
    pretrained: bool = True,
    progress: bool = True,
) -> RunResult:
    """Transfer learning from a dataset folder to a saved model: the steps of notebook 03.

    1. **Feature extraction**: the frozen trunk runs once over every photo (and the mirrored
       training photos), cached on disk (:func:`landmarklib.transfer.trunk_activations`).
    2. **A new head** trains on the frozen features (:func:`train_head`); with
       ``recipe.members == 0`` this is the model saved.
    3. **Fine-tuning**: each member, a copy of the top with its own head (trained as in step
       2), trains on the cached activations (:func:`finetune_member`); the members' average is
       the model saved.

    Args:
        root, out: dataset folder and training file (defaults: :func:`landmarklib.data.data_root`,
            :func:`landmarklib.cache.default_model_path`); the deployment file goes beside it.
        recipe, progress: hyper-parameters (default :class:`TransferRecipe`); progress bars.
        pretrained: ImageNet weights for the backbone (``False``: random, for tests only).

    Returns:
        A :class:`RunResult`: ``history`` of the last fine-tuning (or of the head), ``frozen``
        the test result of step 2.

    Raises:
        ValueError: before any work, for ``members < 0``, members with a backbone that cannot
            be cut (:data:`landmarklib.transfer.SPLITTABLE`), or an unknown precision.
    """
    start, recipe = time.perf_counter(), recipe or TransferRecipe()
    precision, spec = _check(recipe)
    loaders = data.make_loaders(root, size=spec.input_size, mean=spec.mean, std=spec.std,
                                progress=progress, augment=False, in_memory=False, batch_size=64)
    torch.manual_seed(recipe.seed)
    model, frozen, top, cache_name = _transfer_model(recipe, len(loaders.classes), pretrained)
    # 1. The frozen part's outputs, once per photo; the features are the frozen top's outputs.
    outputs = transfer.trunk_activations(frozen, cache_name, loaders, recipe.mirrored,
                                         progress=progress, precision=recipe.precision)
    features = {split: transfer.run_in_batches(top, x) for split, (x, _) in outputs.items()}
    # 2. A head on frozen features; 3. each member: its own head as in 2, then fine-tuning.
    heads = [model.head] if recipe.members == 0 else [m.head for m in model.members]
    for k, head in enumerate(heads):
        history = train_head(head, features, outputs, recipe, recipe.seed + k)
        if k == 0:
            frozen_test = evaluation.summarize(transfer.run_in_batches(head, features["test"]),
                                               outputs["test"][1], loaders.class_names)
        if recipe.members:
            history = finetune_member(model.members[k], outputs, recipe, k, progress)
    test = frozen_test if not recipe.members else evaluation.summarize(
        transfer.run_in_batches(model.from_activations, outputs["test"][0]), outputs["test"][1],
        loaders.class_names)
    out = Path(out) if out else default_model_path()
    metrics = {**_metrics(test, history, precision), "frozen_test_accuracy": frozen_test.accuracy}
    export.save_model(out, model, loaders.classes, spec.input_size, spec.mean, spec.std,
                      metrics=metrics, precision=precision)
    return RunResult(out, export.export_onnx(out), test, history, time.perf_counter() - start,
                     precision, frozen_test)


def _check(recipe: TransferRecipe):
    """Refuse a recipe that cannot run, before any work; returns the resolved precision and
    the backbone's :class:`~landmarklib.backbones.BackboneSpec`."""
    from landmarklib.backbones import BACKBONES

    if recipe.members < 0:
        raise ValueError(f"members must be 0 (frozen backbone) or more, not {recipe.members}")
    if recipe.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {recipe.backbone!r}; choose from "
                         f"{', '.join(BACKBONES)}")
    if recipe.members and recipe.backbone not in transfer.SPLITTABLE:
        raise ValueError(f"{recipe.backbone} cannot be fine-tuned here (only "
                         f"{', '.join(transfer.SPLITTABLE)}); train it frozen, with members=0")
    return resolve_precision(recipe.precision, "cpu"), BACKBONES[recipe.backbone]


def _transfer_model(recipe: TransferRecipe, n_classes: int, pretrained: bool):
    """``(model, its frozen part, the top to compute features with, cache name)``."""
    if recipe.members == 0:
        model = transfer.build_transfer_model(n_classes, recipe.backbone, recipe.hidden,
                                              recipe.dropout, pretrained=pretrained)
        return model, model.backbone, torch.nn.Identity(), recipe.backbone
    model = transfer.build_finetuned_model(n_classes, recipe.backbone, recipe.hidden,
                                           recipe.dropout, recipe.members, recipe.top_blocks,
                                           pretrained=pretrained)
    return (model, model.trunk, model.members[0].top,  # not trained yet: the frozen top
            f"{recipe.backbone}-trunk{recipe.top_blocks}")


def train_head(
    head: torch.nn.Module,
    features: dict[str, torch.Tensor],
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]],
    recipe: TransferRecipe,
    seed: int | None = None,
) -> History:
    """Train a head from a fresh random start on frozen features (notebook 03, step 2).

    Args:
        head: from :func:`landmarklib.transfer.classifier_head`; its weights are reset.
        features: ``{split: (N, F) float32}``, the frozen backbone's features of
            ``"train"`` (and ``"train, mirrored"``, used as more training examples) and
            ``"valid"``.
        outputs: the matching ``{split: (outputs, labels)}`` of
            :func:`landmarklib.transfer.trunk_activations` (for the labels).
        recipe: ``epochs``, ``lr``, ``weight_decay``, ``label_smoothing``, ``batch_size``.
        seed: seeds the head's weights and the batch order (default ``recipe.seed``).

    Returns:
        The head's :class:`~landmarklib.fitting.History` (the weights of its epoch with the
        lowest validation loss are kept).
    """
    seed = recipe.seed if seed is None else seed
    views = [split for split in ("train", "train, mirrored") if split in features]
    train = (torch.cat([features[split] for split in views]),
             outputs["train"][1].repeat(len(views)))
    train_loader, valid_loader = transfer.feature_loaders(
        train, (features["valid"], outputs["valid"][1]), recipe.batch_size, seed)
    torch.manual_seed(seed)
    _reset(head)
    settings = Recipe(epochs=recipe.epochs, lr=recipe.lr, weight_decay=recipe.weight_decay,
                      scheduler=None, label_smoothing=recipe.label_smoothing,
                      precision="float32", channels_last=False, seed=seed)
    return fit(head, train_loader, valid_loader, settings, progress=False, live_plot=False)


def finetune_member(
    member: transfer.FineTunedTop,
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]],
    recipe: TransferRecipe,
    index: int = 0,
    progress: bool = True,
) -> History:
    """Fine-tune one member of a :class:`~landmarklib.transfer.FineTunedModel`: its top and
    head together, on the trunk's cached activations (notebook 03, step 3).

    Train the member's head first (:func:`train_head`, on the features of its untrained
    top): a random head would send large, noisy gradients into the pre-trained top.

    Args:
        member: a :class:`~landmarklib.transfer.FineTunedTop`.
        outputs: the trunk's activations, from :func:`landmarklib.transfer.trunk_activations`;
            both views of the training photos are used when present.
        recipe: ``finetune_epochs``, ``finetune_lr`` and ``finetune_head_lr`` (one-cycle
            AdamW), ``weight_decay``, ``label_smoothing``, ``batch_size``, ``precision``.
        index: the member's number; the batch order is seeded with ``recipe.seed + index``.
        progress: progress bars.

    Returns:
        The fine-tuning :class:`~landmarklib.fitting.History` (the weights of the epoch with
        the lowest validation loss are kept, the starting weights included).
    """
    seed = recipe.seed + index
    views = [outputs[split][0] for split in ("train", "train, mirrored") if split in outputs]
    train_loader, valid_loader = transfer.activation_loaders(
        views, outputs["train"][1], outputs["valid"], recipe.batch_size, seed)
    settings = Recipe(epochs=recipe.finetune_epochs, scheduler="onecycle",
                      weight_decay=recipe.weight_decay, label_smoothing=recipe.label_smoothing,
                      precision=recipe.precision, channels_last=True, seed=seed)
    optimizer = finetuning_optimizer(member, recipe.finetune_lr, recipe.finetune_head_lr,
                                     recipe.weight_decay)
    return fit(member, train_loader, valid_loader, settings, optimizer=optimizer,
               progress=progress, live_plot=False)


def finetuning_optimizer(member: transfer.FineTunedTop, top_lr: float = 3e-3,
                         head_lr: float = 3e-4, weight_decay: float = 1e-4) -> torch.optim.AdamW:
    """AdamW with one learning rate for a member's top and another for its head.

    The head has already been trained on the frozen features, so it only needs small
    corrections (``head_lr``); the top starts from ImageNet's weights and has to move further
    to serve landmarks (``top_lr``). On landmarks44, 3e-3 for the top and 3e-4 for the head
    gave about a point more test accuracy than 1e-3 for both (one-cycle schedule, 8 epochs;
    ``benchmarks/README.md``).

    Returns:
        An optimiser with two parameter groups, top first.

    Taught in notebooks/03_transfer_learning.ipynb, 'Fine-tuning the top'.
    """
    return torch.optim.AdamW(
        [{"params": list(member.top.parameters()), "lr": top_lr},
         {"params": list(member.head.parameters()), "lr": head_lr}],
        weight_decay=weight_decay,
    )


def _reset(head: torch.nn.Module) -> None:
    """Fresh random weights for every layer of ``head`` (from the current random state)."""
    for layer in head.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


def _metrics(test: evaluation.EvaluationResult, history: History, precision: str) -> dict:
    return {**test.metrics(), "epochs": history.epochs_trained,
            "best_epoch": history.best_epoch, "precision": precision}


def quick_tiny_model(path: str | os.PathLike, progress: bool = False) -> Path:
    """Train a small transfer model on the tiny subset shipped with the package (seconds).

    For demonstrations and tests where no real model has been trained yet (notebook 04 in tiny
    mode): it knows only the tiny subset's 7 landmarks. Trained in float32, so it is the same
    on every machine.

    Args:
        path: the training file to write (``.pt``); the deployment file goes beside it.

    Returns:
        The deployment file written (``.onnx``), what tagging uses.
    """
    recipe = TransferRecipe(hidden=64, epochs=15, batch_size=16, members=0, mirrored=False,
                            precision="float32")
    return train_transfer(data.tiny_data_root(), path, recipe, progress=progress).deployment_path
