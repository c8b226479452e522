"""What the commands share: argument types and help texts."""

from __future__ import annotations

import argparse

DATA_HELP = ("dataset folder (default: the tiny subset if $LANDMARKLIB_TINY=1, else "
             "$LANDMARK_DATA, else the cache folder)")
MODEL_HELP = "deployment file, .onnx (default: $LANDMARKLIB_MODEL, else the default model)"


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def probability(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {value}")
    return value
