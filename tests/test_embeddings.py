"""landmarklib.embeddings: nearest photos, added landmarks, recognition with the memory."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import network_outputs as outputs
from helpers import striped_photos

from landmarklib import adding, embeddings
from landmarklib.data import tiny_data_root
from landmarklib.deployment import Predictor, classify_photos

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))


def test_the_nearest_photo_of_a_training_photo_is_itself(tiny_memory, tiny_predictor):
    photos = [tiny_data_root() / tiny_memory.paths[i] for i in (0, 17, 40)]
    _, vectors, _ = outputs(photos, tiny_predictor)
    indices, similarities = embeddings.nearest(tiny_memory, vectors, k=3)
    assert indices.shape == similarities.shape == (3, 3)
    assert indices[:, 0].tolist() == [0, 17, 40]
    assert similarities[:, 0] == pytest.approx(1.0, abs=2e-3)  # stored in float16
    assert (np.diff(similarities, axis=1) <= 0).all()
    assert tiny_memory.embeddings.dtype == np.float16 and len(tiny_memory.paths) == 56


def test_recognise_without_added_landmarks_keeps_the_models_answer(tiny_memory, tiny_predictor):
    photos = sorted(tiny_data_root().glob("test/*/*.jpg"))
    log_probs, vectors, logits = outputs(photos, tiny_predictor)
    result = embeddings.recognise(tiny_memory, log_probs, vectors, logits, k=2)
    assert (result.probabilities.argmax(axis=1) == log_probs.argmax(axis=1)).all()
    assert result.neighbours.shape == (21, 2)
    assert (result.known == (result.score >= tiny_memory.threshold)).all()
    knn = embeddings.recognise(replace(tiny_memory, score="knn"), log_probs, vectors, logits)
    assert knn.score == pytest.approx(knn.similarities[:, 0], abs=1e-6)
    # the default: the logs of the msp and knn ranks among the 14 validation photos, summed
    msp_rank = (np.sort(tiny_memory.valid_confidence)[None] <= result.probabilities.max(
        axis=1)[:, None]).sum(axis=1)
    knn_rank = (np.sort(tiny_memory.references()["knn"])[None] <= knn.score[:, None]).sum(axis=1)
    assert result.score == pytest.approx(np.log((msp_rank + 1) / 15) + np.log(
        (knn_rank + 1) / 15), abs=1e-9)
    assert result.score.max() <= 0 and result.score.min() >= 2 * np.log(1 / 15)
    energy = embeddings.recognise(replace(tiny_memory, score="energy"), log_probs, vectors,
                                  logits)
    top = logits.max(axis=1, keepdims=True)
    assert energy.score == pytest.approx(
        (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0], rel=1e-5)


def test_fit_calibration_stores_the_temperature_and_the_threshold(tiny_memory):
    # a frozen backbone and a head: no ImageNet embeddings beside the model's own
    assert tiny_memory.temperature > 0 and tiny_memory.imagenet.shape == (0, 0)
    assert tiny_memory.score == embeddings.SCORE_WITHOUT_IMAGENET == "msp+knn"
    assert tiny_memory.accept == 0.95 and tiny_memory.threshold is not None
    assert tiny_memory.valid_embeddings.shape == (14, tiny_memory.embeddings.shape[1])
    assert 0 < tiny_memory.valid_confidence.min() <= tiny_memory.valid_confidence.max() <= 1
    with pytest.raises(ValueError, match="unknown score 'distance'"):
        embeddings.fit_calibration(tiny_memory, [], [], score="distance")
    with pytest.raises(ValueError, match="'imagenet_knn' score needs ImageNet embeddings"):
        embeddings.fit_calibration(tiny_memory, [], [], score="imagenet_knn")


def test_a_fine_tuned_model_tells_photos_of_no_landmark_by_its_imagenet_embeddings(
        tiny_finetuned_memory, tiny_finetuned_model_file, tmp_path):
    memory, predictor = tiny_finetuned_memory, Predictor(tiny_finetuned_model_file)
    assert memory.score == embeddings.DEFAULT_SCORE == "msp+knn+imagenet_veto"
    assert memory.imagenet.shape == (56, 192) and memory.valid_imagenet.shape == (14, 192)
    assert memory.imagenet.dtype == np.float16
    valid = memory.references()["imagenet_knn"]
    assert valid.shape == (14,) and 0.3 < valid.min() <= valid.max() <= 1
    stripes = striped_photos(tmp_path / "stripes")  # drawn stripes: no landmark at all
    tests = sorted(tiny_data_root().glob("test/*/*.jpg"))  # 21 photos of known landmarks
    answers = list(classify_photos([*stripes, *tests], predictor))
    assert [a.imagenet.shape for a in answers] == [(192,)] * (len(stripes) + len(tests))
    imagenet = np.stack([a.imagenet for a in answers])
    similarity = (imagenet @ memory.imagenet.astype(np.float32).T).max(axis=1)
    # stripes are further from every training photo than any validation photo (0.39 and
    # more) or test photo (0.62 and more) is: 0.29-0.31
    assert similarity[:len(stripes)].max() < valid.min() - 0.05
    assert similarity[len(stripes):].min() > similarity[:len(stripes)].max() + 0.2
    arrays = [np.stack([getattr(a, name) for a in answers])
              for name in ("log_probs", "embedding", "logits")]
    score = embeddings.recognise(replace(memory, score="msp+knn+imagenet_knn"), *arrays,
                                 imagenet=imagenet).score
    assert score[:len(stripes)].max() < score[len(stripes):].min()
    # the default's veto cannot act with 14 validation photos (a share is at least 1/15)
    vetoed = embeddings.recognise(memory, *arrays, imagenet=imagenet).score
    assert vetoed.tolist() == embeddings.recognise(replace(memory, score="msp+knn"), *arrays,
                                                   imagenet=imagenet).score.tolist()
    # added, the stripes are a landmark: their ImageNet embeddings join the memory
    added = adding.add_landmark(memory, "Striped Tower", answers[:3])
    assert added.imagenet.shape == (59, 192)
    assert added.imagenet[-3:].tolist() == imagenet[:3].astype(np.float16).tolist()
    fourth = answers[3]
    result = embeddings.recognise(added, fourth.log_probs[None], fourth.embedding[None],
                                  fourth.logits[None], imagenet=fourth.imagenet[None])
    assert added.names[result.probabilities.argmax()] == "Striped Tower"
    # judged against its own 3 photos, not the hundreds of a trained landmark: accepted
    assert result.known[0]
    few, usual = added.references(3), added.references()
    assert few["msp"] is usual["msp"] and few["knn"].shape == few["imagenet_knn"].shape == (14,)
    for name in ("knn", "imagenet_knn"):  # the nearest of 3 of its landmark's photos, at most
        assert (few[name] <= usual[name] + 1e-6).all() and few[name].mean() < usual[name].mean()
    assert adding.remove_landmark(added, "Striped Tower").imagenet.tolist() == \
        memory.imagenet.tolist()
    with pytest.raises(ValueError, match="needs the ImageNet embeddings' similarity"):
        embeddings.recognise(memory, fourth.log_probs[None], fourth.embedding[None])


def test_project_2d_is_a_deterministic_pca():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 5)) * [5.0, 2.0, 0.5, 0.1, 0.1]
    points = embeddings.project_2d(rows)
    assert points.shape == (200, 2) and points.dtype == np.float32
    assert points[:, 0].var() > points[:, 1].var() > 0.5 * 4
    assert points.mean(axis=0) == pytest.approx([0, 0], abs=1e-5)
    assert embeddings.project_2d(rows[::-1])[::-1] == pytest.approx(points, abs=1e-4)
