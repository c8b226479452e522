"""The upload box: drop in photos, see which landmarks they show and where they were taken.

In a notebook cell::

    from landmarklib.app import landmark_app
    landmark_app()          # the cell shows the box

Upload one photo or several. Each becomes a card: the photo, a horizontal bar chart of its
``k`` most likely landmarks with their probabilities, and the place where the most likely one
is, with a link to it on OpenStreetMap; with a memory beside the model
(:mod:`landmarklib.memory`), the added landmarks are among the answers, the probabilities are
calibrated, "not sure" follows the stored threshold, and the card shows the three most similar
training photos with their classes and similarities. A file that is not a photo gets a card
that names it
and says what is wrong. Moving the ``k`` slider redraws the cards; nothing is uploaded again.

The model is the one :func:`landmarklib.deployment.get_predictor` loads once and keeps, and the
photos are decoded as :func:`landmarklib.inference.predict_landmarks` decodes them, so the box
gives exactly the answers ``predict_landmarks`` gives for the same files.

A pitfall this module avoids: ipywidgets 8 changed ``FileUpload.value``. It is now a tuple with
one dict per file (keys ``name``, ``type``, ``size``, ``content``, ``last_modified``), and
``content`` is a ``memoryview`` of the file's bytes. Version 7's ``upload.value[name]["content"]``
and ``upload.data`` no longer exist; code written for them fails with a ``KeyError`` or an
``AttributeError``.

Taught in notebooks/04_inference_and_app.ipynb, 'Your own photos'. The same box is served as a
web page by ``voila notebooks/app.ipynb`` (see docs/apps.md).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets
from matplotlib.figure import Figure
from PIL import Image, ImageOps

from landmarklib.deployment import Answer, Predictor, answer_images, get_predictor, ranked
from landmarklib.images import ImageError, image_from_bytes, open_image
from landmarklib.inference import DEFAULT_THRESHOLD, explain_photo
from landmarklib.memory import Neighbour
from landmarklib.places import Place
from landmarklib.tagging import sidecar_for

#: The slider goes up to this many landmarks (or the number the model knows, if fewer).
MAX_K = 10

#: Photos are shown this many pixels wide or high (whichever is longer).
THUMBNAIL_SIZE = 224


@dataclass
class PhotoResult:
    """What the box says about one uploaded file.

    Attributes:
        name: the file's name, as uploaded.
        top: ``[(landmark, probability), ...]``, most likely first; empty for an unusable file.
        place: where the most likely landmark is (None if the landmark table does not know it,
            or for an unusable file).
        error: why the file could not be used (names the file), or None.
        sidecar: the XMP sidecar this photo would get in a library
            (:func:`landmarklib.tagging.sidecar_for`), offered as a download; None when the
            model is not sure.
        known: whether the photo passed the memory's "I don't know" rule; ``None`` without
            a memory (then the top-1 probability decides, :func:`where_text`).
        neighbours: the most similar remembered photos (none without a memory).
    """

    name: str
    top: list[tuple[str, float]]
    place: Place | None
    error: str | None = None
    sidecar: Path | None = None
    known: bool | None = None
    neighbours: list[Neighbour] = field(default_factory=list)


class LandmarkApp:
    """The upload box and what it shows. Display it in a notebook cell (or its ``widget``).

    Args:
        model: a model file (default: see :func:`landmarklib.deployment.model_path`).
        k: how many landmarks each chart shows at first (1 to :data:`MAX_K`).

    Attributes:
        widget: the whole app, an ``ipywidgets.VBox``.
        upload: the ``FileUpload`` (any image type, several files at once).
        k: the ``IntSlider`` choosing how many landmarks to show.
        cards: a ``VBox`` with one card per uploaded file.
        results: one :class:`PhotoResult` per uploaded file, for the slider's ``k``.

    Raises:
        FileNotFoundError: there is no model file yet (the message says how to make one).
        ValueError: ``k`` is out of range.
    """

    def __init__(self, model: str | os.PathLike | None = None, k: int = 3):
        self.predictor: Predictor = get_predictor(model)
        most = min(MAX_K, len(self.predictor.class_names))
        if not 1 <= k <= most:
            raise ValueError(f"k must be from 1 to {most}, got {k!r}")
        self.upload = widgets.FileUpload(accept="image/*", multiple=True,
                                         description="Upload photos",
                                         layout=widgets.Layout(width="auto"))
        self.k = widgets.IntSlider(value=k, min=1, max=most, description="Top k",
                                   continuous_update=False)  # redraw once the slider stops
        self.explain = widgets.Checkbox(description="Show where the model looks", indent=False)
        self.cards = widgets.VBox()
        self.widget = widgets.VBox([widgets.HBox([self.upload, self.k, self.explain]),
                                    self.cards])
        self.widget.add_class("landmark-app")
        self.results: list[PhotoResult] = []
        self._photos: list[tuple[str, Image.Image | ImageError, Answer | None]] = []
        self.upload.observe(lambda change: self.handle_upload(change["new"]), names="value")
        self.k.observe(lambda change: self.show(), names="value")
        self.explain.observe(lambda change: self.show(), names="value")
        self._heatmaps: dict[int, Image.Image] = {}  # photo number -> heatmap, made when asked

    def handle_upload(self, value: Sequence[Mapping]) -> list[PhotoResult]:
        """Decode and classify uploaded files (what happens when someone uploads).

        Args:
            value: ``FileUpload.value`` in ipywidgets 8: one dict per file, with the file's
                ``name`` and its bytes as ``content`` (a ``memoryview``).

        Returns:
            :attr:`results`, one per file, in upload order.
        """
        self._photos, self._heatmaps = [], {}
        for item in value:
            try:
                image = image_from_bytes(bytes(item["content"]), name=item["name"],
                                         short_side=self.predictor.input_size)
            except ImageError as error:
                self._photos.append((item["name"], error, None))
                continue
            answer = answer_images([image], self.predictor, [item["name"]])[0]
            self._photos.append((item["name"], image, answer))
        return self.show()

    def show(self) -> list[PhotoResult]:
        """Redraw the cards of the uploaded photos with the slider's ``k`` (the network ran
        once per photo, at upload)."""
        names, self.results, cards = self.predictor.class_names, [], []
        for number, (name, image, answer) in enumerate(self._photos):
            if isinstance(image, ImageError):
                result = PhotoResult(name, [], None, error=str(image))
                cards.append(error_card(result))
                self.results.append(result)
                continue
            top = ranked(answer.probabilities, names, self.k.value)
            memory = self.predictor.memory is not None
            result = PhotoResult(name, top, self.predictor.place(top[0][0]),
                                 sidecar=sidecar_for(name, answer.probabilities, self.predictor,
                                                     known=answer.known),
                                 known=answer.known if memory else None,
                                 neighbours=answer.neighbours)
            if self.explain.value and number not in self._heatmaps:
                self._heatmaps[number] = explain_photo(image, self.predictor.path)
            heatmap = self._heatmaps.get(number) if self.explain.value else None
            cards.append(photo_card(image, result, heatmap))
            self.results.append(result)
        self.cards.children = cards
        return self.results

    def _repr_mimebundle_(self, **kwargs):
        """Show the app when it is the last expression of a notebook cell."""
        return self.widget._repr_mimebundle_(**kwargs)


def landmark_app(model: str | os.PathLike | None = None, k: int = 3) -> LandmarkApp:
    """The upload box, ready to show in a notebook cell. See :class:`LandmarkApp`.

    Taught in notebooks/04_inference_and_app.ipynb, 'Your own photos'.
    """
    return LandmarkApp(model, k)


# ------------------------------------------------------------------------------------ drawing


def probability_chart(top: Sequence[tuple[str, float]]) -> Figure:
    """A horizontal bar chart of landmark probabilities, most likely at the top.

    Args:
        top: ``[(landmark, probability), ...]``, most likely first (as
            :func:`landmarklib.inference.predict_with_probabilities` returns it).

    Returns:
        A matplotlib ``Figure`` with one bar per landmark, each labelled with its percentage.
    """
    names = [name for name, _ in top][::-1]
    probabilities = [p for _, p in top][::-1]
    height = 0.4 + 0.32 * len(top)  # inches: the same bar thickness for any k
    fig = Figure(figsize=(4.6, height))
    fig.subplots_adjust(left=0.42, right=0.98, bottom=0.2 / height, top=1 - 0.2 / height)
    ax = fig.subplots()
    bars = ax.barh(names, probabilities, color="tab:blue")
    labels = [f"{p:.0%}" if p >= 0.005 else "<1%" for p in probabilities]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=9)
    ax.set_xlim(0, 1.15)
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0, labelsize=9)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return fig


def where_text(result: PhotoResult, threshold: float = DEFAULT_THRESHOLD) -> str:
    """The card's sentence, as HTML: "The Eiffel Tower is in Paris, France (map)".

    Below ``threshold`` (the top-1 probability; for a model with a memory, when the photo
    failed its stored "I don't know" rule instead), it says the model is not sure the photo
    shows a landmark it knows, as :func:`landmarklib.inference.suggest_locations` does.
    """
    name, probability = result.top[0]
    place = result.place
    if place is None:
        sentence = f"Most likely: {html.escape(name)} ({probability:.0%})."
    else:
        link = (f'<a href="{html.escape(place.map_url)}" target="_blank" rel="noopener" '
                f'style="color:#1565c0;text-decoration:underline">map</a>')
        sentence = f"The {html.escape(place.name)} is in {html.escape(place.where)} ({link})."
    if (probability < threshold) if result.known is None else not result.known:
        sentence = (f"Not sure this shows a landmark I know (best guess {probability:.0%}). "
                    + sentence)
    return sentence


def photo_card(image: Image.Image, result: PhotoResult,
               heatmap: Image.Image | None = None) -> widgets.Widget:
    """One photo's card: the photo (and its heatmap, if given), its probability chart and
    where it was taken."""
    keep_size = widgets.Layout(flex="0 0 auto")  # no shrinking the pictures in a narrow page
    pictures = [ImageOps.contain(picture, (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
                for picture in ([image] if heatmap is None else [image, heatmap])]
    photo = widgets.HBox([widgets.Image(value=_encode(p, "jpeg"), format="jpeg",
                                        layout=keep_size) for p in pictures], layout=keep_size)
    chart = widgets.Image(value=_figure_png(probability_chart(result.top)), format="png",
                          layout=keep_size)
    chart.add_class("landmark-chart")
    title = widgets.HTML(f"<b>{html.escape(result.name)}</b><br>{where_text(result)}"
                         f"{sidecar_link(result.sidecar)}")
    text_and_chart = widgets.VBox([title, chart, *neighbour_strip(result.neighbours)],
                                  layout=widgets.Layout(margin="0 0 0 12px"))
    return widgets.HBox([photo, text_and_chart],
                        layout=widgets.Layout(margin="8px 0", align_items="flex-start"))


def neighbour_strip(neighbours: Sequence[Neighbour], size: int = 96) -> list[widgets.Widget]:
    """The most similar remembered photos as small thumbnails, each captioned with its class
    and cosine similarity: ``[]`` when there are none (no memory); a photo no longer on disk
    is named only."""
    if not neighbours:
        return []
    tiles = []
    for n in neighbours:
        caption = widgets.HTML(f'<small>{html.escape(n.name)}<br>similarity '
                               f'{n.similarity:.2f}</small>')
        try:
            thumbnail = ImageOps.contain(open_image(n.path, short_side=size), (size, size))
            picture = [widgets.Image(value=_encode(thumbnail, "jpeg"), format="jpeg")]
        except ImageError:
            picture = []
        tiles.append(widgets.VBox([*picture, caption],
                                  layout=widgets.Layout(margin="0 6px 0 0")))
    return [widgets.HTML("<small>Most similar training photos:</small>"), widgets.HBox(tiles)]


def sidecar_link(sidecar: Path | None) -> str:
    """HTML: a link that downloads the photo's XMP sidecar (the file itself, in a ``data:``
    URL, so it works in a notebook and in Voila alike), or nothing."""
    if sidecar is None:
        return ""
    content = base64.b64encode(sidecar.read_bytes()).decode("ascii")
    return (f'<br><a download="{html.escape(sidecar.name)}" '
            f'href="data:application/rdf+xml;base64,{content}" '
            'style="color:#1565c0;text-decoration:underline">Download the XMP sidecar</a> '
            "(put it next to the photo: photo managers read the place from it)")


def error_card(result: PhotoResult) -> widgets.Widget:
    """The card for a file that is not a usable photo: its name and what is wrong."""
    message = html.escape(result.error or result.name)
    return widgets.HTML(f'<p style="color:#b00020">Cannot use {message}</p>')


def _encode(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, quality=90)
    return buffer.getvalue()


def _figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
