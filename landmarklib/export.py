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
* ``precision``: the number format it was trained in (:mod:`landmarklib.hardware`);
* ``metrics`` (e.g. test accuracy) and ``created`` (UTC time), for the record.

A transfer model is rebuilt with random weights before the file's are loaded (the file holds
the backbone's weights too), so loading never downloads anything. :func:`rebuild_network` is the
one place that turns an ``architecture`` record back into a network. For the default backbone,
EfficientNet-Lite0, it uses :mod:`landmarklib.efficientnet_lite`, which imports only torch:
importing this module, and loading such a file, needs neither timm nor torchvision (their
import takes longer than the rest of tagging one photo from a new process).
The other backbones come from :mod:`landmarklib.backbones`, imported when first needed.
"""

from __future__ import annotations

import datetime
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from landmarklib import transfer
from landmarklib.efficientnet_lite import EfficientNetLite0
from landmarklib.files import atomic_path
from landmarklib.models import LandmarkCNN
from landmarklib.places import display_name

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
    precision: str = "float32"
    metrics: dict = field(default_factory=dict)
    path: Path | None = None


def architecture_of(model: nn.Module) -> dict:
    """The recipe to rebuild ``model``: a :class:`~landmarklib.models.LandmarkCNN`, a
    :class:`~landmarklib.transfer.TransferModel` or a
    :class:`~landmarklib.transfer.FineTunedModel`.

    Raises:
        TypeError: another kind of network (it could not be rebuilt from the file).
    """
    if isinstance(model, LandmarkCNN):
        return {"kind": "scratch", **model.config}
    if isinstance(model, transfer.TransferModel):
        return {"kind": "transfer", **model.config}
    if isinstance(model, transfer.FineTunedModel):
        return {"kind": "finetuned", **model.config}
    raise TypeError(
        f"cannot save a {type(model).__name__}: only LandmarkCNN, TransferModel and "
        "FineTunedModel can be rebuilt from a model file"
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
    precision: str = "float32",
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically (temporary file, then rename).

    Args:
        path: the file to write (folders are created).
        model: a :class:`~landmarklib.models.LandmarkCNN`,
            :class:`~landmarklib.transfer.TransferModel` or
            :class:`~landmarklib.transfer.FineTunedModel`.
        class_folders: the class folder names in class-id order (``loaders.classes``).
        input_size: pixels of the square input the model was trained on.
        mean, std: the normalisation it was trained with (3 floats each).
        resize_ratio: see :func:`landmarklib.data.eval_transform`.
        metrics: numbers worth keeping with the model (floats, ints, strings).
        precision: the number format it was trained in (``"float32"``, ``"bfloat16"`` or
            ``"float16"``, see :func:`landmarklib.hardware.resolve_precision`).

    Returns:
        The path written.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {
        "format": FORMAT,
        "architecture": architecture_of(model),
        "state_dict": state,
        "class_names": [display_name(folder) for folder in class_folders],
        "class_folders": list(class_folders),
        "input_size": int(input_size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "resize_ratio": float(resize_ratio),
        "precision": str(precision),
        "metrics": dict(metrics or {}),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(path) as tmp:
        torch.save(record, tmp)
    return path


# ------------------------------------------------------------ rebuilding a saved network


def rebuild_network(architecture: dict, n_classes: int) -> nn.Module:
    """The network an ``architecture`` record describes, with random weights, ready for
    ``load_state_dict`` of the file's weights.

    This is the one function that turns a record back into a network; add a new kind here.

    Args:
        architecture: the file's ``"architecture"``: ``{"kind": "scratch", **LandmarkCNN
            arguments}``, ``{"kind": "transfer", "backbone": ..., "hidden": ...,
            "dropout": ...}`` or ``{"kind": "finetuned", ..., "members": ...,
            "top_blocks": ...}``.
        n_classes: the number of classes (the length of the file's ``class_folders``).

    Returns:
        A :class:`~landmarklib.models.LandmarkCNN`, a
        :class:`~landmarklib.transfer.TransferModel` or a
        :class:`~landmarklib.transfer.FineTunedModel` (for Lite0 without ``spec``: the
        input size and normalisation are in the :class:`SavedModel`). The default backbone is
        :class:`~landmarklib.efficientnet_lite.EfficientNetLite0`, built without timm or
        torchvision; any other is built by :func:`landmarklib.backbones.create_backbone`
        with ``pretrained=False`` (imports timm and torchvision; downloads nothing).

    Raises:
        KeyError: no ``"kind"``.
        TypeError: an argument the architecture does not take.
        ValueError: an unknown kind or backbone.
    """
    architecture = dict(architecture)
    kind = architecture.pop("kind")
    if kind == "scratch":
        return LandmarkCNN(n_classes=n_classes, **architecture)
    if kind not in ("transfer", "finetuned"):
        raise ValueError(f"unknown architecture {kind!r}")
    backbone = architecture.pop("backbone", "efficientnet_lite0")
    if backbone == "efficientnet_lite0":
        features, spec = EfficientNetLite0(), None
    else:
        from landmarklib.backbones import create_backbone  # imports timm and torchvision

        features, spec = create_backbone(backbone, pretrained=False)
    if kind == "transfer":
        return transfer.transfer_model_from(features, n_classes, backbone, spec=spec,
                                            **architecture)
    return transfer.finetuned_model_from(features, n_classes, backbone, spec=spec,
                                         **architecture)


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
        model = rebuild_network(record["architecture"], len(record["class_folders"]))
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
        precision=record.get("precision", "float32"),
        metrics=dict(record.get("metrics", {})),
        path=path,
    )
