"""A smaller, faster deployment file: the network in 8-bit integers (``MODEL.int8.onnx``).

A deployment file (:func:`landmarklib.export.export_onnx`) computes in 32-bit floats. *Static
post-training quantisation* (Jacob et al., 2018, "Quantization and Training of Neural Networks
for Efficient Integer-Arithmetic-Only Inference") stores each weight as an 8-bit integer and a
scale per output channel, runs photos of the training set through the network to see the range
of each layer's activations (*calibration*), and from then on computes convolutions in integers:
a quarter of the file and, on processors with 8-bit dot products (x86-64 VNNI, ARM dot
product), about half the time per photo. It costs a little accuracy, which
``landmarklib quantize`` measures on the test split and writes into the file.

EfficientNet-Lite was made for this: its authors replaced EfficientNet's swish with ReLU6 and
removed squeeze-and-excitation, whose wide value ranges quantise badly (Tan and Le, 2019; "Higher
accuracy on vision models with EfficientNet-Lite", TensorFlow blog, 2020).

How, with ONNX Runtime's own tools (``onnxruntime.quantization``): the graph is prepared
(``quant_pre_process``: ONNX Runtime's graph optimisations and shape inference), then
``quantize_static`` writes the QDQ format (QuantizeLinear/DequantizeLinear pairs that ONNX
Runtime fuses into integer kernels): weights signed, per output channel, with 7 bits of
range (``reduce_range``: processors without VNNI add pairs of 8-bit products in 16 bits, which
can overflow with 8-bit weights; with 7 the same file gives the same answers on every x86-64
processor), activations unsigned 8-bit per tensor, ranges the minimum and maximum seen on the
calibration photos. The file keeps the float file's inputs, outputs and metadata, and adds a
``quantization`` record; :class:`landmarklib.deployment.Predictor` runs it as any other.

Taught in notebooks/04_inference_and_app.ipynb, 'Deploying the model'.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from landmarklib.deployment import Predictor, model_path
from landmarklib.files import atomic_path
from landmarklib.images import open_images

__all__ = ["CALIBRATION_PHOTOS", "quantized_path", "quantize_model"]

#: How many training photos calibrate the activations' ranges by default.
CALIBRATION_PHOTOS = 200


def quantized_path(model: str | os.PathLike) -> Path:
    """Where the 8-bit file of a deployment file goes: ``model.onnx`` -> ``model.int8.onnx``."""
    return Path(model).with_suffix(".int8.onnx")


def quantize_model(model: str | os.PathLike, photos: Sequence[str | os.PathLike],
                   out: str | os.PathLike | None = None,
                   measure: Callable[[Path], dict] | None = None) -> Path:
    """Write the 8-bit deployment file of a (float) deployment file, atomically.

    Args:
        model: a deployment file (``.onnx``) written by :func:`landmarklib.export.export_onnx`.
        photos: calibration photos, e.g. :data:`CALIBRATION_PHOTOS` training photos (never
            test photos); one that cannot be decoded is skipped.
        out: the file to write (default: :func:`quantized_path`).
        measure: called with the 8-bit file before it is put in place; what it returns (e.g.
            test top-1 accuracy) becomes the file's ``metrics`` (otherwise it has none: the
            float file's are kept under ``quantization.float_metrics``).

    Returns:
        The file written.

    Raises:
        ValueError: ``model`` is not a deployment file, is already quantised, or no
            calibration photo could be decoded.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = Predictor(model_path(model), memory=False)
    if "quantization" in source.session.get_modelmeta().custom_metadata_map:
        raise ValueError(f"{model}: already quantised; quantise the float file it came from")
    out = Path(out) if out is not None else quantized_path(model)
    if not os.access(out.parent, os.W_OK):  # before the work, not after it
        raise ValueError(f"{out.parent}: cannot write there (read-only?)")
    reader = _CalibrationPhotos(source, photos)
    if reader.empty:
        raise ValueError(f"none of the {len(photos)} calibration photos could be decoded")
    with tempfile.TemporaryDirectory(prefix="landmarklib-quantize-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        # Symbolic shape inference is for transformers' dynamic shapes; a CNN needs ONNX's own.
        quant_pre_process(str(source.path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8)
        record = {"weights": "int8 per output channel, 7-bit range (reduce_range)",
                  "activations": "uint8 per tensor, min-max over the calibration photos",
                  "calibration_photos": reader.used, "source": source.model_id,
                  "float_metrics": source.metrics}
        # The preparation drops the metadata: the float file's, and the record, go back in.
        metadata = dict(source.session.get_modelmeta().custom_metadata_map)
        metadata.update(quantization=json.dumps(record), metrics="{}")
        _save(quantized, quantized, metadata)
        if measure is not None:
            metadata["metrics"] = json.dumps(measure(quantized), ensure_ascii=False)
        with atomic_path(out) as tmp:
            _save(quantized, tmp, metadata)
    return out


class _CalibrationPhotos:
    """ONNX Runtime's ``CalibrationDataReader`` protocol: batches of preprocessed photos."""

    def __init__(self, predictor: Predictor, photos: Sequence, batch: int = 16):
        self.used, self.predictor = 0, predictor
        batches = self._read(predictor, photos, batch)
        first = next(batches, None)  # decoded before calibration starts: are there any?
        self.empty = first is None
        self._batches = itertools.chain([first] if first else [], batches)

    def _read(self, predictor: Predictor, photos: Sequence, batch: int):
        images = []
        for _, image in open_images(photos, short_side=predictor.input_size):
            if not isinstance(image, Exception):
                images.append(image)
            if len(images) == batch:
                yield images
                images = []
        if images:
            yield images

    def get_next(self) -> dict[str, np.ndarray] | None:
        images = next(self._batches, None)
        if images is None:
            return None
        self.used += len(images)
        return {"images": self.predictor.inputs(images)}


def _save(graph_file: Path, out: Path, metadata: dict[str, str]) -> None:
    """Save the ONNX graph in ``graph_file`` to ``out`` with ``metadata`` (JSON texts) as its
    metadata."""
    import onnx

    graph = onnx.load(str(graph_file))
    del graph.metadata_props[:]
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    graph.producer_name = "landmarklib"
    graph.doc_string = ("Landmark classifier, quantised to 8-bit integers: images (N, 3, S, S) "
                        "float32 -> log_probs (N, C), logits (N, C), embeddings (N, F)")
    onnx.save(graph, str(out))
