"""landmarklib.quantization: the 8-bit deployment file, against the float one it came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from landmarklib.data import tiny_data_root
from landmarklib.deployment import Predictor
from landmarklib.images import open_image
from landmarklib.quantization import quantize_model, quantized_path


def _tiny_photos(split: str) -> list[Path]:
    return sorted((tiny_data_root() / split).rglob("*.jpg"))


@pytest.fixture(scope="module")
def quantized(tiny_model_file, tmp_path_factory) -> tuple[Path, list]:
    """The tiny model quantised with 24 of its training photos; the files ``measure`` saw."""
    seen = []

    def measure(path: Path) -> dict:
        seen.append(len(Predictor(path, memory=False).class_names))
        return {"test_accuracy": 0.5}

    out = tmp_path_factory.mktemp("int8") / "tiny_model.int8.onnx"
    return quantize_model(tiny_model_file, _tiny_photos("train")[::3][:24], out, measure), seen


def test_the_file_is_a_quarter_of_the_size_with_integer_weights(quantized, tiny_model_file):
    out, _ = quantized
    assert out.stat().st_size < 0.35 * tiny_model_file.stat().st_size
    graph = onnx.load(str(out))
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8 = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sum(int(np.prod(t.dims)) for t in int8) > 3_000_000  # Lite0's 3.4 M conv weights


def test_it_keeps_the_metadata_and_records_how_and_what_was_measured(quantized,
                                                                    tiny_model_file):
    out, seen = quantized
    float_model, int8 = Predictor(tiny_model_file, memory=False), Predictor(out, memory=False)
    assert int8.class_names == float_model.class_names and int8.input_size == 224
    assert (int8.mean, int8.std) == (float_model.mean, float_model.std)
    assert seen == [7]  # measured with the metadata already in place
    assert int8.metrics == {"test_accuracy": 0.5}
    record = json.loads(int8.session.get_modelmeta().custom_metadata_map["quantization"])
    assert record["calibration_photos"] == 24 and record["source"] == float_model.model_id


def test_it_answers_as_the_float_file_does(quantized, tiny_model_file):
    float_model, int8 = Predictor(tiny_model_file, memory=False), Predictor(quantized[0],
                                                                           memory=False)
    images = [open_image(p, short_side=224) for p in _tiny_photos("test")]
    p32, e32 = float_model.run(images)
    p8, e8 = int8.run(images)
    assert p8.shape == p32.shape and np.allclose(p8.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(np.linalg.norm(e8, axis=1), 1, atol=1e-3)
    assert np.abs(p8 - p32).mean() < 0.03
    ranked = np.sort(p32, axis=1)
    clear = ranked[:, -1] - ranked[:, -2] > 0.2  # photos the float file is clear about
    assert clear.sum() >= 10
    assert np.array_equal(p8[clear].argmax(axis=1), p32[clear].argmax(axis=1))
    assert np.median(np.sum(e8 * e32, axis=1)) > 0.9  # cosine similarity of the embeddings


def test_broken_photos_are_skipped_and_none_usable_is_an_error(tiny_model_file, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    out = quantize_model(tiny_model_file, [broken, *_tiny_photos("train")[:4]],
                         tmp_path / "a.int8.onnx")
    record = Predictor(out, memory=False).session.get_modelmeta().custom_metadata_map
    assert json.loads(record["quantization"])["calibration_photos"] == 4
    with pytest.raises(ValueError, match="none of the 1 calibration photos"):
        quantize_model(tiny_model_file, [broken], tmp_path / "b.int8.onnx")
    assert not (tmp_path / "b.int8.onnx").exists()


def test_a_quantised_file_is_not_quantised_again(quantized, tmp_path):
    with pytest.raises(ValueError, match="already quantised"):
        quantize_model(quantized[0], _tiny_photos("train")[:4], tmp_path / "again.onnx")


def test_the_command_writes_the_file_and_its_memory(tiny_model_file, tmp_path, capsys):
    from landmarklib.cli import main
    from landmarklib.memory import memory_path

    model = Path(shutil.copy(tiny_model_file, tmp_path / "model.onnx"))
    assert main(["quantize", str(model), "--data", str(tiny_data_root()), "--photos", "16"]) == 0
    out = quantized_path(model)
    assert out == tmp_path / "model.int8.onnx" and memory_path(out).is_file()
    metrics = Predictor(out).metrics
    assert metrics["test_total"] == len(_tiny_photos("test")) and 0 <= metrics["test_accuracy"] <= 1
    assert f"{out}" in capsys.readouterr().out
