"""landmarklib.memory: the memory file beside a deployment file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from landmarklib import memory as memories
from landmarklib.deployment import Answer
from landmarklib.memory import Landmark, Memory


def small_memory() -> Memory:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 4))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    landmark = Landmark("Ely Cathedral", ["/photos/ely1.jpg"], rows[5].astype(np.float32),
                        "Ely", "United Kingdom", 52.3986, 0.2636)
    return Memory(rows.astype(np.float16), np.array([0, 0, 1, 1, 2, 3]),
                  [f"train/{i}.jpg" for i in range(5)] + ["/photos/ely1.jpg"],
                  ["Eiffel Tower", "Taj Mahal", "Trevi Fountain"], "model.onnx@sha256:abc",
                  temperature=0.75, score="knn", threshold=0.61, accept=0.95,
                  valid_embeddings=rows[:2].astype(np.float16),
                  valid_confidence=np.array([0.9, 0.4], np.float32), margin=-0.05,
                  landmarks=[landmark], centre=rows[:5].mean(axis=0).astype(np.float32),
                  imagenet=np.abs(rows[:, :3]).astype(np.float16),
                  valid_imagenet=np.abs(rows[:2, 1:]).astype(np.float16),
                  valid_labels=np.array([0, 0]))


def test_memory_path_is_beside_the_deployment_file():
    assert memories.memory_path("/models/landmark_classifier.onnx") == Path(
        "/models/landmark_classifier.memory.npz")


def test_round_trip(tmp_path):
    memory = small_memory()
    path = memories.write_memory(memory, tmp_path / "m.memory.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.memory.npz"]  # no temporary file left
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only
        assert sorted(archive.files) == ["centre", "embeddings", "imagenet", "labels", "meta",
                                         "paths", "prototypes", "valid_confidence",
                                         "valid_embeddings", "valid_imagenet", "valid_labels"]
        assert archive["embeddings"].dtype == np.float16
        assert json.loads(str(archive["meta"]))["format"] == memories.MEMORY_FORMAT
    back = memories.read_memory(path, model_id="model.onnx@sha256:abc")
    assert back.embeddings.tolist() == memory.embeddings.tolist()
    assert back.labels.tolist() == [0, 0, 1, 1, 2, 3] and back.paths == memory.paths
    assert (back.temperature, back.score, back.threshold, back.accept, back.margin) == (
        0.75, "knn", 0.61, 0.95, -0.05)
    assert back.valid_confidence.tolist() == pytest.approx([0.9, 0.4])
    assert back.centre == pytest.approx(memory.centre) and back.centre.dtype == np.float32
    assert back.imagenet.tolist() == memory.imagenet.tolist() and back.imagenet.shape == (6, 3)
    assert back.valid_imagenet.tolist() == memory.valid_imagenet.tolist()
    assert back.valid_labels.tolist() == [0, 0]
    assert back.names == ["Eiffel Tower", "Taj Mahal", "Trevi Fountain", "Ely Cathedral"]
    ely = back.landmarks[0]
    assert (ely.name, ely.where, ely.latitude, ely.longitude, ely.photos) == (
        "Ely Cathedral", "Ely, United Kingdom", 52.3986, 0.2636, ["/photos/ely1.jpg"])
    assert ely.prototype == pytest.approx(memory.landmarks[0].prototype)


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = memories.write_memory(small_memory(), tmp_path / "m.memory.npz")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        memories.write_memory(small_memory(), path)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_reading_refuses_other_models_and_other_files(tmp_path):
    path = memories.write_memory(small_memory(), tmp_path / "m.memory.npz")
    with pytest.raises(ValueError, match="belongs to the model model.onnx@sha256:abc.*"
                                         "exported again.*landmarklib index"):
        memories.read_memory(path, model_id="other.onnx@sha256:def")
    renamed = memories.read_memory(path, model_id="renamed.onnx@sha256:abc")  # same content
    assert renamed.model_id == "model.onnx@sha256:abc"
    with pytest.raises(FileNotFoundError, match="landmarklib index"):
        memories.read_memory(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a landmarklib memory file"):
        memories.read_memory(tmp_path / "plain.npz")
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ValueError, match="not a landmarklib memory file") as refused:
        memories.read_memory(tmp_path / "pickled.npz")
    assert "allow_pickle" not in str(refused.value)  # never NumPy's advice to load it unsafely
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="text.npz: not a landmarklib memory file"):
        memories.read_memory(tmp_path / "text.npz")


def test_a_memory_of_an_older_format_is_refused_with_what_to_do(tmp_path):
    path = memories.write_memory(small_memory(), tmp_path / "m.memory.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files if key != "centre"}
    meta = json.loads(str(arrays["meta"])) | {"format": "landmarklib-memory/1"}
    np.savez(path, **arrays | {"meta": np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match=r"older landmarklib \(landmarklib-memory/1; this one "
                                         r"reads landmarklib-memory/3\); make it again with "
                                         "`landmarklib index`"):
        memories.read_memory(path)


def test_centred_subtracts_the_training_mean_and_normalises():
    memory = small_memory()
    rows = memory.embeddings.astype(np.float32)
    expected = rows - memory.centre
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert memory.centred(rows) == pytest.approx(expected, abs=1e-6)
    assert memory.centred_embeddings == pytest.approx(expected, abs=1e-6)
    assert np.linalg.norm(memory.centred(rows[0]), axis=1) == pytest.approx([1.0])
    # the centred training photos' mean is near 0: the shared direction is gone
    assert np.abs(memory.centred(rows[:5]).mean(axis=0)).max() < 0.5
    # the similarity of validation photos to the nearest remembered photo
    assert memory.references()["knn"] == pytest.approx([1.0, 1.0], abs=1e-3)


def test_references_for_a_landmark_known_from_few_photos():
    memory = small_memory()  # validation photos: rows 0 and 1, training photos of class 0
    rows = memory.embeddings.astype(np.float32)
    usual, one, both = memory.references(), memory.references(1), memory.references(2)
    assert one is memory.references(1) and one["msp"] is memory.valid_confidence
    for i in range(2):  # against one of the two photos of its landmark, drawn at random
        candidates = rows[:2] @ rows[i]
        assert np.abs(candidates - one["knn"][i]).min() < 1e-6
        assert one["knn"][i] <= usual["knn"][i] + 1e-6
    assert both["knn"] == pytest.approx(usual["knn"], abs=1e-6)  # both photos: itself
    imagenet = memory.imagenet.astype(np.float32)
    assert usual["imagenet_knn"] == pytest.approx(
        (memory.valid_imagenet.astype(np.float32) @ imagenet.T).max(axis=1), abs=1e-6)
    assert both["imagenet_knn"] == pytest.approx(
        (memory.valid_imagenet.astype(np.float32) @ imagenet[:2].T).max(axis=1), abs=1e-6)


def test_build_memory_keeps_paths_relative_and_skips_broken_photos(tmp_path):
    from landmarklib.images import ImageError

    good = np.array([0.6, 0.8], np.float32)
    answers = [Answer(tmp_path / "train" / "a" / "1.jpg", embedding=good),
               Answer(tmp_path / "train" / "b" / "2.jpg", error=ImageError("2.jpg", "broken")),
               Answer(tmp_path / "train" / "b" / "3.jpg", embedding=good[::-1].copy())]
    with pytest.warns(UserWarning, match="left out of the memory: 2.jpg: broken"):
        memory = memories.build_memory(answers, [0, 1, 1], ["A", "B"], "m@1", tmp_path)
    assert memory.paths == [str(Path("train/a/1.jpg")), str(Path("train/b/3.jpg"))]
    assert memory.labels.tolist() == [0, 1] and memory.embeddings.dtype == np.float16
    assert memory.centre == pytest.approx([0.7, 0.7])  # the mean training embedding
    assert memory.threshold is None and memory.landmarks == []
    with pytest.raises(ValueError, match="no photo could be used"), pytest.warns(UserWarning):
        memories.build_memory(answers[1:2], [1], ["A", "B"], "m@1", tmp_path)
