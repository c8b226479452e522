"""landmarklib.embeddings: nearest photos, added landmarks, recognition with the memory."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import striped_photos

from landmarklib import embeddings
from landmarklib.data import tiny_data_root
from landmarklib.deployment import Predictor, classify_photos

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))


@pytest.fixture(scope="module")
def predictor(tiny_model_file) -> Predictor:
    return Predictor(tiny_model_file)


def outputs(paths, predictor):
    answers = list(classify_photos(paths, predictor))
    return (np.stack([a.log_probs for a in answers]), np.stack([a.embedding for a in answers]),
            np.stack([a.logits for a in answers]))


def test_the_nearest_photo_of_a_training_photo_is_itself(tiny_memory, predictor):
    photos = [tiny_data_root() / tiny_memory.paths[i] for i in (0, 17, 40)]
    _, vectors, _ = outputs(photos, predictor)
    indices, similarities = embeddings.nearest(tiny_memory, vectors, k=3)
    assert indices.shape == similarities.shape == (3, 3)
    assert indices[:, 0].tolist() == [0, 17, 40]
    assert similarities[:, 0] == pytest.approx(1.0, abs=2e-3)  # stored in float16
    assert (np.diff(similarities, axis=1) <= 0).all()
    assert tiny_memory.embeddings.dtype == np.float16 and len(tiny_memory.paths) == 56


def test_add_a_landmark_from_three_photos_and_recognise_it(tiny_memory, predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes")
    memory = embeddings.add_landmark(
        tiny_memory, "Striped Tower", classify_photos(photos[:3], predictor),
        where="Ely, United Kingdom", latitude=52.3986, longitude=0.2636)
    added = memory.landmarks[-1]
    assert memory.names[-1] == "Striped Tower" and len(memory.names) == 8
    assert (added.city, added.country, added.where) == ("Ely", "United Kingdom",
                                                        "Ely, United Kingdom")
    assert len(added.photos) == 3 and np.linalg.norm(added.prototype) == pytest.approx(1.0)
    assert len(memory.embeddings) == len(tiny_memory.embeddings) + 3
    assert (memory.labels[-3:] == 7).all() and len(tiny_memory.landmarks) == 0  # unchanged
    log_probs, vectors, logits = outputs([photos[3], EIFFEL[0]], predictor)
    result = embeddings.recognise(memory, log_probs, vectors, logits)
    assert result.probabilities.shape == (2, 8)
    assert result.probabilities.sum(axis=1) == pytest.approx([1, 1], abs=1e-5)
    assert [memory.names[i] for i in result.probabilities.argmax(axis=1)] == [
        "Striped Tower", "Eiffel Tower"]
    assert result.probabilities[0, 7] > 0.9
    # The evidence for the new photo is the photos it was added from.
    assert sorted(result.neighbours[0]) == [56, 57, 58]
    assert {memory.paths[i] for i in result.neighbours[0]} == {str(p.resolve())
                                                               for p in photos[:3]}


def test_the_prototype_is_the_centred_mean_of_the_photos_and_their_mirror_images(
        tiny_memory, predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes", 3)
    answers = list(classify_photos(photos, predictor))
    mirrored = list(classify_photos(photos, predictor, mirror=True))
    rows = np.stack([a.embedding for a in answers])
    views = np.concatenate([rows, np.stack([a.embedding for a in mirrored])])
    assert np.abs(views[3:] - rows).max() > 1e-3  # the mirror images are other views
    for given, expected in ((None, rows), (mirrored, views)):
        memory = embeddings.add_landmark(tiny_memory, "Striped", answers, mirrored=given)
        mean = tiny_memory.centred(expected).mean(axis=0)
        assert memory.landmarks[-1].prototype == pytest.approx(mean / np.linalg.norm(mean),
                                                               abs=1e-5)
        assert len(memory.embeddings) == 59  # the mirror images are not remembered photos
    with pytest.raises(ValueError, match="mirror images' answers must be those of the same"):
        embeddings.add_landmark(tiny_memory, "Striped", answers, mirrored=mirrored[::-1])


def test_bad_landmarks_are_refused_with_clear_messages(tiny_memory, predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes", 3)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    cases = [
        ("Striped", photos[:2], {}, "at least 3 different photos, got 2"),
        ("Striped", [*photos[:2], photos[0]], {}, "at least 3 different photos, got 2"),
        ("Striped", [*photos, broken], {}, "broken.jpg"),
        ("eiffel tower", photos, {}, "already knows a landmark called 'Eiffel Tower'"),
        # the place table's name of a trained class (what tag writes), not its folder's
        ("haleakalā national park", photos, {},
         "already knows a landmark called 'Haleakalā National Park'"),
        ("Church|Tower", photos, {}, "cannot hold '|' or '/'"),
        ("  ", photos, {}, "needs a name"),
        ("Striped", photos, {"latitude": 91.0, "longitude": 0.0},
         "latitude must be between -90 and 90"),
        ("Striped", photos, {"latitude": 10.0, "longitude": -180.5},
         "longitude must be between -180 and 180"),
        ("Striped", photos, {"latitude": 10.0}, "both the latitude and the longitude"),
    ]
    for name, paths, place, message in cases:
        with pytest.raises(ValueError, match=message):
            embeddings.add_landmark(tiny_memory, name, classify_photos(paths, predictor),
                                    **place)
    assert tiny_memory.landmarks == [] and len(tiny_memory.embeddings) == 56


def test_remove_a_landmark(tiny_memory, predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes", 3)
    answers = list(classify_photos(photos, predictor))
    memory = embeddings.add_landmark(tiny_memory, "First", answers)
    memory = embeddings.add_landmark(memory, "Second", answers)
    assert memory.names[-2:] == ["First", "Second"] and memory.margin != 0
    left = embeddings.remove_landmark(memory, "first")
    assert left.names[-1] == "Second" and len(left.landmarks) == 1
    assert len(left.embeddings) == 59 and (left.labels[-3:] == 7).all()
    assert embeddings.remove_landmark(left, "Second").margin == 0.0
    with pytest.raises(ValueError, match="trained on; only added landmarks"):
        embeddings.remove_landmark(memory, "Taj Mahal")
    with pytest.raises(ValueError, match="no added landmark is called 'Third'; added: First"):
        embeddings.remove_landmark(memory, "Third")


def test_recognise_without_added_landmarks_keeps_the_models_answer(tiny_memory, predictor):
    photos = sorted(tiny_data_root().glob("test/*/*.jpg"))
    log_probs, vectors, logits = outputs(photos, predictor)
    result = embeddings.recognise(tiny_memory, log_probs, vectors, logits, k=2)
    assert (result.probabilities.argmax(axis=1) == log_probs.argmax(axis=1)).all()
    assert result.neighbours.shape == (21, 2)
    assert (result.known == (result.score >= tiny_memory.threshold)).all()
    knn = embeddings.recognise(replace(tiny_memory, score="knn"), log_probs, vectors, logits)
    assert knn.score == pytest.approx(knn.similarities[:, 0], abs=1e-6)
    # the default: the logs of the msp and knn ranks among the 14 validation photos, summed
    msp_rank = (np.sort(tiny_memory.valid_confidence)[None] <= result.probabilities.max(
        axis=1)[:, None]).sum(axis=1)
    knn_rank = (np.sort(tiny_memory.valid_similarity)[None] <= knn.score[:, None]).sum(axis=1)
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
    assert memory.score == embeddings.DEFAULT_SCORE == "msp+knn+imagenet_knn"
    assert memory.imagenet.shape == (56, 192) and memory.valid_imagenet.shape == (14, 192)
    assert memory.imagenet.dtype == np.float16
    valid = memory.valid_imagenet_similarity
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
    score = embeddings.recognise(memory, *(np.stack([getattr(a, name) for a in answers])
                                           for name in ("log_probs", "embedding", "logits")),
                                 imagenet=imagenet).score
    assert score[:len(stripes)].max() < score[len(stripes):].min()
    # added, the stripes are a landmark: their ImageNet embeddings join the memory
    added = embeddings.add_landmark(memory, "Striped Tower", answers[:3])
    assert added.imagenet.shape == (59, 192)
    assert added.imagenet[-3:].tolist() == imagenet[:3].astype(np.float16).tolist()
    fourth = answers[3]
    result = embeddings.recognise(added, fourth.log_probs[None], fourth.embedding[None],
                                  fourth.logits[None], imagenet=fourth.imagenet[None])
    assert added.names[result.probabilities.argmax()] == "Striped Tower"
    assert embeddings.remove_landmark(added, "Striped Tower").imagenet.tolist() == \
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
