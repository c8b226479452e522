"""landmarklib.checkpoints: what a checkpoint holds, safe loading, random generator states."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from helpers import QUIET, linear_model, synthetic
from torch.utils.data import DataLoader, TensorDataset

from landmarklib.checkpoints import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from landmarklib.fitting import fit
from landmarklib.training import Recipe


def test_checkpoint_from_fit_loads_safely_and_holds_everything(tmp_path):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    recipe = Recipe(epochs=2, scheduler="plateau", precision="float32", channels_last=False)
    fit(linear_model(), train, train, recipe, checkpoint=tmp_path / "c.pt", **QUIET)
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    assert {"epoch", "epochs", "model", "optimizer", "scheduler", "history", "best_model",
            "best_epoch", "precision", "rng"} <= set(checkpoint)
    assert checkpoint["epoch"] == 2 and checkpoint["history"]["epoch"] == [0, 1, 2]
    assert checkpoint["scheduler"]["mode"] == "min" and checkpoint["precision"] == "float32"
    assert isinstance(checkpoint["rng"]["loader"], torch.Tensor)


def test_random_generators_come_back_exactly():
    generator = torch.Generator().manual_seed(7)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    states = rng_states(generator)
    first = (random.random(), np.random.rand(), torch.rand(1).item(),
             torch.rand(1, generator=generator).item())
    set_rng_states(states, generator)
    again = (random.random(), np.random.rand(), torch.rand(1).item(),
             torch.rand(1, generator=generator).item())
    assert first == again


def test_round_trip_through_a_file_and_no_code_is_run(tmp_path):
    save_checkpoint(tmp_path / "sub" / "c.pt", {"epoch": 3, "rng": rng_states(),
                                                "weights": torch.arange(4.0)})
    loaded = load_checkpoint(tmp_path / "sub" / "c.pt")
    assert loaded["epoch"] == 3 and torch.equal(loaded["weights"], torch.arange(4.0))
    set_rng_states(loaded["rng"])

    class Evil:
        def __reduce__(self):
            return (print, ("this would run",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"epoch": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
