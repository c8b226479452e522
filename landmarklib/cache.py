"""Where landmarklib keeps what it downloads and computes: one folder, found the same way by
every module.

Under it: ``landmark_images/`` (the downloaded dataset), ``stats/`` (mean and std),
``checked/`` (which photos decode), ``resized/`` (resized copies), ``features/`` (cached
backbone features and activations), ``checkpoints/`` and ``models/`` (the default model file,
:func:`default_model_path`).

This module imports nothing heavier than the standard library (pooch only when
``$LANDMARKLIB_CACHE`` is unset), so that tagging photos can find the default model without
importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "default_model_path"]

CACHE_ENV = "LANDMARKLIB_CACHE"


def cache_dir() -> Path:
    """Folder for downloads, resized copies, cached statistics and features, and models.

    ``$LANDMARKLIB_CACHE`` if set, else the operating system's cache folder
    (``~/.cache/landmarklib`` on Linux), as chosen by :func:`pooch.os_cache`.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import pooch

    return Path(pooch.os_cache("landmarklib"))


def default_model_path() -> Path:
    """``<cache_dir()>/models/landmark_classifier.pt``: where notebook 03 and
    ``landmarklib train`` save the model, and where inference looks when given none."""
    return cache_dir() / "models" / "landmark_classifier.pt"
