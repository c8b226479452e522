"""Training: the settings of a run, one epoch, evaluation, and the overfit-one-batch check.

Works for any ``nn.Module`` that maps float32 inputs ``(B, ...)`` to float32
log-probabilities ``(B, C)``: the scratch CNN of notebook 02, the transfer-learning model,
head and fine-tuned members of notebook 03. Read top to bottom:

1. **Settings**: :class:`Recipe` (every hyper-parameter of a run in one place, passed whole),
   :func:`seed_everything`, :func:`make_optimizer`, :func:`make_loss`.
2. **One pass over the data**: :func:`train_one_epoch` and :func:`evaluate`, a pair as in
   torchvision's ``references/classification/train.py``.
3. **The overfit-one-batch check**: :func:`overfit_one_batch`.

The epoch loop that puts them together, with checkpoints and the best weights, is
:func:`landmarklib.fitting.fit`.

The number format is the recipe's ``precision`` (:mod:`landmarklib.hardware`), the same on a
CPU and a GPU: float32, or bfloat16 autocast (float16 with loss scaling on older GPUs).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from landmarklib.evaluation import predict, progress_bar
from landmarklib.hardware import autocast, pick_device

__all__ = ["Recipe", "seed_everything", "make_optimizer", "make_loss", "train_one_epoch",
           "evaluate", "OverfitResult", "overfit_one_batch"]

# ------------------------------------------------------------------------------------ settings


@dataclass
class Recipe:
    """Every hyper-parameter of a training run, with the from-scratch recipe as defaults.

    Notebook 02, ``landmarklib train scratch`` and ``benchmarks/train_scratch.py`` all read
    this, so they train the same way. :func:`landmarklib.fitting.fit` takes it whole; for
    another run, change what differs, e.g. ``Recipe(epochs=10, lr=1e-3, weight_decay=0.0,
    scheduler=None, label_smoothing=0.0)``.

    Attributes:
        size: training resolution, in pixels (photos are ``size`` x ``size``).
        batch_size: photos per batch.
        epochs: passes over the training split.
        lr: learning rate; with ``scheduler="onecycle"``, the peak of the schedule.
        weight_decay: AdamW's decoupled weight decay (0 makes AdamW plain Adam).
        scheduler: ``"onecycle"``: the learning rate climbs from ``lr / 25`` to ``lr`` over
            the first 30% of the steps, then anneals to nearly 0, stepped after each batch
            (Smith and Topin, 2017, "Super-Convergence"); ``"plateau"``: halved when the
            validation loss has not improved for 2 epochs; ``None``: constant.
        label_smoothing: share of each target's probability spread over the other classes.
        early_stopping_patience: stop when the validation loss has not improved for this many
            epochs (``None``: never stop early).
        precision: ``"float32"``, ``"bfloat16"``, ``"auto"`` or ``None`` (the default), see
            :mod:`landmarklib.hardware`.
        channels_last: store weights and inputs channels-last (NHWC), faster for convolutions.
        seed: seeds the initial weights, dropout, augmentation and batch order (``None``:
            leave the random generators as they are).
    """

    size: int = 128
    batch_size: int = 32
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.05
    scheduler: str | None = "onecycle"
    label_smoothing: float = 0.1
    early_stopping_patience: int | None = None
    precision: str | None = None
    channels_last: bool = True
    seed: int | None = 0


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (CPU and every GPU).

    The same seed then gives the same initial weights, dropout masks and augmentations.
    Runs on a GPU can still differ in the last digits (some GPU kernels are not
    deterministic); on a CPU with the same number of threads they repeat exactly.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def make_optimizer(
    model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0
) -> torch.optim.AdamW:
    """AdamW over the parameters of ``model`` that require gradients (frozen ones are left out).

    With ``weight_decay=0`` AdamW is exactly Adam. Weight decay in AdamW is *decoupled*
    (Loshchilov and Hutter, 2019): each step shrinks every weight by ``lr * weight_decay`` of
    itself, instead of adding an L2 penalty to the loss (which Adam's per-weight step sizes
    would distort).

    Raises:
        ValueError: no parameter of ``model`` requires gradients.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (are they all frozen?)")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def make_loss(label_smoothing: float = 0.0) -> nn.Module:
    """The loss for a model that outputs log-probabilities.

    ``label_smoothing=0`` gives :class:`~torch.nn.NLLLoss`, the negative log-probability of the
    correct class. Otherwise it gives ``nn.CrossEntropyLoss(label_smoothing=...)``: that loss
    applies log-softmax first, which leaves log-probabilities unchanged, so it is the NLL loss
    against a target that puts ``1 - label_smoothing`` on the correct class and spreads the rest
    evenly over all classes. (``NLLLoss`` has no ``label_smoothing`` option.)

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    if label_smoothing == 0:
        return nn.NLLLoss()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


# ------------------------------------------------------------------------ one pass over data


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    precision: str = "float32",
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[float, float]:
    """Train ``model`` for one pass over ``loader``: forward, loss, backward, optimiser step.
    A batch of fewer than 2 photos is skipped: BatchNorm has no batch statistics for one photo.

    Args:
        model: maps float32 ``(B, ...)`` to log-probabilities ``(B, C)``; set to train mode.
        loader: yields ``(inputs, labels)``: float32 ``(B, ...)`` and int64 ``(B,)``.
        optimizer, loss_fn: the update rule, and the loss of ``(log_probs, labels)`` averaged
            over the batch (default NLL).
        device: where the model is (default: the device of its first parameter).
        scheduler: a learning-rate schedule stepped after every batch (e.g. one-cycle).
        precision, scaler: a resolved precision and, for float16, a gradient scaler
            (:mod:`landmarklib.hardware`).
        progress, desc: a tqdm progress bar with the running loss and accuracy, and its label.

    Returns:
        ``(mean loss per photo, accuracy in [0, 1])``, measured while the weights change.

    Raises:
        FloatingPointError: the loss became NaN or infinite (before any update with it).
        ValueError: the loader gave no batch of at least 2 photos.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loss_fn = loss_fn if loss_fn is not None else nn.NLLLoss()
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = progress_bar(loader, desc, progress)
    for inputs, labels in loader:
        bar.update()
        if len(labels) < 2:
            continue
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, precision):
            log_probs = model(inputs)
            loss = loss_fn(log_probs.float(), labels)
        total_loss += _step(loss, optimizer, scaler) * len(labels)
        if scheduler is not None:
            scheduler.step()
        correct += (log_probs.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.1%}", refresh=False)
    bar.close()
    if seen == 0:
        raise ValueError("the training loader gave no batch of at least 2 photos")
    return total_loss / seen, correct / seen


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler) -> float:
    """Check the loss, backpropagate and update the weights (through the gradient scaler for
    float16); returns the loss as a float."""
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"the training loss became {value}; try a lower learning rate")
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return value


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    precision: str = "float32",
    progress: bool = True,
    desc: str = "valid",
) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on ``loader``, in eval mode, without gradients.

    Eval mode makes dropout keep every feature and BatchNorm use its running statistics;
    the loop is :func:`landmarklib.evaluation.predict`.

    Args:
        model, loader, loss_fn, device, precision, progress, desc: as in
            :func:`train_one_epoch`.

    Returns:
        ``(mean loss, accuracy)``: loss averaged per photo, accuracy a fraction in [0, 1].

    Raises:
        ValueError: the loader gave no photo.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    loss_fn = loss_fn if loss_fn is not None else nn.NLLLoss()
    log_probs, labels = predict(model, loader, device, progress, precision=precision, desc=desc)
    loss = loss_fn(log_probs.float(), labels).item()
    return loss, (log_probs.argmax(dim=1) == labels).float().mean().item()


