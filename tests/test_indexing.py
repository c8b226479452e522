"""landmarklib.indexing and the memory at work: ``landmarklib index``, ``add-landmark``,
``remove-landmark``, ``landmarks``, and every way of asking the model (predict_landmarks,
suggest_locations, ``landmarklib predict`` and ``tag``, the upload box, the Gradio app)
answering with the memory beside the deployment file."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
import unicodedata
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import browser_upload, striped_photos

from landmarklib import cli, inference, tagging
from landmarklib.adding import add_landmark
from landmarklib.app import landmark_app
from landmarklib.data import tiny_data_root
from landmarklib.deployment import Predictor, answer_images, classify_photos, get_predictor
from landmarklib.images import open_image
from landmarklib.memory import memory_path, read_memory, write_memory

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def indexed(tiny_model_file, tmp_path_factory) -> Path:
    """A copy of the tiny deployment file with its memory, made by ``landmarklib index``."""
    model = tmp_path_factory.mktemp("indexed") / "model.onnx"
    shutil.copy(tiny_model_file, model)
    assert cli.main(["index", "--data", str(tiny_data_root()), "--model", str(model)]) == 0
    return model


@pytest.fixture(scope="module")
def stripes(tmp_path_factory) -> list[Path]:
    return striped_photos(tmp_path_factory.mktemp("photos") / "stripes")


@pytest.fixture(scope="module")
def added(indexed, stripes, tmp_path_factory) -> Path:
    """A copy of :func:`indexed` that knows one more landmark, from 3 striped photos."""
    model = tmp_path_factory.mktemp("added") / "model.onnx"
    shutil.copy(indexed, model)
    shutil.copy(memory_path(indexed), memory_path(model))
    assert cli.main(["add-landmark", "Striped Tower", *map(str, stripes[:3]), "--where",
                     "Ely, United Kingdom", "--lat", "52.3986", "--lon", "0.2636",
                     "--model", str(model)]) == 0
    return model


def test_index_writes_the_memory_beside_the_model(indexed, capsys):
    memory = read_memory(memory_path(indexed))
    assert memory.embeddings.shape[0] == 56 and memory.root == str(tiny_data_root().resolve())
    assert memory.temperature > 0 and memory.threshold is not None and memory.accept == 0.95
    predictor = Predictor(indexed)
    assert predictor.memory is not None and predictor.class_names == predictor.trained_names
    assert cli.main(["landmarks", "--json", "--model", str(indexed)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert len(listing["trained"]) == 7 and listing["added"] == []
    assert listing["score"] == memory.score and listing["threshold"] == memory.threshold


def test_index_refuses_a_dataset_of_other_classes(indexed, tmp_path, capsys):
    (tmp_path / "train" / "01.Other").mkdir(parents=True)
    (tmp_path / "test" / "01.Other").mkdir(parents=True)
    for split in ("train", "test"):
        for photo in EIFFEL[:2]:
            shutil.copy(photo, tmp_path / split / "01.Other" / photo.name)
    before = memory_path(indexed).read_bytes()
    assert cli.main(["index", "--data", str(tmp_path), "--model", str(indexed)]) == 1
    assert "is not the one the model was trained on" in capsys.readouterr().err
    assert memory_path(indexed).read_bytes() == before


def test_index_refuses_a_score_the_file_has_no_outputs_for_before_the_work(indexed, capsys,
                                                                           monkeypatch):
    from landmarklib import indexing

    before = memory_path(indexed).read_bytes()
    monkeypatch.setattr(indexing, "classify_photos", None)  # nothing may be classified
    assert cli.main(["index", "--score", "imagenet_knn", "--data", str(tiny_data_root()),
                     "--model", str(indexed)]) == 1
    error = capsys.readouterr().err
    assert "'imagenet_knn' score needs ImageNet embeddings" in error and "model.onnx" in error
    assert "`landmarklib export MODEL.pt` again" in error
    assert memory_path(indexed).read_bytes() == before


def test_the_memory_calibrates_and_gives_the_nearest_photos(indexed, tiny_model_file):
    plain = inference.suggest_locations(EIFFEL[0], model=tiny_model_file, show=False)
    suggestion = inference.suggest_locations(EIFFEL[0], model=indexed, show=False)
    assert plain.neighbours == [] and suggestion.names[0] == plain.names[0] == "Eiffel Tower"
    assert len(suggestion.neighbours) == 3
    assert all(n.path.is_file() for n in suggestion.neighbours)  # training photos, on disk
    similarities = [n.similarity for n in suggestion.neighbours]
    assert similarities == sorted(similarities, reverse=True) and 0 < similarities[0] <= 1
    assert suggestion.neighbours[0].name == "Eiffel Tower"
    predictor = get_predictor(indexed)
    image = open_image(EIFFEL[0], short_side=predictor.input_size)
    answer = answer_images([image], predictor)[0]
    assert suggestion.sure == answer.known  # the stored rule, not the 0.35 constant
    temperature = predictor.memory.temperature
    raw = np.exp(answer.log_probs / temperature)
    assert answer.probabilities == pytest.approx(raw / raw.sum(), abs=1e-5)


def test_an_added_landmark_is_answered_everywhere(added, stripes, capsys, tmp_path):
    assert inference.predict_landmarks(stripes[3], k=1, model=added) == ["Striped Tower"]
    suggestion = inference.suggest_locations(stripes[3], model=added, show=False)
    assert suggestion.names[0] == "Striped Tower" and suggestion.sure
    assert suggestion.places[0].latitude == pytest.approx(52.3986)
    assert {n.name for n in suggestion.neighbours} == {"Striped Tower"}
    assert cli.main(["predict", str(stripes[3]), "-k", "2", "--json", "--model",
                     str(added)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["predictions"][0]["name"] == "Striped Tower" and result["known"] is True
    assert result["predictions"][0]["city"] == "Ely" and len(result["similar"]) == 3
    assert cli.main(["predict", str(stripes[3]), "-k", "2", "--model", str(added)]) == 0
    answer, evidence = capsys.readouterr().out.strip().splitlines()
    assert answer.startswith(f"{stripes[3]}: Striped Tower (")
    assert evidence.startswith("  most similar: Striped Tower 0.") and evidence.count(".jpg)") == 3
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(stripes[3], library / "church.jpg")
    report = tmp_path / "report.csv"
    assert cli.main(["tag", str(library), "--dry-run", "--quiet", "--report", str(report),
                     "--model", str(added)]) == 0
    text = report.read_text()
    assert "Striped Tower" in text and "52.3986" in text
    assert cli.main(["landmarks", "--model", str(added)]) == 0
    assert "Striped Tower, Ely, United Kingdom (52.3986, 0.2636): 3 photos" in \
        capsys.readouterr().out


def test_a_landmark_added_with_only_its_city_and_country_is_tagged_with_them(
        indexed, stripes, tmp_path, exiftool):
    model = tmp_path / "model.onnx"
    shutil.copy(indexed, model)
    shutil.copy(memory_path(indexed), memory_path(model))
    assert cli.main(["add-landmark", "Striped Tower", *map(str, stripes[:3]), "--where",
                     "Ely, United Kingdom", "--model", str(model)]) == 0
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(stripes[3], library / "church.jpg")
    report = tmp_path / "report.csv"
    assert cli.main(["tag", str(library), "--quiet", "--report", str(report), "--model",
                     str(model)]) == 0
    (row,) = csv.DictReader(report.open())
    assert (row["status"], row["landmark"]) == ("tagged", "Striped Tower")
    assert row["reason"] == "no coordinates for this landmark: its city and country only"
    tags = exiftool([library / "church.jpg.xmp"])[library / "church.jpg.xmp"]
    assert (tags["XMP-photoshop:City"], tags["XMP-photoshop:Country"]) == ("Ely",
                                                                          "United Kingdom")
    assert not [key for key in tags if "GPS" in key]
    suggestion = inference.suggest_locations(stripes[3], model=model, show=False)
    assert suggestion.places[0].where == "Ely, United Kingdom"
    assert suggestion.places[0].latitude is None and "search?query=" in \
        suggestion.places[0].map_url
    tag = ["tag", str(library), "--quiet", "--report", str(report), "--model", str(model)]
    assert cli.main(tag) == 0
    assert next(csv.DictReader(report.open()))["status"] == "already tagged"
    # given coordinates later, the landmark reaches the photos tagged before
    assert cli.main(["remove-landmark", "Striped Tower", "--model", str(model)]) == 0
    assert cli.main(["add-landmark", "Striped Tower", *map(str, stripes[:3]), "--where",
                     "Ely, United Kingdom", "--lat", "52.3986", "--lon", "0.2636", "--model",
                     str(model)]) == 0
    assert cli.main(tag) == 0
    (row,) = csv.DictReader(report.open())
    assert (row["status"], row["latitude"]) == ("tagged", "52.3986")
    tags = exiftool([library / "church.jpg.xmp"])[library / "church.jpg.xmp"]
    assert tags["XMP-exif:GPSLatitude"] == pytest.approx(52.3986)
    assert tags["XMP-landmarklib:Model"] == tagging.tagger_id(Predictor(model))
    assert "+memory@sha256:" in tags["XMP-landmarklib:Model"]
    assert cli.main(["remove-landmark", "Striped Tower", "--model", str(model)]) == 0
    cli.main(tag)  # its location, written by this project and unedited, is answered again
    assert next(csv.DictReader(report.open()))["status"] in ("tagged", "not sure")


def test_the_upload_box_shows_added_landmarks_and_similar_photos(added, stripes):
    app = landmark_app(added, k=2)
    browser_upload(app, {"church.jpg": stripes[3].read_bytes(),
                         "eiffel.jpg": EIFFEL[0].read_bytes()})
    church, eiffel = app.results
    assert church.top[0][0] == "Striped Tower" and church.known is True
    assert church.place.city == "Ely" and len(church.neighbours) == 3
    assert eiffel.top[0][0] == "Eiffel Tower" and eiffel.neighbours[0].name == "Eiffel Tower"
    assert "Most similar training photos" in str(app.cards.children[0].children[1].children[2])


def test_the_gradio_app_shows_similar_photos(added, stripes):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("the Gradio extra is not installed")
    sys.path.insert(0, str(ROOT))
    try:
        import app as gradio_app
    finally:
        sys.path.remove(str(ROOT))
    label, where, _, _, similar = gradio_app.classify(str(stripes[3]), 2, model=added)
    assert max(label, key=label.get) == "Striped Tower" and where.startswith(
        "The Striped Tower is in Ely, United Kingdom")
    assert len(similar) == 3 and similar[0][1].startswith("Striped Tower, similarity 0.")


def test_bad_additions_leave_the_memory_unchanged(added, stripes, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    before = memory_path(added).read_bytes()
    cases = [
        (["Other", *map(str, stripes[:2])], "at least 3 different photos, got 2"),
        (["Other", *map(str, stripes[:3]), str(broken)], "broken.jpg"),
        (["striped tower", *map(str, stripes)], "already knows a landmark called"),
        (["Other", *map(str, stripes), "--lat", "95", "--lon", "0"], "latitude must be"),
    ]
    for argv, message in cases:
        assert cli.main(["add-landmark", *argv, "--model", str(added)]) == 1
        assert message in capsys.readouterr().err
    assert memory_path(added).read_bytes() == before


def test_remove_an_added_landmark(added, stripes, tmp_path, capsys):
    model = tmp_path / "model.onnx"
    shutil.copy(added, model)
    shutil.copy(memory_path(added), memory_path(model))
    assert cli.main(["remove-landmark", "striped tower", "--model", str(model)]) == 0
    assert "Removed" in capsys.readouterr().out
    assert "Striped Tower" not in inference.predict_landmarks(stripes[3], k=7, model=model)
    assert cli.main(["remove-landmark", "Eiffel Tower", "--model", str(model)]) == 1
    assert "only added landmarks can be removed" in capsys.readouterr().err


def test_index_over_an_older_memory_keeps_its_added_landmarks(added, tmp_path, capsys):
    model = tmp_path / "model.onnx"
    shutil.copy(added, model)
    with np.load(memory_path(added), allow_pickle=False) as archive:  # as format 1 wrote it
        arrays = {key: archive[key] for key in archive.files if key != "centre"}
    meta = json.loads(str(arrays["meta"])) | {"format": "landmarklib-memory/1"}
    np.savez(memory_path(model), **arrays | {"meta": np.array(json.dumps(meta))})
    with pytest.warns(UserWarning, match="older landmarklib.*landmarklib index"):
        assert Predictor(model).memory is None
    assert cli.main(["index", "--data", str(tiny_data_root()), "--model", str(model)]) == 0
    err = capsys.readouterr().err  # the model is opened first, so it warns
    assert err.startswith("landmarklib index: warning: ") and "older landmarklib" in err
    memory = read_memory(memory_path(model))
    assert memory.names[-1] == "Striped Tower" and len(memory.centre) == memory.embeddings.shape[1]
    assert memory.landmarks[0].where == "Ely, United Kingdom"


def test_index_keeps_two_landmarks_an_older_version_told_apart(added, stripes, tmp_path,
                                                              capsys):
    model = tmp_path / "model.onnx"
    shutil.copy(added, model)
    memory = read_memory(memory_path(added))
    answers = list(classify_photos(stripes[:3], Predictor(added)))
    for name in ("Café Tower", "Other", "Another"):
        memory = add_landmark(memory, name, answers)
    nfd = unicodedata.normalize("NFD", "Café Tower")  # as a version before NFC names kept it
    memory = replace(memory, landmarks=[*memory.landmarks[:-2],
                                        replace(memory.landmarks[-2], name=nfd),
                                        replace(memory.landmarks[-1], name="Bell\x07Tower")])
    write_memory(memory, memory_path(model))
    assert cli.main(["index", "--data", str(tiny_data_root()), "--model", str(model)]) == 0
    err = capsys.readouterr().err
    assert f"kept {ascii(nfd)} as 'Café Tower (2)' (an older" in err
    assert "kept 'Bell\\x07Tower' as 'Bell Tower'" in err
    assert read_memory(memory_path(model)).names[-4:] == [
        "Striped Tower", "Café Tower", "Café Tower (2)", "Bell Tower"]


def test_the_8_bit_file_knows_the_landmarks_added_to_the_float_file(added, tmp_path, capsys):
    from landmarklib.quantization import quantized_path

    model = tmp_path / "model.onnx"
    shutil.copy(added, model)
    shutil.copy(memory_path(added), memory_path(model))
    assert cli.main(["quantize", str(model), "--data", str(tiny_data_root()),
                     "--photos", "8"]) == 0
    assert "calibrated on 8 training photos" in capsys.readouterr().out
    memory = read_memory(memory_path(quantized_path(model)))
    assert [landmark.name for landmark in memory.landmarks] == ["Striped Tower"]
    assert memory.landmarks[0].place.latitude == pytest.approx(52.3986)


def test_a_memory_of_another_model_is_ignored_with_a_warning(indexed, tmp_path):
    model = tmp_path / "model.onnx"
    shutil.copy(indexed, model)  # the same network...
    memory = read_memory(memory_path(indexed))
    write_memory(replace(memory, model_id="other.onnx@sha256:000000000000"),
                 memory_path(model))  # ...but a memory of another model
    with pytest.warns(UserWarning, match="belongs to the model other.onnx"):
        predictor = Predictor(model)
    assert predictor.memory is None
    with pytest.warns(UserWarning, match="answering without it"):
        suggestion = inference.suggest_locations(EIFFEL[0], model=model, show=False)
    assert suggestion.neighbours == [] and suggestion.names[0] == "Eiffel Tower"


def test_answering_with_a_memory_never_imports_torch(added, stripes):
    """A fresh process that predicts with a memory (calibration, added landmarks, nearest
    photos) imports no torch, torchmetrics or training code."""
    code = textwrap.dedent(f"""
        import sys
        import landmarklib.cli

        status = landmarklib.cli.main(['predict', {str(stripes[3])!r}, '--json', '--model',
                                       {str(added)!r}])
        heavy = sorted({{m.split(".")[0] for m in sys.modules}}
                       & {{"torch", "torchvision", "timm", "torchmetrics"}}
                       | {{m for m in sys.modules if m.startswith(("landmarklib.data",
                          "landmarklib.export", "landmarklib.training"))}})
        assert status == 0 and not heavy, (status, heavy)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert '"name": "Striped Tower"' in result.stdout


def test_the_command_line_knows_every_score():
    from landmarklib.calibration import SCORES
    from landmarklib.cli.landmarks import SCORE_NAMES

    assert SCORE_NAMES == tuple(SCORES)
    with pytest.raises(SystemExit) as exited:
        cli.main(["index", "--score", "bogus"])
    assert exited.value.code == 2
