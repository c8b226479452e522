"""Checkpoints: everything a training run needs to continue after it was stopped.

:func:`landmarklib.fitting.fit` writes a checkpoint after every epoch with
:func:`save_checkpoint` and, when started again with the same file, continues from it with
:func:`load_checkpoint` and :func:`set_rng_states`. A checkpoint holds the model's weights, the
optimiser's and scheduler's states (Adam's moment estimates, the position in the one-cycle
schedule), the history so far, the best weights so far, and the state of every random number
generator, so that a resumed run on a CPU gives the same weights as one never interrupted.

Only tensors and plain Python containers are stored, so a checkpoint loads with
``torch.load(path, weights_only=True)``: opening one never runs code. It is written atomically
(:func:`landmarklib.files.atomic_path`): a run killed while writing leaves the previous
checkpoint intact, and at most one epoch is lost.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from landmarklib.files import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "rng_states", "set_rng_states"]


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write ``checkpoint`` (tensors and plain containers) to ``path`` atomically.

    Args:
        path: the checkpoint file (folders are created).
        checkpoint: what :func:`landmarklib.fitting.fit` records: ``epoch``, ``epochs``,
            ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``history``, ``best_model``,
            ``best_epoch``, ``precision`` and ``rng`` (see :func:`load_checkpoint`).
    """
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, safely
    (``torch.load(..., weights_only=True)``: only tensors and plain containers are unpickled).

    Returns:
        A dict with keys ``epoch`` (epochs done), ``epochs`` (epochs planned), ``model`` (the
        last weights), ``best_model`` (the weights with the lowest validation loss, to use for
        predictions), ``best_epoch``, ``optimizer``, ``scheduler``, ``scaler``, ``history``
        (``History.to_dict()``), ``precision`` and ``rng`` (:func:`rng_states`).

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_states(generator: torch.Generator | None = None) -> dict:
    """The state of every random number generator (Python's, NumPy's, torch's on the CPU and
    on the current GPU, and ``generator``, e.g. a DataLoader's shuffling generator), as tensors
    and plain values."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [py_version, torch.tensor(py_state, dtype=torch.int64), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss,
                  np_gauss],
        "torch": torch.get_rng_state(),
        # The current GPU's only: under torchrun each process has one GPU, and asking for all
        # would start a CUDA context on every GPU in every process.
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else [],
        "loader": generator.get_state() if generator is not None else None,
    }


def set_rng_states(states: dict, generator: torch.Generator | None = None) -> None:
    """Put every random number generator back in the state :func:`rng_states` recorded."""
    py_version, py_state, py_gauss = states["python"]
    random.setstate((py_version, tuple(py_state.tolist()), py_gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = states["numpy"]
    np.random.set_state((np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss,
                         np_gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"][0])
    if generator is not None and states["loader"] is not None:
        generator.set_state(states["loader"])
