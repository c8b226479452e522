"""landmarklib.inference and the command line: predictions, suggestions, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmarklib import inference
from landmarklib.data import tiny_data_root
from landmarklib.images import ImageError

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))
TAJ = sorted((tiny_data_root() / "test" / "21.Taj_Mahal").glob("*.jpg"))
PHOTOS = sorted(tiny_data_root().glob("test/*/*.jpg"))


@pytest.fixture
def model(tiny_model_file, monkeypatch) -> Path:
    monkeypatch.setenv("LANDMARKLIB_MODEL", str(tiny_model_file))
    return tiny_model_file


def test_predict_landmarks_contract(model):
    names = inference.predict_landmarks(EIFFEL[0], k=5)
    assert len(names) == 5 and len(set(names)) == 5
    assert names[0] == "Eiffel Tower"
    assert inference.predict_landmarks(TAJ[0], k=1) == ["Taj Mahal"]
    top = inference.predict_with_probabilities(EIFFEL[0], k=7)
    probabilities = [p for _, p in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)


def test_question_english():
    assert inference.question(["Eiffel Tower", "Trevi Fountain", "Terminal Tower"]) == (
        "Is this picture of the Eiffel Tower, Trevi Fountain, or Terminal Tower?")
    assert inference.question(["Forth Bridge", "Brooklyn Bridge"]) == (
        "Is this picture of the Forth Bridge or Brooklyn Bridge?")
    assert inference.question(["Stonehenge"]) == "Is this picture of the Stonehenge?"


def test_suggest_locations(model):
    sure = inference.suggest_locations(EIFFEL[0], show=False, threshold=0.3)
    assert sure.sure and sure.names[0] == "Eiffel Tower" and len(sure.names) == 3
    assert sure.text.startswith("Is this picture of the Eiffel Tower, ")
    assert sure.places[0].country == "France"
    unsure = inference.suggest_locations(EIFFEL[0], show=False, threshold=1.01)
    assert not unsure.sure and unsure.text.startswith("Not sure this shows a landmark I know")


def test_suggest_locations_draws_the_photo(model):
    from matplotlib import pyplot as plt

    plt.close("all")
    suggestion = inference.suggest_locations(EIFFEL[0], threshold=0.0)
    title = plt.gcf()._suptitle.get_text()
    assert title.startswith(suggestion.text) and "Paris, France" in title
    assert len(plt.gcf().axes) == 1 and suggestion.heatmap is None
    plt.close("all")


def test_suggest_locations_can_show_where_the_model_looks(model):
    """Grad-CAM of the training file beside the deployment file, over the network's view."""
    import sys

    from matplotlib import pyplot as plt

    plt.close("all")
    suggestion = inference.suggest_locations(EIFFEL[0], explain=True)
    assert suggestion.heatmap.size == (224, 224) and suggestion.heatmap.mode == "RGB"
    assert len(plt.gcf().axes) == 2 and "torch" in sys.modules
    plt.close("all")
    # Red (the strongest evidence) somewhere, blue (none) somewhere: a heatmap, not a flat tint.
    pixels = np.asarray(suggestion.heatmap, dtype=int)
    red_minus_blue = pixels[..., 0] - pixels[..., 2]
    assert red_minus_blue.max() > 60 and red_minus_blue.min() < -60


def test_a_heatmap_needs_the_training_file(tmp_path, tiny_model_file):
    import shutil

    alone = Path(shutil.copy(tiny_model_file, tmp_path / "alone.onnx"))
    with pytest.raises(FileNotFoundError, match="alone.pt beside"):
        inference.explain_photo(Image.open(EIFFEL[0]), alone)


# ------------------------------------------------------------------------------ bad input