# ---------------------------------------------------------------------- overfit one batch


@dataclass
class OverfitResult:
    """The outcome of :func:`overfit_one_batch`.

    Attributes:
        losses: the training loss at each step, measured before that step's update
            (length ``steps``).
        threshold: the loss the batch had to be driven below.
        passed: whether the final loss is below ``threshold``.
    """

    losses: list[float]
    threshold: float
    passed: bool

    @property
    def final_loss(self) -> float:
        """The loss at the last step (the one compared with ``threshold``)."""
        return self.losses[-1]

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"{verdict}: loss {self.losses[0]:.3f} -> {self.final_loss:.3f} in "
                f"{len(self.losses)} steps (threshold {self.threshold})")


def overfit_one_batch(
    model: nn.Module | Callable[[], nn.Module],
    batch: tuple[torch.Tensor, torch.Tensor],
    steps: int = 100,
    lr: float = 1e-3,
    threshold: float = 0.05,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> OverfitResult:
    """Can the network learn one batch by heart? A sanity check before a long training run.

    A fresh copy of the network is trained on the same batch again and again (Adam, in train
    mode, so dropout and BatchNorm behave as in real training). A network that is able to learn
    and has no bug drives the loss on 32 photos to nearly 0 within a hundred steps; if it
    cannot, it is too weak or broken (a wrong loss, labels misaligned with images, a missing
    ``optimizer.step()``), and a long training run would be wasted (Karpathy, 2019, "A Recipe
    for Training Neural Networks").

    Args:
        model: a network (deep-copied, so the original keeps its weights) or a function that
            builds a fresh one.
        batch: ``(images, labels)``: float32 ``(B, 3, H, W)`` and int64 ``(B,)``.
        steps: optimiser steps on the batch.
        lr: Adam's learning rate.
        threshold: the check passes if the loss at the last step is below this (0.05 means the
            correct class gets about 95% probability on average).
        device: default :func:`landmarklib.hardware.pick_device`.
        seed: seeds torch (dropout masks; initial weights when ``model`` is a function).

    Returns:
        An :class:`OverfitResult` with the loss after every step and the verdict.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Overfit one batch'.
    """
    if seed is not None:
        torch.manual_seed(seed)
    net = copy.deepcopy(model) if isinstance(model, nn.Module) else model()
    device = pick_device(device)
    net.to(device).train()
    images, labels = batch[0].to(device), batch[1].to(device)
    optimizer = make_optimizer(net, lr=lr)
    loss_fn = nn.NLLLoss()
    losses = []
    for _ in range(steps):
        loss = loss_fn(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return OverfitResult(losses=losses, threshold=threshold, passed=losses[-1] < threshold)
