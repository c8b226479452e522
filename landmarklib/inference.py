"""Tag a photo: which landmarks is it most likely to show, and where was it taken?

:func:`predict_landmarks` keeps the original project's contract: a photo's path in, the ``k``
most likely landmark names out, most likely first. :func:`suggest_locations` asks "Is this
picture of the A, B, or C?", and can show where in the photo the evidence lies (Grad-CAM,
:mod:`landmarklib.explain`). :func:`evaluate_deployment` measures a model as users get it.

The model is a deployment file (``.onnx``) read once and kept
(:func:`landmarklib.deployment.get_predictor`) and run by ONNX Runtime; nothing here imports
torch, except a heatmap, which needs the PyTorch network (:func:`explain_photo`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from landmarklib.deployment import (
    answer_images,
    check_k,
    classify_photos,
    get_predictor,
    ranked,
)
from landmarklib.images import open_image
from landmarklib.memory import Neighbour
from landmarklib.places import Place
from landmarklib.preprocessing import center_crop, normalize

__all__ = ["DEFAULT_THRESHOLD", "predict_landmarks", "predict_with_probabilities", "question",
           "Suggestion", "suggest_locations", "explain_photo", "evaluate_deployment"]

#: Below this top-1 probability, :func:`suggest_locations` says it is not sure the photo shows
#: a known landmark, for a model without a memory (one with a memory uses the "I don't know"
#: threshold stored in it, :mod:`landmarklib.memory`). In the Google Landmark Recognition
#: challenges a confident wrong answer scores worse than no answer (their GAP metric ranks
#: answers by confidence).
DEFAULT_THRESHOLD = 0.35


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
        sure: the photo passed the "I don't know" rule (the memory's, or the top probability
            reached the threshold).
        text: the sentence shown to the user.
        heatmap: where the evidence for the first answer lies (:func:`explain_photo`), when
            asked for.
        neighbours: the 3 most similar remembered photos, with their classes and cosine
            similarities (the evidence; empty for a model without a memory).
    """

    names: list[str]
    probabilities: list[float]
    places: list[Place | None]
    sure: bool
    text: str
    heatmap: Image.Image | None = None
    neighbours: list[Neighbour] = field(default_factory=list)


def suggest_locations(
    image_path: str | os.PathLike,
    k: int = 3,
    threshold: float | None = None,
    model: str | os.PathLike | None = None,
    show: bool = True,
    explain: bool = False,
) -> Suggestion:
    """Show a photo titled "Is this picture of the A, B, or C?" (the top ``k`` landmarks).

    When the photo fails the "I don't know" rule, the title says instead that the photo may
    not show any landmark the model knows, and lists the guesses. With a memory beside the
    model (:mod:`landmarklib.memory`) the probabilities are calibrated, the added landmarks
    are among the answers, the rule is the stored threshold, and the 3 most similar
    remembered photos are shown as evidence.

    Args:
        image_path: a photo file.
        k: how many landmarks to suggest (3, as in the original project).
        threshold: the least top-1 probability to answer with confidence (0 always answers);
            ``None``: the memory's rule, or :data:`DEFAULT_THRESHOLD` without a memory.
        model: a deployment file (default: see :func:`landmarklib.deployment.model_path`).
        show: draw the photo with its title (matplotlib); ``False`` only returns the result.
        explain: also where the evidence for the first answer lies (:func:`explain_photo`;
            imports torch, and needs the training file beside the deployment file).

    Returns:
        A :class:`Suggestion`; ``suggestion.text`` is the title.

    Raises:
        The errors of :func:`predict_landmarks` (and of :func:`explain_photo`).

    Taught in notebooks/04_inference_and_app.ipynb, 'Suggesting locations'.
    """
    predictor = get_predictor(model)
    check_k(k, len(predictor.class_names))
    image = open_image(image_path, short_side=predictor.input_size)
    answer = answer_images([image], predictor, [image_path])[0]
    top = ranked(answer.probabilities, predictor.class_names, k)
    heatmap = explain_photo(image, model) if explain else None
    names, probabilities = [n for n, _ in top], [p for _, p in top]
    if threshold is None:
        sure = answer.known if predictor.memory else probabilities[0] >= DEFAULT_THRESHOLD
    else:
        sure = probabilities[0] >= threshold
    text = question(names) if sure else (
        f"Not sure this shows a landmark I know (best guess {probabilities[0]:.0%}). "
        + question(names))
    suggestion = Suggestion(names, probabilities, [predictor.place(n) for n in names], sure,
                            text, heatmap, answer.neighbours)
    if show:
        _show(image, image_path, suggestion)
    return suggestion


