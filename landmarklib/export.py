"""Save a trained model as one file that inference needs nothing else to use.

The file is a ``torch.save`` of a plain dictionary (loadable with ``weights_only=True``, so
opening a file from someone else runs no code):

* ``format``: ``"landmarklib-model/1"``;
* ``architecture``: how to rebuild the network, e.g. ``{"kind": "scratch", "widths": [...],
  ...}`` or ``{"kind": "transfer", "backbone": "efficientnet_lite0", "hidden": 512, ...}``;
* ``state_dict``: the weights;
* ``class_names`` (display names) and ``class_folders``, in class-id order;
* ``input_size`` (pixels), ``mean`` and ``std`` (the normalisation the model was trained with),
  ``resize_ratio`` (see :func:`landmarklib.data.eval_transform`);
* ``metrics`` (e.g. test accuracy) and ``created`` (UTC time), for the record.

A transfer model is rebuilt with ``pretrained=False`` (the file holds the backbone's weights
too), so loading never downloads anything.
"""

from __future__ import annotations

import datetime
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from landmarklib.models import LandmarkCNN
from landmarklib.transfer import TransferModel, build_transfer_model

FORMAT = "landmarklib-model/1"


@dataclass
class SavedModel:
    """A loaded model file: the network (in eval mode) and what is needed to feed it."""

    model: nn.Module
    class_names: list[str]
    class_folders: list[str]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_ratio: float = 1.0
    metrics: dict = field(default_factory=dict)
    path: Path | None = None


def architecture_of(model: nn.Module) -> dict:
    """The recipe to rebuild ``model``: a :class:`~landmarklib.models.LandmarkCNN` or a
    :class:`~landmarklib.transfer.TransferModel`.

    Raises:
        TypeError: another kind of network (it could not be rebuilt from the file).
    """
    if isinstance(model, LandmarkCNN):
        return {"kind": "scratch", **model.config}
    if isinstance(model, TransferModel):
        return {"kind": "transfer", **model.config}
    raise TypeError(
        f"cannot save a {type(model).__name__}: only LandmarkCNN and TransferModel can be "
        "rebuilt from a model file"
    )


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    class_folders: list[str],
    input_size: int,
    mean,
    std,
    resize_ratio: float = 1.0,
    metrics: dict | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically (temporary file, then rename).

    Args:
        path: the file to write (folders are created).
        model: a :class:`~landmarklib.models.LandmarkCNN` or
            :class:`~landmarklib.transfer.TransferModel`.
        class_folders: the class folder names in class-id order (``loaders.classes``).
        input_size: pixels of the square input the model was trained on.
        mean, std: the normalisation it was trained with (3 floats each).
        resize_ratio: see :func:`landmarklib.data.eval_transform`.
        metrics: numbers worth keeping with the model (floats, ints, strings).

    Returns:
        The path written.
    """
    from landmarklib.data import class_names

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {
        "format": FORMAT,
        "architecture": architecture_of(model),
        "state_dict": state,
        "class_names": class_names(class_folders),
        "class_folders": list(class_folders),
        "input_size": int(input_size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "resize_ratio": float(resize_ratio),
        "metrics": dict(metrics or {}),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(record, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> SavedModel:
    """Read a file written by :func:`save_model` and rebuild the network.

    Args:
        path: the model file.
        device: where to put the network.

    Returns:
        A :class:`SavedModel` with the network in eval mode.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a landmarklib model file, is damaged, or holds code
            (refused: it is read with ``weights_only=True``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle, zip and torch errors all mean "unusable"
        if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
            raise ValueError(f"{path}: refused: the file holds code or objects, not only "
                             "weights (landmarklib never runs code from a model file)") from None
        raise ValueError(f"{path}: not a readable model file ({type(error).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a landmarklib model file (format {FORMAT} expected)")
    try:
        architecture = dict(record["architecture"])
        kind = architecture.pop("kind")
        n_classes = len(record["class_folders"])
        if kind == "scratch":
            model = LandmarkCNN(n_classes=n_classes, **architecture)
        elif kind == "transfer":
            model = build_transfer_model(n_classes, pretrained=False, **architecture)
        else:
            raise ValueError(f"unknown architecture {kind!r}")
        model.load_state_dict(record["state_dict"])
        for key in ("class_names", "input_size", "mean", "std"):
            record[key]  # noqa: B018 - a missing key is a damaged file
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise ValueError(f"{path}: a damaged or edited model file ({reason})") from None
    model.to(device).eval()
    return SavedModel(
        model=model,
        class_names=list(record["class_names"]),
        class_folders=list(record["class_folders"]),
        input_size=record["input_size"],
        mean=tuple(record["mean"]),
        std=tuple(record["std"]),
        resize_ratio=record.get("resize_ratio", 1.0),
        metrics=dict(record.get("metrics", {})),
        path=path,
    )
