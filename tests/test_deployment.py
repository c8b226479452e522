"""landmarklib.deployment: which deployment file, loaded once into ONNX Runtime, and clear
errors for files of the wrong kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from landmarklib import deployment, inference
from landmarklib.data import tiny_data_root

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))


@pytest.fixture
def model(tiny_model_file, monkeypatch) -> Path:
    monkeypatch.setenv("LANDMARKLIB_MODEL", str(tiny_model_file))
    return tiny_model_file


def test_model_is_loaded_once(model, monkeypatch):
    deployment.get_predictor()
    calls = []
    monkeypatch.setattr(deployment, "Predictor", lambda *a, **k: calls.append(a))
    for photo in EIFFEL:
        inference.predict_landmarks(photo, k=3)
    assert calls == []


def test_model_path_order_and_missing_model(tmp_path, monkeypatch, tiny_model_file):
    monkeypatch.delenv("LANDMARKLIB_MODEL", raising=False)
    with pytest.raises(FileNotFoundError, match="03_transfer_learning.ipynb"):
        deployment.model_path()
    monkeypatch.setenv("LANDMARKLIB_MODEL", str(tiny_model_file))
    assert deployment.model_path() == tiny_model_file
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        deployment.model_path(tmp_path / "missing.onnx")


def test_wrong_kinds_of_model_file_say_what_to_do(tmp_path, tiny_training_file):
    with pytest.raises(ValueError, match=r"training file \(PyTorch\).*landmarklib export"):
        deployment.model_path(tiny_training_file)  # a .pt where an .onnx is expected
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match="damaged.onnx: not a readable ONNX model file"):
        deployment.Predictor(damaged)
    plain = tmp_path / "plain.onnx"  # a real ONNX model, without landmarklib's metadata
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["log_probs"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), plain)
    with pytest.raises(ValueError, match="without landmarklib's metadata.*landmarklib export"):
        deployment.Predictor(plain)
