"""Tag a photo: which landmarks is it most likely to show, and where was it taken?

:func:`predict_landmarks` keeps the original project's contract: a photo's path in, the ``k``
most likely landmark names out, most likely first. Unlike the original, the model file is read
once and kept (:func:`get_predictor`), not reloaded for every photo.

Which model file is used, in this order: the ``model`` argument; ``$LANDMARKLIB_MODEL``;
:func:`default_model_path` (where notebook 03 and ``landmarklib train`` save).

Photos go through the project's one evaluation preprocessing
(:func:`landmarklib.preprocessing.preprocess`, PIL and NumPy), the same that measured the
model's accuracy during training. This module imports neither torchvision nor timm (nor
:mod:`landmarklib.data`): a Lite0 model is rebuilt without timm
(:func:`landmarklib.export.rebuild_network`).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landmarklib.cache import default_model_path
from landmarklib.export import SavedModel, load_model
from landmarklib.images import open_image
from landmarklib.places import Place, place_for
from landmarklib.preprocessing import preprocess

MODEL_ENV = "LANDMARKLIB_MODEL"

#: Below this top-1 probability, :func:`suggest_locations` says it is not sure the photo shows
#: a known landmark. In the Google Landmark Recognition challenges a confident wrong answer
#: scores worse than no answer (their GAP metric ranks answers by confidence).
DEFAULT_THRESHOLD = 0.35


def model_path(model: str | os.PathLike | None = None) -> Path:
    """Resolve which model file to use (argument > ``$LANDMARKLIB_MODEL`` > default).

    Raises:
        FileNotFoundError: the file does not exist; the message says how to make one.
    """
    if model is not None:
        path = Path(model).expanduser()
    elif os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV]).expanduser()
    else:
        path = default_model_path()
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder; give the model file inside it")
    if not path.is_file():
        raise FileNotFoundError(
            f"No trained model at {path}. Make one by running "
            "notebooks/03_transfer_learning.ipynb or `landmarklib train`, or point "
            f"${MODEL_ENV} (or the model argument) at a model file."
        )
    return path


# ------------------------------------------------------------------------------ prediction


class Predictor:
    """A model file loaded once, ready to classify photos.

    Args:
        saved: a model loaded by :func:`landmarklib.export.load_model`.
        device: where it runs.

    Attributes:
        class_names: display names in class-id order.
    """

    def __init__(self, saved: SavedModel, device: torch.device | str = "cpu"):
        self.saved = saved
        self.device = torch.device(device)
        self.model = saved.model.to(self.device).eval()
        self.model.to(memory_format=torch.channels_last)
        self.class_names = saved.class_names
        #: PIL image -> float32 ``(3, input_size, input_size)`` array, the network's input.
        self.transform = functools.partial(preprocess, size=saved.input_size, mean=saved.mean,
                                           std=saved.std, resize_ratio=saved.resize_ratio)

    @torch.inference_mode()
    def probabilities(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Class probabilities for RGB photos.

        Returns:
            float32 ``(N, C)``, each row summing to 1, on the CPU.
        """
        batch = torch.from_numpy(np.stack([self.transform(image) for image in images]))
        batch = batch.to(self.device)
        log_probs = self.model(batch.contiguous(memory_format=torch.channels_last))
        return log_probs.float().exp().cpu()

    def top_k(self, image: Image.Image | str | os.PathLike, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely landmarks for one photo (a path or an RGB PIL image).

        Returns:
            ``[(display name, probability), ...]``, most likely first.

        Raises:
            ValueError: ``k`` is not between 1 and the number of classes.
            landmarklib.images.ImageError: the file is missing or not a usable photo.
        """
        check_k(k, len(self.class_names))
        k = operator.index(k)
        if not isinstance(image, Image.Image):
            image = open_image(image, short_side=self.saved.input_size)
        probs = self.probabilities([image])[0]
        values, indices = probs.topk(k)
        return [(self.class_names[i], float(p)) for p, i in zip(values, indices.tolist())]


def check_k(k: int, n_classes: int) -> None:
    """Raise ValueError unless ``k`` is a whole number (int or numpy integer) in
    ``[1, n_classes]``."""
    try:
        whole = operator.index(k) if not isinstance(k, bool) else None
    except TypeError:
        whole = None
    if whole is None or not 1 <= whole <= n_classes:
        raise ValueError(f"k must be a whole number from 1 to {n_classes} (the number of "
                         f"landmarks the model knows), got {k!r}")


_PREDICTORS: dict[tuple[str, int], Predictor] = {}


def get_predictor(model: str | os.PathLike | None = None, device=None) -> Predictor:
    """The :class:`Predictor` for a model file, loaded on first use and then kept.

    The file is read again only if it changed on disk (a newly trained model). The device is
    the GPU when there is one, else the CPU.
    """
    path = model_path(model).resolve()
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _PREDICTORS:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        _PREDICTORS.clear()
        _PREDICTORS[key] = Predictor(load_model(path), device)
    return _PREDICTORS[key]


def predict_landmarks(image_path: str | os.PathLike, k: int = 5,
                      model: str | os.PathLike | None = None) -> list[str]:
    """The ``k`` most likely landmarks in a photo, most likely first.

    >>> predict_landmarks("golden_gate.jpg", k=5)  # doctest: +SKIP
    ['Golden Gate Bridge', 'Forth Bridge', 'Sydney Harbour Bridge', 'Brooklyn Bridge',
     'Niagara Falls']

    Args:
        image_path: a photo file (any format :func:`landmarklib.images.open_image` reads).
        k: how many names.
        model: a model file (default: see :func:`model_path`).

    Returns:
        ``k`` display names.

    Raises:
        FileNotFoundError: no model file yet (the message says how to make one).
        landmarklib.images.ImageError: the photo is missing or unusable (names the file).
        ValueError: ``k`` is not between 1 and the number of classes.

    Taught in notebooks/04_inference_and_app.ipynb, 'Predicting landmarks'.
    """
    return [name for name, _ in predict_with_probabilities(image_path, k, model)]


def predict_with_probabilities(image_path: str | os.PathLike, k: int = 5,
                               model: str | os.PathLike | None = None) -> list[tuple[str, float]]:
    """Like :func:`predict_landmarks`, with each name's probability (0-1):
    ``[("Golden Gate Bridge", 0.91), ...]``."""
    return get_predictor(model).top_k(image_path, k)


# ------------------------------------------------------------------------------ suggestions


def question(names: Sequence[str]) -> str:
    """"Is this picture of the A, B, or C?" in correct English for 1, 2 or more names.

    >>> question(["Eiffel Tower", "Trevi Fountain", "Terminal Tower"])
    'Is this picture of the Eiffel Tower, Trevi Fountain, or Terminal Tower?'
    >>> question(["Golden Gate Bridge", "Forth Bridge"])
    'Is this picture of the Golden Gate Bridge or Forth Bridge?'
    """
    names = list(names)
    if not names:
        raise ValueError("no names to ask about")
    if len(names) == 1:
        listed = names[0]
    elif len(names) == 2:
        listed = f"{names[0]} or {names[1]}"
    else:
        listed = f"{', '.join(names[:-1])}, or {names[-1]}"
    return f"Is this picture of the {listed}?"


@dataclass
class Suggestion:
    """What :func:`suggest_locations` concluded about a photo.

    Attributes:
        names, probabilities: the top-k landmarks and their probabilities, most likely first.
        places: where each was taken (None for a class not in the 50-landmark table).
        sure: the top probability reached the threshold.
        text: the sentence shown to the user.
    """

    names: list[str]
    probabilities: list[float]
    places: list[Place | None]
    sure: bool
    text: str


def suggest_locations(
    image_path: str | os.PathLike,
    k: int = 3,
    threshold: float = DEFAULT_THRESHOLD,
    model: str | os.PathLike | None = None,
    show: bool = True,
) -> Suggestion:
    """Show a photo titled "Is this picture of the A, B, or C?" (the top ``k`` landmarks).

    When the most likely landmark's probability is below ``threshold``, the title says instead
    that the photo may not show any landmark the model knows, and lists the guesses.

    Args:
        image_path: a photo file.
        k: how many landmarks to suggest (3, as in the original project).
        threshold: the least top-1 probability to answer with confidence (0 always answers).
        model: a model file (default: see :func:`model_path`).
        show: draw the photo with its title (matplotlib); ``False`` only returns the result.

    Returns:
        A :class:`Suggestion`; ``suggestion.text`` is the title.

    Raises:
        The errors of :func:`predict_landmarks`.

    Taught in notebooks/04_inference_and_app.ipynb, 'Suggesting locations'.
    """
    predictor = get_predictor(model)
    image = open_image(image_path, short_side=predictor.saved.input_size)
    top = predictor.top_k(image, k)
    names = [n for n, _ in top]
    probabilities = [p for _, p in top]
    places = [place_for(n) for n in names]
    sure = probabilities[0] >= threshold
    if sure:
        text = question(names)
    else:
        text = (f"Not sure this shows a landmark I know (best guess {probabilities[0]:.0%}). "
                + question(names))
    where = places[0]
    if show:
        from matplotlib import pyplot as plt

        from landmarklib.plots import photo

        caption = f"{text}\n(the {names[0]} is in {where.where})" if where and sure else text
        photo(image, caption)
        plt.show()
    return Suggestion(names, probabilities, places, sure, text)
