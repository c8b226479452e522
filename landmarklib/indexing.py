"""A model's memory made from its dataset: what ``landmarklib index`` (and ``landmarklib
train``, by default) writes beside a deployment file.

:func:`index_model` runs the deployment file over the dataset's training photos (their
embeddings become the memory, :func:`landmarklib.memory.build_memory`) and over its validation
photos (the temperature and the "I don't know" threshold are fitted on them,
:func:`landmarklib.embeddings.fit_calibration`), keeps the landmarks added to the model before,
and writes the memory atomically beside the deployment file
(:func:`landmarklib.memory.memory_path`). The validation split is the one training held out
(:func:`landmarklib.data.split_samples`, the same seed and fraction as
:func:`landmarklib.data.make_loaders`).

Exact search over the embeddings (a matrix product, :func:`landmarklib.embeddings.nearest`)
is enough at this size (thousands of photos); at GLDv2's 4 million training photos an
approximate index (faiss: inverted lists with product quantisation, on a GPU) keeps a search
within milliseconds and the index within memory.

Taught in notebooks/05_beyond_the_landmarks.ipynb.
"""

from __future__ import annotations

import itertools
import os
import sys
import unicodedata
from pathlib import Path

from landmarklib.adding import CONTROL, NameTakenError, add_landmark
from landmarklib.calibration import NEEDS_IMAGENET
from landmarklib.deployment import Predictor, classify_photos
from landmarklib.embeddings import fit_calibration
from landmarklib.memory import Memory, added_landmarks, build_memory, memory_path, write_memory

__all__ = ["index_model"]


def index_model(predictor: Predictor, root: str | os.PathLike | None = None,
                accept: float = 0.95, score: str | None = None,
                val_fraction: float = 0.2, seed: int = 0,
                added_from: str | os.PathLike | None = None) -> tuple[Path, Memory, dict]:
    """Make and write the memory of a deployment file from the dataset it was trained on.

    Args:
        predictor: the deployment file (:class:`landmarklib.deployment.Predictor`).
        root: the dataset folder (default: :func:`landmarklib.data.data_root`'s).
        accept: the goal of the "I don't know" threshold: the share of validation photos of
            known landmarks to accept.
        score: a name from :data:`landmarklib.calibration.SCORES` (default
            :data:`landmarklib.embeddings.DEFAULT_SCORE`, or
            :data:`~landmarklib.embeddings.SCORE_WITHOUT_IMAGENET` for a deployment file
            without ImageNet embeddings).
        val_fraction, seed: the validation split, as training made it.
        added_from: the memory file whose added landmarks to keep (default: the one beside
            the deployment file; ``landmarklib quantize`` passes the float file's).

    Returns:
        ``(memory file, memory, measured)``, ``measured`` from
        :func:`~landmarklib.embeddings.fit_calibration` (ECE before and after, temperature,
        threshold, on the validation photos).

    Raises:
        ValueError: a dataset with problems, or not the classes the model was trained on; a
            score the deployment file lacks the outputs for.
    """
    from landmarklib import data

    if score in NEEDS_IMAGENET and len(predictor.session.get_outputs()) < 4:  # before the work
        raise ValueError(f"the {score!r} score needs ImageNet embeddings, which {predictor.path} "
                         "does not output: only a fine-tuned model's deployment file has them "
                         "(an older file lacks them: `landmarklib export MODEL.pt` again)")
    report = data.dataset_of_model(data.data_root(root), predictor.trained_folders)
    train, valid = data.split_samples(report.files["train"], report.root, val_fraction, seed)
    memory = build_memory(classify_photos([p for p, _ in train], predictor),
                          [c for _, c in train], predictor.trained_names, predictor.model_id,
                          report.root)
    memory = _keep_added(memory, Path(added_from or memory_path(predictor.path)), predictor)
    memory, measured = fit_calibration(memory, classify_photos([p for p, _ in valid], predictor),
                                       [c for _, c in valid], accept, score)
    return write_memory(memory, memory_path(predictor.path)), memory, measured


def _keep_added(memory: Memory, path: Path, predictor: Predictor) -> Memory:
    """``memory`` with the landmarks of the memory file already at ``path``, embedded again
    by this model (a landmark whose photos can no longer be used is dropped, and one whose
    name is now taken is kept as ``"NAME (2)"``, each with a message)."""
    if not path.is_file():
        return memory
    try:
        landmarks = added_landmarks(path)  # of an older format too: the photos are embedded again
    except ValueError as error:
        print(f"landmarklib index: the old memory is replaced ({error})", file=sys.stderr)
        return memory
    for landmark in landmarks:
        answers = list(classify_photos(landmark.photos, predictor))
        mirrored = list(classify_photos(landmark.photos, predictor, mirror=True))
        base = _usable_name(landmark.name)
        for name in itertools.chain([base], (f"{base} ({n})" for n in itertools.count(2))):
            try:
                memory = add_landmark(memory, name, answers, landmark.where, landmark.latitude,
                                      landmark.longitude, mirrored)
            except NameTakenError:  # e.g. an NFC and an NFD spelling, told apart before
                continue
            except ValueError as error:
                print(f"landmarklib index: dropped {landmark.name!r}: {error}", file=sys.stderr)
            else:
                if memory.names[-1] != unicodedata.normalize("NFC", landmark.name):
                    old = landmark.name  # NFD shown escaped: it looks like its NFC twin
                    old = repr(old) if unicodedata.is_normalized("NFC", old) else ascii(old)
                    print(f"landmarklib index: kept {old} as {memory.names[-1]!r} (an older "
                          "version allowed that name, or told it from another landmark's)",
                          file=sys.stderr)
            break
    return memory


def _usable_name(name: str) -> str:
    """``name``, with the control characters an older version allowed in it (a tab, a bell)
    as single spaces."""
    spaced = "".join(" " if unicodedata.category(c) in CONTROL else c for c in name)
    return name if spaced == name else (" ".join(spaced.split()) or "Landmark")