def _bad_input_corpus(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """Files that are hard to classify, each with the words its error must contain
    (None: it must be classified)."""
    photo = Image.open(EIFFEL[0]).convert("RGB")
    corpus: dict[str, tuple[Path, str | None]] = {}

    def add(name, error, make):
        path = folder / name
        make(path)
        corpus[name] = (path, error)

    add("missing.jpg", "no such file", lambda p: None)
    add("a folder", "is a folder", lambda p: p.mkdir())
    add("empty.jpg", "empty", lambda p: p.write_bytes(b""))
    add("notes.txt", "not an image", lambda p: p.write_text("hello"))
    add("paper.pdf", "not an image", lambda p: p.write_bytes(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n"))
    add("truncated.jpg", "truncated",
        lambda p: p.write_bytes(EIFFEL[0].read_bytes()[: EIFFEL[0].stat().st_size // 2]))
    add("cmyk.jpg", None, lambda p: photo.convert("CMYK").save(p))
    add("deep.png", None, lambda p: Image.fromarray(
        np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(p))
    add("transparent.png", None, lambda p: photo.convert("RGBA").save(p))
    add("palette.gif", None, lambda p: photo.convert("P").save(p))
    add("gray.jpg", None, lambda p: photo.convert("L").save(p))
    add("tiny.png", None, lambda p: photo.resize((10, 10)).save(p))
    add("huge.png", "decompression", lambda p: Image.new("1", (12_000, 9_000)).save(p))
    add("needle.png", "too thin", lambda p: Image.new("L", (1, 60_000)).save(p))
    add("with space é.jpg", None, lambda p: photo.save(p))
    return corpus


def test_bad_input_gets_a_clear_error_naming_the_file(model, tmp_path):
    corpus = _bad_input_corpus(tmp_path)
    for name, (path, error) in corpus.items():
        if error is None:
            assert len(inference.predict_landmarks(path, k=3)) == 3, name
            continue
        with pytest.raises(ImageError) as caught:
            inference.predict_landmarks(path, k=3)
        message = str(caught.value)
        assert str(path) in message and error in message, (name, message)


def test_exif_rotated_photo_is_classified_upright(model, tmp_path):
    upright = Image.open(TAJ[0]).convert("RGB")
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # stored rotated...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with the tag that says "rotate 90 degrees clockwise to view"
    path = tmp_path / "sideways.jpg"
    sideways.save(path, exif=exif, quality=95)
    expected = inference.predict_with_probabilities(TAJ[0], k=1)[0]
    name, probability = inference.predict_with_probabilities(path, k=1)[0]
    assert name == expected[0] == "Taj Mahal"
    assert probability == pytest.approx(expected[1], abs=0.15)


def test_numpy_k_is_accepted(model):
    assert len(inference.predict_landmarks(EIFFEL[0], k=np.int64(2))) == 2


@pytest.mark.parametrize("k", [0, -1, 8, 2.5, True])
def test_bad_k(model, k):
    with pytest.raises(ValueError, match="k must be a whole number from 1 to 7"):
        inference.predict_landmarks(EIFFEL[0], k=k)


# ---------------------------------------------------------------------------- command line


@pytest.mark.parametrize("entry", ["cli", "tag", "predict_landmarks"])
def test_tagging_never_imports_torch(tiny_model_file, entry):
    """A fresh process tags a photo through the command line (``predict``; ``tag --dry-run``
    on a folder) or predict_landmarks, and never imports torch (nor torchvision, timm, or the
    training side of landmarklib)."""
    call = {"cli": f"landmarklib.cli.main(['predict', {str(PHOTOS[0])!r}, '--model', "
                   f"{str(tiny_model_file)!r}])",
            "tag": f"landmarklib.cli.main(['tag', {str(PHOTOS[0].parent)!r}, '--dry-run', "
                   f"'--model', {str(tiny_model_file)!r}])",
            "predict_landmarks": f"print(landmarklib.inference.predict_landmarks("
                                 f"{str(PHOTOS[0])!r}, 3, {str(tiny_model_file)!r}))"}[entry]
    code = textwrap.dedent(f"""
        import sys
        import landmarklib.cli, landmarklib.inference

        def heavy():
            return sorted({{m.split(".")[0] for m in sys.modules}}
                          & {{"torch", "torchvision", "timm", "torchmetrics"}}
                          | {{m for m in sys.modules if m.startswith(("landmarklib.data",
                             "landmarklib.export", "landmarklib.training"))}})

        assert not heavy(), heavy()
        status = {call}
        assert status in (0, None) and not heavy(), (status, heavy())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    in_folder = len(list(PHOTOS[0].parent.glob("*.jpg")))
    expected = {"cli": str(PHOTOS[0]), "tag": f"{in_folder} photos:", "predict_landmarks": "['"}
    assert expected[entry] in result.stdout, result.stdout
