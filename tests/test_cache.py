"""landmarklib.cache: the one folder, and where the default model file is."""

from __future__ import annotations

from helpers import imported_by

from landmarklib.cache import cache_dir, default_model_path


def test_default_model_path_is_in_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert default_model_path() == tmp_path / "mine" / "models" / "landmark_classifier.pt"
    monkeypatch.delenv("LANDMARKLIB_CACHE")
    assert cache_dir().name == "landmarklib"  # the operating system's cache folder
    assert default_model_path() == cache_dir() / "models" / "landmark_classifier.pt"


def test_the_cache_module_needs_nothing_but_the_standard_library():
    assert not {"torch", "numpy", "PIL", "pooch"} & imported_by("import landmarklib.cache")
