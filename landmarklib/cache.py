"""Where landmarklib keeps what it downloads and computes: one folder, found the same way by
every module.

Under it: ``landmark_images/`` (the downloaded dataset), ``stats/`` (mean and std),
``checked/`` (which photos decode), ``resized/`` (resized copies), ``features/`` (cached
backbone features and activations), ``checkpoints/`` and ``models/`` (the default training file,
:func:`default_model_path`, and its deployment file, :func:`default_deployment_path`).

This module imports nothing heavier than the standard library (platformdirs, which knows each
operating system's cache folder, only when ``$LANDMARKLIB_CACHE`` is unset), so that tagging
photos can find the default model at once.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "default_model_path", "default_deployment_path"]

CACHE_ENV = "LANDMARKLIB_CACHE"


def cache_dir() -> Path:
    """Folder for downloads, resized copies, cached statistics and features, and models.

    ``$LANDMARKLIB_CACHE`` if set, else the operating system's cache folder
    (``~/.cache/landmarklib`` on Linux), as chosen by :func:`platformdirs.user_cache_dir`
    (also what pooch, which downloads the dataset, uses).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("landmarklib"))


def default_model_path() -> Path:
    """``<cache_dir()>/models/landmark_classifier.pt``: where notebook 03 and
    ``landmarklib train`` save the training file (:mod:`landmarklib.export`)."""
    return cache_dir() / "models" / "landmark_classifier.pt"


def default_deployment_path() -> Path:
    """``<cache_dir()>/models/landmark_classifier.onnx``: the deployment file of
    :func:`default_model_path`, where tagging looks when given no model."""
    return default_model_path().with_suffix(".onnx")