def _show(image: Image.Image, image_path, suggestion: Suggestion) -> None:
    """Draw the photo titled with the suggestion (and its heatmap), then the photo beside its
    most similar remembered photos (those still on disk)."""
    from matplotlib import pyplot as plt

    from landmarklib.plots import neighbours as neighbours_figure
    from landmarklib.plots import photo

    text, where = suggestion.text, suggestion.places[0]
    if where and suggestion.sure:
        text = f"{text}\n(the {suggestion.names[0]} is in {where.where})"
    photo(image, text, suggestion.heatmap)
    plt.show()
    found = [n for n in suggestion.neighbours if n.path.is_file()]
    if found:
        neighbours_figure(image_path, [n.path for n in found], [n.name for n in found],
                          [n.similarity for n in found])
        plt.show()


_NETWORKS: dict[tuple[str, int], object] = {}


def explain_photo(image: Image.Image, model: str | os.PathLike | None = None,
                  class_index: int | None = None) -> Image.Image:
    """Where in a photo the evidence for a landmark lies: its Grad-CAM heatmap
    (:func:`landmarklib.explain.explain_predictions`, taught in notebook 02) over the photo as
    the network sees it (the central square of :func:`landmarklib.preprocessing.center_crop`).

    Grad-CAM needs gradients, so it runs the PyTorch network of the training file (``.pt``)
    beside the deployment file: torch is imported, and the network loaded once, on the first
    call only (seconds); tagging without heatmaps never pays for it.

    Args:
        image: a photo (PIL, any mode).
        model: the deployment file (default: see :func:`landmarklib.deployment.model_path`).
        class_index: the class to explain (default: the most likely one).

    Returns:
        An RGB PIL image, ``input_size`` pixels square: blue where nothing speaks for the
        class, red where the most does.

    Raises:
        FileNotFoundError: no training file beside the deployment file.
    """
    import torch

    from landmarklib import explain, export

    predictor = get_predictor(model)
    training_file = predictor.path.with_suffix(".pt")
    if not training_file.is_file():
        raise FileNotFoundError(f"No training file {training_file.name} beside "
                                f"{predictor.path}: a heatmap needs the PyTorch network")
    key = (str(training_file), training_file.stat().st_mtime_ns)
    if key not in _NETWORKS:
        _NETWORKS.clear()
        _NETWORKS[key] = export.load_model(training_file).model
    crop = center_crop(image, predictor.input_size, predictor.resize_ratio)
    x = torch.from_numpy(normalize(crop, predictor.mean, predictor.std))[None]
    explanation = explain.explain_predictions(_NETWORKS[key], x, class_index)
    return Image.fromarray(explain.overlay(crop, explanation.heatmaps[0]))


def evaluate_deployment(samples: Sequence[tuple[Path, int]], model=None, split: str = "test"):
    """Measure a deployment file on labelled photos, as users get it: every photo through
    :func:`classify_photos` (ONNX Runtime, the one preprocessing).

    Args:
        samples: ``(path, class_id)`` pairs, class ids in the model's order (e.g.
            ``check_layout(root).files["test"]``).
        model: a deployment file (default: see :func:`model_path`).
        split: what is measured, for printing.

    Returns:
        A :class:`landmarklib.evaluation.EvaluationResult` (imports torch, for torchmetrics).

    Raises:
        ValueError: a photo that does not decode (check the folder first).
    """
    import torch

    from landmarklib.evaluation import summarize

    predictor = get_predictor(model)
    rows = []
    for answer in classify_photos([path for path, _ in samples], predictor):
        if answer.error is not None:
            raise ValueError(str(answer.error))
        rows.append(answer.probabilities)
    log_probs = torch.from_numpy(np.log(np.maximum(np.stack(rows), 1e-30)))
    labels = torch.tensor([label for _, label in samples])
    return summarize(log_probs, labels, predictor.class_names, split)
