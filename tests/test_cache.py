"""landmarklib.cache: the one folder, and where the default model file is."""

from __future__ import annotations

import subprocess
import sys

from landmarklib.cache import cache_dir, default_model_path


def test_default_model_path_is_in_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert default_model_path() == tmp_path / "mine" / "models" / "landmark_classifier.pt"
    monkeypatch.delenv("LANDMARKLIB_CACHE")
    assert cache_dir().name == "landmarklib"  # the operating system's cache folder
    assert default_model_path() == cache_dir() / "models" / "landmark_classifier.pt"


def test_the_cache_module_needs_nothing_but_the_standard_library():
    code = ("import sys, landmarklib.cache; "
            "print(sorted({'torch', 'numpy', 'PIL'} & {m.split('.')[0] for m in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
