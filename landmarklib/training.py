"""Training: one epoch, evaluation, the epoch loop with checkpoints, and the overfit check.

Works for any ``nn.Module`` that maps float32 images ``(B, 3, H, W)`` to float32
log-probabilities ``(B, C)`` (the scratch CNN of notebook 02 and the transfer-learning model of
notebook 03 alike). Read top to bottom:

1. **Set-up**: :func:`pick_device` (CUDA, then Apple's MPS, then CPU), :func:`seed_everything`,
   :class:`Recipe` (every hyper-parameter of the from-scratch run in one place),
   :func:`make_optimizer`, :func:`make_loss`.
2. **One pass over the data**: :func:`train_one_epoch` and :func:`evaluate`, a pair as in
   torchvision's ``references/classification/train.py``.
3. **The epoch loop**: :class:`History` and :func:`fit`, which keeps the weights with the lowest
   validation loss, can stop early, draws a live loss plot in a notebook, and writes a
   checkpoint after every epoch so that a run that is killed resumes where it stopped.
4. **The overfit-one-batch check**: :func:`overfit_one_batch`.

Mixed precision (autocast to bfloat16, or float16 with a gradient scaler) is used on CUDA only;
on a CPU or MPS everything runs in float32.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "pick_device",
    "seed_everything",
    "Recipe",
    "make_optimizer",
    "make_loss",
    "amp_settings",
    "fast_bfloat16",
    "train_one_epoch",
    "evaluate",
    "History",
    "fit",
    "load_checkpoint",
    "OverfitResult",
    "overfit_one_batch",
]

# ------------------------------------------------------------------------------------ set-up


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA, else Apple's MPS, else the CPU.

    Args:
        prefer: a device such as ``"cpu"``, ``"cuda:1"`` or ``torch.device("mps")``.

    Returns:
        A :class:`torch.device`.

    Raises:
        RuntimeError: ``prefer`` names a CUDA or MPS device that this machine does not have.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"asked for {device}, but PyTorch sees no CUDA GPU here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"asked for {device}, but Apple's MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


@dataclass
class Recipe:
    """Every hyper-parameter of a training run, with the from-scratch recipe as defaults.

    Notebook 02 and ``benchmarks/train_scratch.py`` both read this, so they train the same way.
    Transfer learning makes its own, e.g. ``Recipe(epochs=10, lr=1e-3, weight_decay=0.0,
    scheduler=None, label_smoothing=0.0)``.

    Attributes:
        size: training resolution, in pixels (photos are ``size`` x ``size``).
        batch_size: photos per batch.
        epochs: passes over the training split.
        lr: learning rate; with ``scheduler="onecycle"``, the peak of the schedule.
        weight_decay: AdamW's decoupled weight decay (0 makes AdamW plain Adam).
        scheduler: ``"onecycle"``, ``"plateau"`` or ``None`` (see :func:`fit`).
        label_smoothing: share of each target's probability spread over the other classes.
        seed: seeds the initial weights, dropout, augmentation and batch order.
    """

    size: int = 128
    batch_size: int = 32
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.05
    scheduler: str | None = "onecycle"
    label_smoothing: float = 0.1
    seed: int = 0


def make_optimizer(
    model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0
) -> torch.optim.AdamW:
    """AdamW over the parameters of ``model`` that require gradients (frozen ones are left out).

    With ``weight_decay=0`` AdamW is exactly Adam. Weight decay in AdamW is *decoupled*: each
    step shrinks every weight by ``lr * weight_decay`` of itself, instead of adding an L2
    penalty to the loss (which Adam's per-weight step sizes would distort).

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


def amp_settings(device: torch.device, enabled: bool = True, cpu: bool = False):
    """Mixed-precision settings for ``device``: ``(autocast dtype or None, GradScaler or None)``.

    On CUDA: bfloat16 where the GPU supports it (no scaler needed: its range is float32's),
    else float16 with a :class:`torch.amp.GradScaler` (float16 gradients would underflow to 0
    without scaling). On a CPU, only with ``cpu=True`` and where :func:`fast_bfloat16` says the
    processor computes in bfloat16 natively: bfloat16 (about 2x faster for the transfer model's
    last block on this project's 2-core machine). Otherwise, or with ``enabled=False``:
    ``(None, None)``, plain float32.
    """
    if not enabled:
        return None, None
    if device.type == "cpu" and cpu and fast_bfloat16(device):
        return torch.bfloat16, None
    if device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def fast_bfloat16(device: torch.device | str) -> bool:
    """True where bfloat16 autocast speeds up convolutions: CUDA, or a CPU that oneDNN says
    supports bfloat16 natively (AVX-512 BF16 or AMX; elsewhere it is emulated, and slower)."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ------------------------------------------------------------------------ one pass over data


def progress_bar(loader, desc: str, enabled: bool = True, leave: bool = False):
    """A tqdm bar counting the batches of ``loader``, updated by hand.

    (``tqdm.auto.tqdm(loader)`` would call ``iter(loader)`` once more than the loop does: for a
    DataLoader that starts an extra pass, which draws from its shuffling generator, and so
    changes the order of the batches, and starts its worker processes twice.)
    The extra iterator also outlives the loop (the bar holds it): its worker processes are
    then inherited by the workers of the next loader, which print a shutdown traceback.

    Returns:
        A ``tqdm`` bar of ``len(loader)`` batches: call ``update()`` per batch, ``close()`` after.
    """
    total = len(loader) if hasattr(loader, "__len__") else None
    return tqdm(total=total, desc=desc, leave=leave, disable=not enabled, unit="batch")


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[float, float]:
    """Train ``model`` for one pass over ``loader``: forward, loss, backward, optimiser step.

    Args:
        model: maps float32 ``(B, 3, H, W)`` to log-probabilities ``(B, C)``; set to train mode.
        loader: yields ``(images, labels)``: float32 ``(B, 3, H, W)`` and int64 ``(B,)``.
        optimizer: updates the model's parameters.
        loss_fn: loss of ``(log_probs, labels)`` averaged over the batch (default
            :class:`~torch.nn.NLLLoss`).
        device: where the model is (default: the device of its first parameter).
        scheduler: a learning-rate schedule stepped after every batch (e.g. one-cycle).
        amp_dtype, scaler: mixed precision, see :func:`amp_settings` (default: float32).
        progress: show a tqdm progress bar with the running loss and accuracy.
        desc: label of the progress bar.

    Returns:
        ``(mean loss, accuracy)`` over the epoch's photos: the loss averaged per photo (as
        ``loss_fn`` computes it, so with label smoothing if it has it), the accuracy as a
        fraction in [0, 1], both measured on the fly while the weights change.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the learning rate is usually too
            high).
        ValueError: the loader gave no batch.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loss_fn = loss_fn if loss_fn is not None else nn.NLLLoss()
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = progress_bar(loader, desc, progress)
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with _autocast(device, amp_dtype):
            log_probs = model(images)
            loss = loss_fn(log_probs, labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        batch_loss = loss.item()
        if not math.isfinite(batch_loss):
            raise FloatingPointError(
                f"the training loss became {batch_loss} after {seen} photos of this epoch; "
                "try a lower learning rate"
            )
        total_loss += batch_loss * len(labels)
        correct += (log_probs.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.1%}", refresh=False)
        bar.update()
    bar.close()
    if seen == 0:
        raise ValueError("the training loader gave no batch")
    return total_loss / seen, correct / seen


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    desc: str = "valid",
) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on ``loader``, in eval mode, without gradients.

    Eval mode makes dropout keep every feature and BatchNorm use its running statistics;
    :func:`torch.inference_mode` skips the bookkeeping that backpropagation would need.

    Args:
        model, loader, loss_fn, device, amp_dtype, progress, desc: as in :func:`train_one_epoch`.

    Returns:
        ``(mean loss, accuracy)``: loss averaged per photo, accuracy a fraction in [0, 1].

    Raises:
        ValueError: the loader gave no batch.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loss_fn = loss_fn if loss_fn is not None else nn.NLLLoss()
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    bar = progress_bar(loader, desc, progress)
    with torch.inference_mode():
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with _autocast(device, amp_dtype):
                log_probs = model(images)
                loss = loss_fn(log_probs.float(), labels)
            total_loss += loss.item() * len(labels)
            correct += (log_probs.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
            bar.update()
    bar.close()
    if seen == 0:
        raise ValueError("the evaluation loader gave no batch")
    return total_loss / seen, correct / seen


# ---------------------------------------------------------------------------- epoch loop


@dataclass
class History:
    """What happened in each epoch of :func:`fit`; entry ``i`` of every list is epoch ``i + 1``.

    Attributes:
        train_loss, valid_loss: mean loss per photo (the training one measured while learning).
        train_acc, valid_acc: accuracy, a fraction in [0, 1].
        lr: learning rate of the first parameter group at the start of the epoch.
        seconds: wall-clock time of the epoch, training and validation together.
    """

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    valid_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    @property
    def best_epoch(self) -> int | None:
        """The epoch (counting from 1) with the lowest validation loss; ``None`` before any."""
        if not self.valid_loss:
            return None
        return int(np.argmin(self.valid_loss)) + 1

    def append(self, **values: float) -> None:
        """Add one epoch: ``history.append(train_loss=..., valid_loss=..., ...)``, every field."""
        for f in fields(self):
            getattr(self, f.name).append(float(values[f.name]))

    def to_dict(self) -> dict[str, list[float]]:
        """A plain dict of lists of floats (for JSON, pandas, or a checkpoint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """The inverse of :meth:`to_dict`; keys that are not fields are ignored."""
        return cls(**{f.name: [float(v) for v in data.get(f.name, [])] for f in fields(cls)})

    def line(self, epoch: int | None = None, total: int | None = None) -> str:
        """One line of text about an epoch (default the last), e.g. for a log."""
        i = (epoch or len(self)) - 1
        best = " *" if self.best_epoch == i + 1 else ""
        of = f"/{total}" if total else ""
        return (
            f"epoch {i + 1:>3}{of}"
            f"  train loss {self.train_loss[i]:.3f} acc {self.train_acc[i]:6.1%}"
            f"  valid loss {self.valid_loss[i]:.3f} acc {self.valid_acc[i]:6.1%}"
            f"  lr {self.lr[i]:.2e}  {self.seconds[i]:5.1f} s{best}"
        )


def fit(
    model: nn.Module,
    train,
    valid: Iterable | None = None,
    epochs: int = 15,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: str | None = None,
    loss_fn: nn.Module | None = None,
    label_smoothing: float = 0.0,
    early_stopping_patience: int | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = True,
    device: torch.device | str | None = None,
    amp: bool = True,
    amp_on_cpu: bool = False,
    channels_last: bool = False,
    seed: int | None = 0,
    live_plot: bool | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs, keeping the weights with the lowest validation loss.

    Each epoch trains on the training loader (:func:`train_one_epoch`), measures the loss and
    accuracy on the validation loader (:func:`evaluate`), records both in a :class:`History`,
    prints a line (and, in a notebook, redraws a live loss plot) and, if ``checkpoint_path``
    is given, writes a checkpoint. When the loop ends, the weights of the epoch with the lowest
    validation loss are loaded back into ``model``.

    **Checkpoints and resuming.** After every epoch the checkpoint file holds the model, the
    optimiser and scheduler states, the history, the best weights so far (``best_model``) and
    the random generators' states. It is written to a temporary file in the same folder and
    then renamed over the old one, so a run killed while writing leaves the previous checkpoint
    intact. Calling ``fit`` again with the same ``checkpoint_path`` (and ``resume=True``)
    continues at the first unfinished epoch: at most one epoch is lost. On a CPU, a resumed run
    gives the same weights as one that was never interrupted. Only tensors and plain Python
    containers are stored, so the file loads with ``torch.load(path, weights_only=True)``.
    Interrupting ``fit`` (Ctrl-C, or the notebook's stop button) leaves ``model`` with the
    half-trained weights of the unfinished epoch: call ``fit`` again to resume, or load
    ``load_checkpoint(path)["best_model"]``.

    Args:
        model: maps float32 ``(B, 3, H, W)`` to log-probabilities ``(B, C)``; moved to
            ``device`` and trained in place.
        train: the training loader, or a :class:`landmarklib.data.Loaders` (its ``train`` and
            ``valid`` loaders are used, and ``valid`` must then be left out).
        valid: the validation loader (only the validation split: never the test photos).
        epochs: total number of epochs, including any done before a resume.
        optimizer: default Adam with learning rate 0.001 over the trainable parameters
            (``make_optimizer(model, 1e-3)``).
        scheduler: ``"onecycle"``: the learning rate climbs from ``lr / 25`` to the optimiser's
            ``lr`` over the first 30% of the steps, then anneals to nearly 0, stepped after each
            batch. ``"plateau"``: halves the learning rate when the validation loss has not
            improved for 2 epochs. ``None``: constant learning rate.
        loss_fn: default :func:`make_loss` ``(label_smoothing)``. Used for the validation loss
            too, so the two curves are comparable.
        label_smoothing: see :func:`make_loss`; ignored when ``loss_fn`` is given.
        early_stopping_patience: stop when the validation loss has not improved for this many
            epochs (``None``: never stop early).
        checkpoint_path: where to write the checkpoint after every epoch (``None``: nowhere).
        resume: continue from ``checkpoint_path`` if it exists; ``False`` starts again and
            overwrites it.
        device: default :func:`pick_device`.
        amp: use mixed precision on CUDA (see :func:`amp_settings`).
        amp_on_cpu: also on a CPU with native bfloat16 (see :func:`amp_settings`).
        channels_last: store the model's weights channels-last (NHWC), which makes convolutions
            faster on most CPUs and on recent GPUs.
        seed: for a fresh run, seeds the random generators (:func:`seed_everything`) and the
            training loader's shuffling generator, so two runs with the same seed see the same
            batches and augmentations. ``None`` leaves them as they are. A resumed run
            restores the generators from the checkpoint instead.
        live_plot: redraw a loss and accuracy plot after every epoch (default: only when
            running in a Jupyter kernel). The text line per epoch is printed in any case.
        progress: show tqdm progress bars within each epoch.

    Returns:
        The :class:`History` of all epochs, including those before a resume.

    Raises:
        ValueError: no validation loader; an unknown scheduler; or the checkpoint was written
            for a different number of epochs with the one-cycle schedule.
        RuntimeError: the checkpoint holds weights that do not fit ``model``.
        FloatingPointError: the training loss became NaN or infinite.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    if valid is None and hasattr(train, "train") and hasattr(train, "valid"):
        train, valid = train.train, train.valid
    if valid is None:
        raise ValueError("fit needs a validation loader to choose the best weights")
    device = pick_device(device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = make_optimizer(model, lr=1e-3)
    if loss_fn is None:
        loss_fn = make_loss(label_smoothing)
    steps_per_epoch = len(train)
    lr_scheduler = _make_scheduler(scheduler, optimizer, epochs, steps_per_epoch)
    amp_dtype, scaler = amp_settings(device, amp, cpu=amp_on_cpu)
    generator = getattr(train, "generator", None)  # a DataLoader's shuffling generator

    history = History()
    best_state: dict[str, torch.Tensor] | None = None
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    if checkpoint_path is not None and resume and checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path)
        if scheduler == "onecycle" and checkpoint["epochs"] != epochs:
            raise ValueError(
                f"{checkpoint_path} is a one-cycle run of {checkpoint['epochs']} epochs, not "
                f"{epochs}: its schedule cannot be stretched. Pass resume=False to start again."
            )
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if lr_scheduler is not None and checkpoint["scheduler"] is not None:
            lr_scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None and checkpoint["scaler"] is not None:
            scaler.load_state_dict(checkpoint["scaler"])
        history = History.from_dict(checkpoint["history"])
        best_state = checkpoint["best_model"]
        _set_rng_states(checkpoint["rng"], generator)
        print(f"Resuming from {checkpoint_path}: {len(history)} of {epochs} epochs done.")
    elif seed is not None:
        seed_everything(seed)
        if generator is not None:
            generator.manual_seed(seed)

    show = _LivePlot(epochs) if (live_plot if live_plot is not None else _in_notebook()) else None
    if show is not None and len(history):
        show.update(history)
    for epoch in range(len(history) + 1, epochs + 1):
        if _patience_ran_out(history, early_stopping_patience):
            break
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_one_epoch(
            model, train, optimizer, loss_fn, device,
            scheduler=lr_scheduler if scheduler == "onecycle" else None,
            amp_dtype=amp_dtype, scaler=scaler, progress=progress,
            desc=f"epoch {epoch}/{epochs} train",
        )
        valid_loss, valid_acc = evaluate(
            model, valid, loss_fn, device, amp_dtype=amp_dtype, progress=progress,
            desc=f"epoch {epoch}/{epochs} valid",
        )
        if scheduler == "plateau":
            lr_scheduler.step(valid_loss)
        history.append(train_loss=train_loss, valid_loss=valid_loss, train_acc=train_acc,
                       valid_acc=valid_acc, lr=lr, seconds=time.perf_counter() - start)
        if history.best_epoch == epoch:
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if checkpoint_path is not None:
            _save_atomically(
                {
                    "epoch": epoch,
                    "epochs": epochs,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "history": history.to_dict(),
                    "best_model": best_state,
                    "best_epoch": history.best_epoch,
                    "rng": _rng_states(generator),
                },
                checkpoint_path,
            )
        print(history.line(total=epochs), flush=True)
        if show is not None:
            show.update(history)
    if _patience_ran_out(history, early_stopping_patience) and len(history) < epochs:
        print(f"Stopped early: no better validation loss for {early_stopping_patience} epochs.")
    if best_state is not None:
        model.load_state_dict(best_state)
        print(f"Kept the weights of epoch {history.best_epoch} "
              f"(lowest validation loss, {min(history.valid_loss):.3f}).")
    return history


def _make_scheduler(name: str | None, optimizer, epochs: int, steps_per_epoch: int):
    """The learning-rate scheduler called ``name`` (see :func:`fit`), or None."""
    if name is None:
        return None
    if name == "onecycle":
        max_lrs = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lrs, total_steps=epochs * steps_per_epoch, pct_start=0.3
        )
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    raise ValueError(f"scheduler must be 'onecycle', 'plateau' or None, not {name!r}")


def _patience_ran_out(history: History, patience: int | None) -> bool:
    if patience is None or len(history) == 0:
        return False
    return len(history) - history.best_epoch >= patience


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`fit`, safely (``torch.load(..., weights_only=True)``:
    only tensors and plain containers are unpickled, never arbitrary code).

    Returns:
        A dict with keys ``epoch`` (epochs done), ``epochs`` (epochs planned), ``model`` (the
        last weights), ``best_model`` (the weights with the lowest validation loss, to use for
        predictions), ``best_epoch``, ``optimizer``, ``scheduler``, ``scaler``, ``history``
        (``History.to_dict()``) and ``rng``.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    return torch.load(path, map_location=map_location, weights_only=True)


def _save_atomically(obj, path: Path) -> None:
    """``torch.save(obj, path)``, such that ``path`` is either the old file or the whole new one.

    The checkpoint is written to a temporary file in the same folder (so the rename cannot cross
    file systems), flushed to disk, then renamed over ``path`` by :func:`os.replace`, which is
    atomic on POSIX and Windows. If anything fails, the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _rng_states(generator: torch.Generator | None) -> dict:
    """Every random generator's state, as tensors and plain values (for ``weights_only``)."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [py_version, torch.tensor(py_state, dtype=torch.int64), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss,
                  np_gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state() if generator is not None else None,
    }


def _set_rng_states(states: dict, generator: torch.Generator | None) -> None:
    """Put every random generator back in the state :func:`_rng_states` recorded."""
    py_version, py_state, py_gauss = states["python"]
    random.setstate((py_version, tuple(py_state.tolist()), py_gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = states["numpy"]
    np_keys = np_keys.numpy().astype(np.uint32)
    np.random.set_state((np_kind, np_keys, np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if generator is not None and states["loader"] is not None:
        generator.set_state(states["loader"])


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, VS Code, Colab), False in a terminal or script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _LivePlot:
    """A loss and accuracy plot that redraws itself in place in a notebook, once per epoch.

    The figure is drawn off-screen and shown as a PNG through ``IPython.display`` with a
    ``display_id``, so each update replaces the picture instead of adding one more.
    """

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.handle = None

    def update(self, history: History) -> None:
        from IPython.display import Image, display
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax_loss, ax_acc = fig.subplots(1, 2)
        epochs = range(1, len(history) + 1)
        for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
            ax.plot(epochs, getattr(history, f"train_{key}"), "o-", ms=3, label="training")
            ax.plot(epochs, getattr(history, f"valid_{key}"), "o-", ms=3, label="validation")
            ax.axvline(history.best_epoch, color="grey", ls=":", lw=1, label="best epoch")
            ax.set(xlabel="epoch", ylabel=label, xlim=(0.5, self.epochs + 0.5))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend()
        ax_acc.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
        fig.suptitle(history.line(total=self.epochs), fontsize=9, family="monospace")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        image = Image(data=buffer.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


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
        return (
            f"{verdict}: loss {self.losses[0]:.3f} -> {self.final_loss:.3f} in {len(self.losses)} "
            f"steps (threshold {self.threshold})"
        )


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
    ``optimizer.step()``), and a long training run would be wasted.

    Args:
        model: a network (it is deep-copied, so the original keeps its weights; pass an untrained
            one) or a function that builds a fresh one.
        batch: ``(images, labels)``: float32 ``(B, 3, H, W)`` and int64 ``(B,)``, e.g. the first
            batch of the training loader.
        steps: optimiser steps on the batch.
        lr: Adam's learning rate.
        threshold: the check passes if the loss at the last step is below this (0.05 means the
            correct class gets about 95% probability on average).
        device: default :func:`pick_device`.
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
