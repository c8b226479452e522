"""landmarklib.adding: landmarks added from a few photos, and removed."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import numpy as np
import pytest
from helpers import network_outputs as outputs
from helpers import striped_photos

from landmarklib import adding, embeddings
from landmarklib.data import tiny_data_root
from landmarklib.deployment import Predictor, classify_photos

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))


def test_add_a_landmark_from_three_photos_and_recognise_it(tiny_memory, tiny_predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes")
    memory = adding.add_landmark(
        tiny_memory, "Striped Tower", classify_photos(photos[:3], tiny_predictor),
        where="Ely, United Kingdom", latitude=52.3986, longitude=0.2636)
    added = memory.landmarks[-1]
    assert memory.names[-1] == "Striped Tower" and len(memory.names) == 8
    assert (added.city, added.country, added.where) == ("Ely", "United Kingdom",
                                                        "Ely, United Kingdom")
    assert len(added.photos) == 3 and np.linalg.norm(added.prototype) == pytest.approx(1.0)
    assert len(memory.embeddings) == len(tiny_memory.embeddings) + 3
    assert (memory.labels[-3:] == 7).all() and len(tiny_memory.landmarks) == 0  # unchanged
    log_probs, vectors, logits = outputs([photos[3], EIFFEL[0]], tiny_predictor)
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
        tiny_memory, tiny_predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes", 3)
    answers = list(classify_photos(photos, tiny_predictor))
    mirrored = list(classify_photos(photos, tiny_predictor, mirror=True))
    rows = np.stack([a.embedding for a in answers])
    views = np.concatenate([rows, np.stack([a.embedding for a in mirrored])])
    assert np.abs(views[3:] - rows).max() > 1e-3  # the mirror images are other views
    for given, expected in ((None, rows), (mirrored, views)):
        memory = adding.add_landmark(tiny_memory, "Striped", answers, mirrored=given)
        mean = tiny_memory.centred(expected).mean(axis=0)
        assert memory.landmarks[-1].prototype == pytest.approx(mean / np.linalg.norm(mean),
                                                               abs=1e-5)
        assert len(memory.embeddings) == 59  # the mirror images are not remembered photos
    with pytest.raises(ValueError, match="mirror images' answers must be those of the same"):
        adding.add_landmark(tiny_memory, "Striped", answers, mirrored=mirrored[::-1])


def test_bad_landmarks_are_refused_with_clear_messages(tiny_memory, tiny_predictor, tmp_path):
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
        # the same name typed with a combining macron (Unicode NFD, as macOS file names are)
        (unicodedata.normalize("NFD", "Haleakalā National Park"), photos, {},
         "already knows a landmark called 'Haleakalā National Park'"),
        ("Ｅｉｆｆｅｌ  tower", photos, {}, "already knows a landmark called 'Eiffel Tower'"),
        ("Eiffel Tower\ufeff", photos, {}, "already knows a landmark called 'Eiffel Tower'"),
        ("16.eiffel_tower", photos, {}, "already knows a landmark called 'Eiffel Tower'"),
        ("\u200b", photos, {}, "needs a name"),
        ("Church|Tower", photos, {}, "cannot hold '|' or '/'"),
        ("Church\tTower", photos, {}, "without tabs or other control characters"),
        ("  ", photos, {}, "needs a name"),
        ("Striped", photos, {"latitude": 91.0, "longitude": 0.0},
         "latitude must be between -90 and 90"),
        ("Striped", photos, {"latitude": 10.0, "longitude": -180.5},
         "longitude must be between -180 and 180"),
        ("Striped", photos, {"latitude": 10.0}, "both the latitude and the longitude"),
    ]
    for name, paths, place, message in cases:
        with pytest.raises(ValueError, match=message):
            adding.add_landmark(tiny_memory, name, classify_photos(paths, tiny_predictor),
                                    **place)
    assert tiny_memory.landmarks == [] and len(tiny_memory.embeddings) == 56


def test_remove_a_landmark(tiny_memory, tiny_predictor, tmp_path):
    photos = striped_photos(tmp_path / "stripes", 3)
    answers = list(classify_photos(photos, tiny_predictor))
    memory = adding.add_landmark(tiny_memory, "First", answers)
    memory = adding.add_landmark(memory, "Second", answers)
    assert memory.names[-2:] == ["First", "Second"] and memory.margin != 0
    left = adding.remove_landmark(memory, "first")
    assert left.names[-1] == "Second" and len(left.landmarks) == 1
    assert len(left.embeddings) == 59 and (left.labels[-3:] == 7).all()
    assert adding.remove_landmark(left, "Second").margin == 0.0
    for trained in ("Taj Mahal", "Haleakalā National Park"):  # a folder's, the place table's
        with pytest.raises(ValueError, match="trained on; only added landmarks"):
            adding.remove_landmark(memory, trained)
    with pytest.raises(ValueError, match="no added landmark is called 'Third'; added: First"):
        adding.remove_landmark(memory, "Third")


def test_a_name_is_stored_in_nfc_and_found_in_either_form(tiny_memory, tiny_predictor,
                                                           tmp_path):
    answers = list(classify_photos(striped_photos(tmp_path / "stripes", 3), tiny_predictor))
    composed, decomposed = "Kapelle Ständer", unicodedata.normalize("NFD", "Kapelle Ständer")
    assert composed != decomposed
    memory = adding.add_landmark(tiny_memory, decomposed, answers)
    assert memory.names[-1] == composed
    with pytest.raises(ValueError, match="already knows a landmark called 'Kapelle Ständer'"):
        adding.add_landmark(memory, composed.upper(), answers)
    assert adding.remove_landmark(memory, decomposed).landmarks == []
    # two spellings an older version told apart: the one typed exactly goes
    memory = adding.add_landmark(memory, "Other", answers)
    memory = replace(memory, landmarks=[memory.landmarks[0],
                                        replace(memory.landmarks[1], name=decomposed)])
    assert adding.remove_landmark(memory, decomposed).names[-1] == composed
    assert adding.remove_landmark(memory, composed).names[-1] == decomposed


def test_an_added_landmark_takes_only_the_photos_its_own_photos_vouch_for(
        tiny_finetuned_memory, tiny_finetuned_model_file, tmp_path):
    predictor = Predictor(tiny_finetuned_model_file)
    stripes = striped_photos(tmp_path / "stripes")
    memory = adding.add_landmark(tiny_finetuned_memory, "Striped Tower",
                                 classify_photos(stripes[:3], predictor))
    photos = [stripes[3], *sorted(tiny_data_root().glob("test/*/*.jpg"))]  # 1 + 21 photos
    answers = list(classify_photos(photos, predictor))
    log_probs, vectors, logits, imagenet = (np.stack([getattr(a, name) for a in answers])
                                            for name in ("log_probs", "embedding", "logits",
                                                         "imagenet"))
    # in the ImageNet embeddings: the fourth stripe photo 0.99 from the nearest of the three,
    # the landmarks' test photos at most 0.31; the floor, the 1% quantile of the validation
    # photos' similarity to the nearest of 3 photos of their landmark, 0.39
    own = memory.imagenet[memory.labels == 7].astype(np.float32)
    floor = np.quantile(memory.references(3)["imagenet_knn"], adding.VOUCH_QUANTILE)
    nearest = (imagenet @ own.T).max(axis=1)
    assert nearest[0] > floor + 0.3 and nearest[1:].max() < floor - 0.05
    vouched = adding.vouched(memory, vectors, imagenet)
    assert vouched.shape == (22, 1) and vouched[:, 0].tolist() == [True] + [False] * 21
    result = embeddings.recognise(memory, log_probs, vectors, logits, imagenet=imagenet)
    assert result.probabilities[0].argmax() == 7 and result.probabilities[0, 7] > 0.9
    assert result.probabilities[1:, 7].max() < 1e-6  # no odds without the vouching
    assert (result.probabilities[1:].argmax(axis=1) == log_probs[1:].argmax(axis=1)).all()
