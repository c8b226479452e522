"""Two files for every trained model: the training file (``.pt``) and the deployment file
(``.onnx``).

**The training file** (:func:`save_model`, :func:`load_model`) is what training resumes or
fine-tunes from: a ``torch.save`` of a plain dictionary (loadable with ``weights_only=True``,
so opening a file from someone else runs no code):

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
one place that turns an ``architecture`` record back into a network.

**The deployment file** (:func:`export_onnx`; ``landmarklib export MODEL.pt``) is what tagging
uses: the network as an ONNX graph (the Open Neural Network Exchange format, run by ONNX
Runtime on a CPU or a GPU without PyTorch, :mod:`landmarklib.inference`). It maps float32
photos ``images`` ``(N, 3, S, S)`` to ``log_probs`` and ``logits`` ``(N, C)`` and
``embeddings`` ``(N, F)`` (L2-normalised; see each model's ``classify_and_embed``), for any
batch size ``N``; a fine-tuned model's also to ``imagenet_embeddings`` ``(N, F')``, the frozen
ImageNet trunk's pooled features (for telling photos of no landmark apart). Its metadata
(ONNX ``metadata_props``, values in JSON) carry what inference needs: :data:`ONNX_FORMAT`,
class folders and display names, input size, mean, std, resize ratio and rule, the precision
the model was trained in, its test metrics, and when it was made.
"""

from __future__ import annotations

import datetime
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from landmarklib import transfer
from landmarklib.files import atomic_path
from landmarklib.models import LandmarkCNN
from landmarklib.places import display_name

FORMAT = "landmarklib-model/1"

#: The ``format`` in a deployment file's metadata.
ONNX_FORMAT = "landmarklib-onnx/1"

#: How photos are resized before the network (see :mod:`landmarklib.preprocessing`), recorded
#: in deployment files.
RESIZE_RULE = ("short side to round(input_size * resize_ratio) pixels (bilinear, antialiased), "
               "central input_size x input_size crop")


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
        :class:`~landmarklib.transfer.FineTunedModel`; backbones are built by
        :func:`landmarklib.backbones.create_backbone` with ``pretrained=False`` (nothing is
        downloaded).

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
    from landmarklib.backbones import create_backbone  # imports timm and torchvision

    backbone = architecture.pop("backbone", "efficientnet_lite0")
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
        ValueError: the file is a deployment file (``.onnx``), is not a landmarklib model
            file, is damaged, or holds code (refused: it is read with ``weights_only=True``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is a deployment file (ONNX), for tagging; this needs the "
                         f"training file (.pt) it was exported from, e.g. "
                         f"{path.with_suffix('.pt').name}")
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


# ------------------------------------------------------------------ the deployment file


class _Deployable(nn.Module):
    """A model with the deployment file's outputs: ``(log_probs, logits, embeddings)``, and
    ``imagenet_embeddings`` for a model with a frozen ImageNet trunk."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.imagenet = isinstance(model, transfer.FineTunedModel)
        self.names = ["log_probs", "logits", "embeddings",
                      *(["imagenet_embeddings"] if self.imagenet else [])]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.imagenet:
            return self.model.classify_and_embed(images, imagenet=True)
        return self.model.classify_and_embed(images)


def export_onnx(model_file: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the deployment file of a training file: the network as ONNX, with its metadata.

    Uses the exporter PyTorch recommends (``torch.onnx.export(..., dynamo=True)``, which
    traces the network with ``torch.export`` and writes it with onnxscript), with a dynamic
    batch dimension, the graph optimised, and the weights inside the one file. Written
    atomically. The network is exported in float32, the precision predictions run in
    (whatever precision it was trained in, which the metadata records).

    Args:
        model_file: a training file written by :func:`save_model`.
        out: the ``.onnx`` file to write (default: ``model_file`` with the suffix ``.onnx``).

    Returns:
        The deployment file written.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_model`.

    Taught in notebooks/04_inference_and_app.ipynb, 'Deploying the model'.
    """
    saved = load_model(model_file)
    out = Path(out) if out is not None else Path(model_file).with_suffix(".onnx")
    example = torch.zeros(2, 3, saved.input_size, saved.input_size)
    deployable = _Deployable(saved.model).eval()
    program = torch.onnx.export(
        deployable, (example,), dynamo=True, input_names=["images"],
        output_names=deployable.names, optimize=True, verbose=False,
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    program.model.producer_name = "landmarklib"
    program.model.model_version = 1
    program.model.doc_string = ("Landmark classifier: images (N, 3, S, S) float32 -> log_probs "
                                "(N, C), logits (N, C), embeddings (N, F) L2-normalised"
                                + (", imagenet_embeddings (N, F') L2-normalised"
                                   if deployable.imagenet else ""))
    program.model.metadata_props.update(
        {key: json.dumps(value, ensure_ascii=False)
         for key, value in deployment_metadata(saved).items()})
    with atomic_path(out) as tmp:
        program.save(tmp, external_data=False)
    return out


def deployment_metadata(saved: SavedModel) -> dict:
    """What a deployment file records about its model (see the module's documentation)."""
    return {
        "format": ONNX_FORMAT, "class_folders": saved.class_folders,
        "class_names": saved.class_names, "input_size": saved.input_size,
        "mean": list(saved.mean), "std": list(saved.std), "resize_ratio": saved.resize_ratio,
        "resize": RESIZE_RULE, "precision": saved.precision, "metrics": saved.metrics,
        "source": saved.path.name if saved.path else None,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
