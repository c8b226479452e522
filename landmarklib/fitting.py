"""The epoch loop: :func:`fit` trains a model epoch after epoch and keeps its best weights.

:func:`fit` puts the pieces of :mod:`landmarklib.training` together:

1. it measures the starting weights on the validation split ("epoch 0"), so a run never hands
   back weights worse on validation loss than those it was given;
2. each epoch trains (:func:`~landmarklib.training.train_one_epoch`) and validates
   (:func:`~landmarklib.training.evaluate`), records both in a :class:`History`, prints a line
   and, in a notebook, redraws a live plot (:class:`landmarklib.plots.LivePlot`);
3. after each epoch it writes a checkpoint (:mod:`landmarklib.checkpoints`), so that calling
   ``fit`` again with the same file continues at the first unfinished epoch (after Ctrl-C the
   model holds the half-trained weights of the unfinished epoch until then);
4. it stops early if asked, and finally loads back the weights with the lowest validation
   loss.

The same loop trains on many processes (torchrun, :mod:`landmarklib.distributed`): its
``world`` (:mod:`landmarklib.world`) wraps the model in DistributedDataParallel, reduces the
metrics over the ranks and lets rank 0 alone write the checkpoint. The default, one process,
changes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landmarklib import checkpoints
from landmarklib.hardware import grad_scaler, pick_device, resolve_precision
from landmarklib.training import (
    Recipe,
    evaluate,
    make_loss,
    make_optimizer,
    seed_everything,
    train_one_epoch,
)
from landmarklib.world import World

__all__ = ["History", "fit"]


@dataclass
class History:
    """What happened in each epoch of :func:`fit`, one entry per epoch in every list.

    Epoch 0 is the model as :func:`fit` received it: measured on the validation split before
    any training (its training loss and accuracy are NaN).

    Attributes:
        epoch: the epoch numbers (0, 1, 2, ...).
        train_loss, valid_loss: mean loss per photo (the training one measured while learning).
        train_acc, valid_acc: accuracy, a fraction in [0, 1].
        lr: learning rate of the first parameter group at the start of the epoch.
        seconds: wall-clock time of the epoch, training and validation together.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    valid_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def epochs_trained(self) -> int:
        """The last epoch number (0 before any training)."""
        return self.epoch[-1] if self.epoch else 0

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the lowest validation loss (0: the starting weights); ``None``
        before any."""
        if not self.valid_loss:
            return None
        return self.epoch[int(np.argmin(self.valid_loss))]

    def append(self, **values: float) -> None:
        """Add one epoch: ``history.append(epoch=..., train_loss=..., ...)``, every field."""
        for f in fields(self):
            kind = int if f.name == "epoch" else float
            getattr(self, f.name).append(kind(values[f.name]))

    def to_dict(self) -> dict[str, list]:
        """A plain dict of lists (for JSON, pandas, or a checkpoint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """The inverse of :meth:`to_dict`; keys that are not fields are ignored."""
        history = cls(**{f.name: list(data.get(f.name, [])) for f in fields(cls)})
        if not history.epoch:  # written before epoch numbers were recorded: 1, 2, ...
            history.epoch = list(range(1, len(history.valid_loss) + 1))
        return history

    def line(self, index: int = -1, total: int | None = None) -> str:
        """One line of text about entry ``index`` (default the last), e.g. for a log."""
        i = index % len(self)
        best = " *" if self.best_epoch == self.epoch[i] else ""
        of = f"/{total}" if total else ""
        trained = (f"train loss {self.train_loss[i]:.3f} acc {self.train_acc[i]:6.1%}"
                   if self.epoch[i] else "(the starting weights)".ljust(29))
        return (f"epoch {self.epoch[i]:>3}{of}  {trained}"
                f"  valid loss {self.valid_loss[i]:.3f} acc {self.valid_acc[i]:6.1%}"
                f"  lr {self.lr[i]:.2e}  {self.seconds[i]:5.1f} s{best}")


def fit(
    model: nn.Module,
    train,
    valid: Iterable | None = None,
    recipe: Recipe | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: nn.Module | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    device: torch.device | str | None = None,
    live_plot: bool | None = None,
    progress: bool = True,
    world: World | None = None,
) -> History:
    """Train ``model`` for ``recipe.epochs`` epochs and load back the weights with the lowest
    validation loss, the starting weights ("epoch 0") included (see the module's documentation).
    With ``checkpoint``, a run started again continues at its first unfinished epoch.

    Args:
        model: maps float32 ``(B, ...)`` to log-probabilities ``(B, C)``; trained in place.
        train: the training loader, or a :class:`landmarklib.data.Loaders` (its ``train`` and
            ``valid`` loaders; ``valid`` is then left out).
        valid: the validation loader (the validation split: never the test photos).
        recipe: a :class:`~landmarklib.training.Recipe`: epochs, schedule, label smoothing,
            early stopping, precision, channels-last, seed, and lr and weight decay for the
            default optimiser (default ``Recipe()``).
        optimizer, loss_fn: default :func:`~landmarklib.training.make_optimizer` and
            :func:`~landmarklib.training.make_loss` with the recipe's settings.
        checkpoint, resume: the checkpoint file; ``resume=False`` starts again.
        device, world: default :func:`landmarklib.hardware.pick_device`, and one process.
        live_plot, progress: a plot redrawn per epoch (default: in a notebook), progress bars.

    Returns:
        The :class:`History` of every epoch, from epoch 0 (those before a resume included).

    Raises:
        ValueError: no validation loader, an unknown scheduler or precision, or a one-cycle
            checkpoint planned for another number of epochs. RuntimeError: the checkpoint's
            weights do not fit ``model``. FloatingPointError: the loss became NaN or infinite.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    run = _Run(model, *_train_and_valid(train, valid), recipe or Recipe(), optimizer, loss_fn,
               device, progress, world or World(device))
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        run.resume(checkpoint)
    else:
        run.start()
    plot = _live_plot(live_plot, run)
    for epoch in range(run.history.epochs_trained + 1, run.recipe.epochs + 1):
        if run.patience_ran_out():
            break
        run.train_epoch(epoch)
        run.save(checkpoint)
        if plot is not None:
            plot.update(run.history)
    run.keep_best()
    return run.history


class _Run:
    """The state of one :func:`fit`: model, optimiser, schedule, history and best weights."""

    def __init__(self, model, train, valid, recipe: Recipe, optimizer, loss_fn, device,
                 progress: bool, world: World):
        self.device, self.world = pick_device(device), world
        self.precision = resolve_precision(recipe.precision, self.device)
        self.model, self.train, self.valid = model.to(self.device), train, valid
        self.recipe = recipe
        if recipe.channels_last:
            model.to(memory_format=torch.channels_last)
        self.trained = world.wrap(model)  # what trains: DistributedDataParallel on many ranks
        self.optimizer = optimizer or make_optimizer(model, recipe.lr, recipe.weight_decay)
        self.loss_fn = loss_fn or make_loss(recipe.label_smoothing)
        self.scheduler = _make_scheduler(recipe.scheduler, self.optimizer, recipe.epochs,
                                         len(train))
        self.scaler = grad_scaler(self.device, self.precision)
        self.generator = getattr(train, "generator", None)  # a DataLoader's shuffling generator
        self.history, self.best, self.progress = History(), None, progress

    def start(self) -> None:
        """Seed the generators, then measure the starting weights (epoch 0)."""
        if self.recipe.seed is not None:
            seed_everything(self.recipe.seed)
            if self.generator is not None:
                self.generator.manual_seed(self.recipe.seed)
        start, lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
        valid_loss, valid_acc = self.validate(0)
        self.history.append(epoch=0, train_loss=math.nan, train_acc=math.nan,
                            valid_loss=valid_loss, valid_acc=valid_acc, lr=lr,
                            seconds=time.perf_counter() - start)
        self.best = self.weights()
        print(self.history.line(total=self.recipe.epochs), flush=True)

    def train_epoch(self, epoch: int) -> None:
        start, lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
        train_loss, train_acc = self.world.mean(self.train, *train_one_epoch(
            self.trained, self.train, self.optimizer, self.loss_fn, self.device,
            scheduler=self.scheduler if self.recipe.scheduler == "onecycle" else None,
            precision=self.precision, scaler=self.scaler, progress=self.progress,
            desc=f"epoch {epoch}/{self.recipe.epochs} train"))
        valid_loss, valid_acc = self.validate(epoch)
        if self.recipe.scheduler == "plateau":
            self.scheduler.step(valid_loss)
        self.history.append(epoch=epoch, train_loss=train_loss, valid_loss=valid_loss,
                            train_acc=train_acc, valid_acc=valid_acc, lr=lr,
                            seconds=time.perf_counter() - start)
        if self.history.best_epoch == epoch:
            self.best = self.weights()
        print(self.history.line(total=self.recipe.epochs), flush=True)

    def validate(self, epoch: int) -> tuple[float, float]:
        return self.world.mean(self.valid, *evaluate(
            self.model, self.valid, self.loss_fn, self.device, precision=self.precision,
            progress=self.progress, desc=f"epoch {epoch}/{self.recipe.epochs} valid"))

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def patience_ran_out(self) -> bool:
        patience, history = self.recipe.early_stopping_patience, self.history
        if patience is None or history.epochs_trained - history.best_epoch < patience:
            return False
        print(f"Stopped early: no better validation loss for {patience} epochs.")
        return True

    def checkpoint(self) -> dict:
        return {"epoch": self.history.epochs_trained, "epochs": self.recipe.epochs,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "history": self.history.to_dict(), "best_model": self.best,
                "best_epoch": self.history.best_epoch, "precision": self.precision,
                "rng": checkpoints.rng_states(self.generator)}

    def save(self, path: str | Path | None) -> None:
        """Write the checkpoint (if there is a file to write): on rank 0 only, then every
        rank waits for it."""
        if path is not None:
            self.world.on_main(checkpoints.save_checkpoint, path, self.checkpoint())

    def resume(self, path: str | Path) -> None:
        saved = checkpoints.load_checkpoint(path)
        if self.recipe.scheduler == "onecycle" and saved["epochs"] != self.recipe.epochs:
            raise ValueError(
                f"{path} is a one-cycle run of {saved['epochs']} epochs, not "
                f"{self.recipe.epochs}: its schedule cannot be stretched. Pass resume=False "
                "to start again.")
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        for part, state in ((self.scheduler, saved["scheduler"]), (self.scaler, saved["scaler"])):
            if part is not None and state is not None:
                part.load_state_dict(state)
        self.history, self.best = History.from_dict(saved["history"]), saved["best_model"]
        checkpoints.set_rng_states(saved["rng"], self.generator)
        print(f"Resuming from {path}: {self.history.epochs_trained} of {self.recipe.epochs} "
              "epochs done.")

    def keep_best(self) -> None:
        self.model.load_state_dict(self.best)
        print(f"Kept the weights of epoch {self.history.best_epoch} "
              f"(lowest validation loss, {min(self.history.valid_loss):.3f}).")


def _train_and_valid(train, valid) -> tuple:
    """The two loaders, also from a :class:`landmarklib.data.Loaders`."""
    if valid is None and hasattr(train, "train") and hasattr(train, "valid"):
        train, valid = train.train, train.valid
    if valid is None:
        raise ValueError("fit needs a validation loader to choose the best weights")
    return train, valid


def _make_scheduler(name: str | None, optimizer, epochs: int, steps_per_epoch: int):
    """The learning-rate scheduler called ``name`` (see :class:`Recipe`), or None."""
    if name is None:
        return None
    if name == "onecycle":
        max_lrs = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lrs, total_steps=epochs * steps_per_epoch, pct_start=0.3)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    raise ValueError(f"scheduler must be 'onecycle', 'plateau' or None, not {name!r}")


def _live_plot(wanted: bool | None, run: _Run):
    """A :class:`landmarklib.plots.LivePlot` when wanted (default: in a notebook), or None."""
    from landmarklib import plots  # matplotlib only when a plot is drawn

    if not (wanted if wanted is not None else plots.in_notebook()):
        return None
    plot = plots.LivePlot(run.recipe.epochs)
    plot.update(run.history)
    return plot
