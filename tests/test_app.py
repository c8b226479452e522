"""The upload box (landmarklib.app), driven as the browser drives it, without a browser.

A browser upload reaches the kernel as a comm message that ipywidgets turns into
``upload.set_state({"value": [...]})``; the tests send the same message, so the box gets what it
gets in JupyterLab: a tuple of dicts whose ``content`` is a ``memoryview``.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import pytest
from helpers import browser_upload
from PIL import Image

from landmarklib import inference
from landmarklib.app import LandmarkApp, PhotoResult, landmark_app, probability_chart, where_text
from landmarklib.data import tiny_data_root
from landmarklib.places import place_for

EIFFEL = tiny_data_root() / "test" / "16.Eiffel_Tower" / "image_1073.jpg"
TREVI = tiny_data_root() / "test" / "44.Trevi_Fountain" / "image_1013.jpg"


@pytest.fixture
def app(tiny_model_file) -> LandmarkApp:
    return landmark_app(tiny_model_file, k=3)


def test_upload_shows_top_k_and_place_like_predict_landmarks(app, tiny_model_file):
    browser_upload(app, {"eiffel.jpg": EIFFEL.read_bytes(), "trevi.jpg": TREVI.read_bytes()})

    assert isinstance(app.upload.value[0]["content"], memoryview)  # ipywidgets 8, not 7
    eiffel, trevi = app.results
    assert eiffel.top == inference.predict_with_probabilities(EIFFEL, 3, tiny_model_file)
    assert [name for name, _ in eiffel.top][0] == "Eiffel Tower"
    assert [name for name, _ in trevi.top][0] == "Trevi Fountain"
    assert eiffel.place.where == "Paris, France"

    card = app.cards.children[0]
    (photo,), (title, chart) = card.children[0].children, card.children[1].children
    assert "eiffel.jpg" in title.value
    assert "The Eiffel Tower is in Paris, France" in title.value
    assert "https://www.openstreetmap.org/?mlat=48.8584&amp;mlon=2.2945" in title.value
    assert Image.open(io.BytesIO(photo.value)).size == (224, 224)  # 96 px photo, shown larger
    assert Image.open(io.BytesIO(chart.value)).format == "PNG"


def test_a_sure_answer_offers_the_photos_xmp_sidecar(app):
    import base64
    import re

    from landmarklib.sidecars import read_sidecar

    browser_upload(app, {"eiffel.jpg": EIFFEL.read_bytes()})
    result = app.results[0]
    assert result.top[0][1] > 0.7  # the tiny model is sure of this photo (threshold 0.5)
    assert result.sidecar.name == "eiffel.jpg.xmp"
    info = read_sidecar(result.sidecar)
    assert info.landmark == "Eiffel Tower" and info.city == "Paris"
    title = app.cards.children[0].children[1].children[0].value
    link = re.search(r'<a download="eiffel.jpg.xmp" href="data:application/rdf\+xml;base64,'
                     r'([A-Za-z0-9+/=]+)"', title)
    assert link and base64.b64decode(link[1]) == result.sidecar.read_bytes()


def test_moving_the_slider_redraws_with_k_bars(app):
    browser_upload(app, {"eiffel.jpg": EIFFEL.read_bytes()})
    height_3 = chart_height(app)

    app.k.value = 5

    assert [len(result.top) for result in app.results] == [5]
    assert app.results[0].top[0][0] == "Eiffel Tower"
    assert chart_height(app) > height_3  # the chart on the card was drawn again, taller
    assert len(probability_chart(app.results[0].top).axes[0].patches) == 5


def chart_height(app: LandmarkApp) -> int:
    chart = app.cards.children[0].children[1].children[1]
    return Image.open(io.BytesIO(chart.value)).height


def test_a_file_that_is_not_a_photo_gets_a_message_naming_it(app):
    truncated = EIFFEL.read_bytes()[:2000]
    browser_upload(app, {"notes.txt": b"not a photo", "eiffel.jpg": EIFFEL.read_bytes(),
                         "cut_short.jpg": truncated})

    notes, eiffel, cut_short = app.results
    assert notes.top == [] and notes.error.startswith("notes.txt: not an image file")
    assert cut_short.error.startswith("cut_short.jpg: the image is truncated")
    assert eiffel.error is None and eiffel.top[0][0] == "Eiffel Tower"  # the others still work
    message = app.cards.children[0]
    assert isinstance(message, widgets.HTML)
    assert "Cannot use notes.txt: not an image file PIL can read" in message.value


def test_a_large_photo_is_shown_as_a_thumbnail(app):
    large = io.BytesIO()
    Image.open(EIFFEL).resize((1200, 900)).save(large, format="JPEG")
    browser_upload(app, {"large.jpg": large.getvalue()})
    photo = app.cards.children[0].children[0].children[0]
    assert Image.open(io.BytesIO(photo.value)).size == (224, 168)


def test_a_new_upload_replaces_the_cards(app):
    browser_upload(app, {"eiffel.jpg": EIFFEL.read_bytes(), "trevi.jpg": TREVI.read_bytes()})
    browser_upload(app, {"trevi.jpg": TREVI.read_bytes()})
    assert [result.name for result in app.results] == ["trevi.jpg"]
    assert len(app.cards.children) == 1


def test_the_box_has_the_parts_the_issue_asks_for(app, tiny_model_file):
    assert app.upload.accept == "image/*" and app.upload.multiple
    assert (app.k.min, app.k.value, app.k.max) == (1, 3, 7)  # the tiny model knows 7 landmarks
    assert "application/vnd.jupyter.widget-view+json" in app._repr_mimebundle_()
    with pytest.raises(ValueError, match="k must be from 1 to 7"):
        LandmarkApp(tiny_model_file, k=8)


def test_no_model_yet_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebooks/03_transfer_learning.ipynb"):
        landmark_app(tmp_path / "missing.pt")


def test_chart_has_one_bar_per_landmark_most_likely_on_top():
    top = [("Eiffel Tower", 0.7), ("Taj Mahal", 0.2), ("Trevi Fountain", 0.004)]
    ax = probability_chart(top).axes[0]
    assert [round(bar.get_width(), 3) for bar in ax.patches] == [0.004, 0.2, 0.7]
    assert [label.get_text() for label in ax.get_yticklabels()] == [
        "Trevi Fountain", "Taj Mahal", "Eiffel Tower"]  # drawn bottom to top
    assert [text.get_text() for text in ax.texts] == ["<1%", "20%", "70%"]


def test_where_text_says_when_it_is_not_sure():
    place = place_for("Eiffel Tower")
    sure = where_text(PhotoResult("a.jpg", [("Eiffel Tower", 0.9)], place))
    unsure = where_text(PhotoResult("b.jpg", [("Eiffel Tower", 0.2)], place))
    unknown = where_text(PhotoResult("c.jpg", [("Atomium", 0.6)], None))
    assert sure.startswith("The Eiffel Tower is in Paris, France")
    assert unsure.startswith("Not sure this shows a landmark I know (best guess 20%)")
    assert unknown == "Most likely: Atomium (60%)."


def test_ticking_the_box_shows_where_the_model_looks(app):
    browser_upload(app, {"eiffel.jpg": EIFFEL.read_bytes()})
    before = app.results[0].top
    app.explain.value = True  # what a click on the checkbox does
    photo, heatmap = app.cards.children[0].children[0].children
    assert Image.open(io.BytesIO(heatmap.value)).size == (224, 224)
    assert heatmap.value != photo.value and app.results[0].top == before
    app.explain.value = False
    assert len(app.cards.children[0].children[0].children) == 1
