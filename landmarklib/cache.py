"""Where landmarklib keeps what it downloads and computes: one folder, found the same way by
every module.

Under it: ``landmark_images/`` (the downloaded dataset), ``stats/`` (mean and std),
``resized/`` (resized copies), ``features/`` (cached backbone features and activations),
``checkpoints/`` and ``models/`` (``landmark_classifier.pt``, the default model file).

This module imports nothing heavier than the standard library (pooch only when
``$LANDMARKLIB_CACHE`` is unset), so that :mod:`landmarklib.inference` can find the default
model without importing :mod:`landmarklib.data` (which imports torchvision).
"""

from __future__ import annotations

import os
from pathlib import Path

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
