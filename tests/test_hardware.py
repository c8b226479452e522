"""landmarklib.hardware: the device, and the precision setting and what it resolves to."""

from __future__ import annotations

import pytest
import torch

from landmarklib import hardware
from landmarklib.hardware import (
    PRECISION_ENV,
    autocast,
    grad_scaler,
    native_bfloat16,
    pick_device,
    resolve_precision,
)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pick_device("cuda")


def test_explicit_precisions_are_what_they_say(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "bfloat16")  # an explicit setting wins over the default
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float8", "cpu")


def test_auto_follows_the_hardware():
    expected = "bfloat16" if native_bfloat16("cpu") else "float32"
    assert resolve_precision("auto", "cpu") == expected


def test_the_default_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert resolve_precision(None, "cpu") == resolve_precision(hardware.DEFAULT_PRECISION, "cpu")
    for value in ("float32", "bfloat16"):
        monkeypatch.setenv(PRECISION_ENV, value)
        assert resolve_precision(None, "cpu") == value
    monkeypatch.setenv(PRECISION_ENV, "fast")
    with pytest.raises(ValueError, match=PRECISION_ENV):
        resolve_precision(None, "cpu")


def test_autocast_and_scaler():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("cpu", "float32"):
        assert layer(x).dtype == torch.float32
    with autocast("cpu", "bfloat16"):
        assert layer(x).dtype == torch.bfloat16
    assert grad_scaler("cpu", "bfloat16") is None and grad_scaler("cpu", "float32") is None
