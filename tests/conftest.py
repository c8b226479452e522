"""Shared fixtures: a private cache folder per test session and small real datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from landmarklib.data import tiny_data_root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep statistics and resized copies out of the user's cache; never read their data."""
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("LANDMARK_DATA", raising=False)
    monkeypatch.delenv("LANDMARKLIB_TINY", raising=False)


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    """A writable copy of the tiny dataset shipped in the package."""
    return Path(shutil.copytree(tiny_data_root(), tmp_path / "landmark_images"))
