"""Tests of landmarklib.world and landmarklib.distributed: training on several processes.

Run here on the CPU with the gloo backend, 2 processes on 127.0.0.1, started as a user starts
them (torchrun, or torch.multiprocessing for the smallest checks). Each process uses one
thread, so that a run repeats exactly on the same machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import QUIET, linear_model, synthetic
from torch.utils.data import DataLoader, TensorDataset

import landmarklib
from landmarklib import checkpoints, export
from landmarklib.fitting import fit
from landmarklib.training import Recipe
from landmarklib.world import World

REPO = Path(landmarklib.__file__).resolve().parents[1]
#: The scratch CNN on the tiny shards, small and fast: 64 px, 12 epochs, 3 steps per epoch.
SCRATCH = ["--size", "64", "--epochs", "12", "--precision", "float32", "--seed", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "LANDMARKLIB_CACHE": str(tmp_path / "cache"), "LANDMARKLIB_PRECISION": "float32"}


def _command(ranks: int, *args: str, program=("-m", "landmarklib.distributed")) -> list[str]:
    """``python -m landmarklib.distributed ARGS`` alone (``ranks == 0``) or under torchrun
    with ``ranks`` processes (``program=(script,)``: a script instead)."""
    if ranks == 0:
        return [sys.executable, *program, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
            str(ranks), "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
            *program, *args]


def _run(command: list[str], tmp_path: Path) -> str:
    done = subprocess.run(command, env=_environment(tmp_path), capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


# ----------------------------------------------------------------------- one process: no change


def test_one_process_world_changes_nothing():
    """fit with the default world and with World() explicitly: the same history and weights."""
    images, labels = synthetic(64, 4)
    runs = []
    for world in (None, World("cpu")):
        torch.manual_seed(0)
        model = linear_model()
        loader = DataLoader(TensorDataset(images, labels), batch_size=16, shuffle=True,
                            generator=torch.Generator())
        history = fit(model, loader, loader, Recipe(epochs=3, channels_last=False, seed=0),
                      world=world, **QUIET)
        runs.append((history.to_dict(), model.state_dict()))
    (h1, w1), (h2, w2) = runs
    assert h1["train_loss"] == h2["train_loss"] and h1["valid_loss"] == h2["valid_loss"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    one = World("cpu")
    assert one.mean(None, 0.5, 0.25) == (0.5, 0.25) and one.gather(3) == [3]
    assert one.on_main(lambda: 7) == 7 and one.is_main and one.wrap(linear_model()) is not None


class _Recording(World):
    """A world of one that records what fit asks of it."""

    def __init__(self):
        super().__init__("cpu")
        self.calls = []

    def wrap(self, model):
        self.calls.append("wrap")
        return model

    def mean(self, loader, *means):
        self.calls.append("mean")
        return means

    def on_main(self, function, *args, **kwargs):
        self.calls.append("on_main")
        return super().on_main(function, *args, **kwargs)


def test_fit_asks_the_world_to_wrap_reduce_and_write(tmp_path):
    images, labels = synthetic(32, 4)
    loader = DataLoader(TensorDataset(images, labels), batch_size=8)
    world = _Recording()
    fit(linear_model(), loader, loader, Recipe(epochs=2, channels_last=False), world=world,
        checkpoint=tmp_path / "run.ckpt", **QUIET)
    # wrap once; epoch 0 validates; then each epoch: train, validate, checkpoint.
    assert world.calls == ["wrap", "mean"] + ["mean", "mean", "on_main"] * 2
    assert checkpoints.load_checkpoint(tmp_path / "run.ckpt")["epoch"] == 2


# ------------------------------------------------------------------ two processes, gloo, spawn


def _two_ranks(rank: int, port: int, folder: str) -> None:
    """Rank ``rank`` of 2: reductions, rank-0 writes, and one DDP step (see the test)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from landmarklib.world import ProcessGroup

    with ProcessGroup() as world:
        loader = type("Counted", (), {"photos": rank + 1})()  # rank 0: 1 photo, rank 1: 2
        loss, accuracy = world.mean(loader, 1.0 + rank, 0.5 * rank)
        written = world.on_main(Path(folder, f"by-{rank}").write_text, "x")
        torch.manual_seed(0)  # the same model everywhere; different photos on each rank
        model = torch.nn.Linear(3, 2).double()
        ddp = world.wrap(model)
        x = torch.arange(12, dtype=torch.float64).view(4, 3)[2 * rank: 2 * rank + 2]
        ddp(x).square().mean().backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        result = {"loss": loss, "accuracy": accuracy, "written": written,
                  "weight": model.weight.detach().clone()}
        torch.save(world.gather(result), Path(folder, f"rank{rank}.pt"))


def test_two_processes_reduce_write_once_and_step_together(tmp_path):
    torch.multiprocessing.spawn(_two_ranks, args=(_free_port(), str(tmp_path)), nprocs=2)
    results = torch.load(tmp_path / "rank1.pt", weights_only=False)  # what rank 1 gathered
    for r in results:  # (1 * 1.0 + 2 * 2.0) / 3 and (1 * 0 + 2 * 0.5) / 3
        assert r["loss"] == pytest.approx(5 / 3) and r["accuracy"] == pytest.approx(1 / 3)
    assert [p.name for p in tmp_path.glob("by-*")] == ["by-0"]
    # DDP averages the gradients: both ranks take the step of one process on all 4 rows.
    torch.manual_seed(0)
    alone = torch.nn.Linear(3, 2).double()
    alone(torch.arange(12, dtype=torch.float64).view(4, 3)).square().mean().backward()
    torch.optim.SGD(alone.parameters(), lr=0.1).step()
    for r in results:
        torch.testing.assert_close(r["weight"], alone.weight.detach(), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ torchrun, end to end


@pytest.fixture(scope="module")
def runs(shards, tmp_path_factory) -> dict[int, Path]:
    """The scratch recipe on the tiny shards: one process (global batch 16), and torchrun with
    2 processes of 8 photos per batch (the same global batch): ``{ranks: model file}``."""
    folder = tmp_path_factory.mktemp("runs")
    models = {}
    for ranks, batch in ((1, "16"), (2, "8")):
        models[ranks] = folder / f"{ranks}" / "model.pt"
        _run(_command(0 if ranks == 1 else ranks, "scratch", str(shards), "--out",
                      str(models[ranks]), "--batch-size", batch, "--checkpoint",
                      str(folder / f"{ranks}" / "run.ckpt"), *SCRATCH), folder)
    return models


@pytest.mark.slow
def test_two_processes_train_as_well_as_one(runs):
    one, two = (export.load_model(runs[ranks]) for ranks in (1, 2))
    assert (two.model.state_dict().keys() == one.model.state_dict().keys()
            and type(two.model) is type(one.model))
    assert all(two.model.state_dict()[k].shape == v.shape
               for k, v in one.model.state_dict().items())
    for field in ("class_folders", "class_names", "input_size", "mean", "std", "precision"):
        assert getattr(two, field) == getattr(one, field), field
    assert one.metrics["ranks"] == 1 and two.metrics["ranks"] == 2
    assert all(runs[ranks].with_suffix(".onnx").stat().st_size > 100_000 for ranks in (1, 2))
    # Both learn (chance: loss ln 7 = 1.95, accuracy 1/7), and as well as each other within
    # the noise of 21 test photos.
    for model in (one, two):
        history = checkpoints.load_checkpoint(runs[model.metrics["ranks"]].with_name(
            "run.ckpt"))["history"]
        assert sum(history["train_loss"][-3:]) / 3 < history["train_loss"][1] - 0.2
        assert model.metrics["test_accuracy"] >= 4 / 21
    assert abs(one.metrics["test_accuracy"] - two.metrics["test_accuracy"]) <= 0.35


def _rank_process(launcher: int, rank: int) -> int | None:
    """The process id of rank ``rank`` among the children of torchrun (Linux /proc)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
            if int(fields["PPid"]) != launcher:
                continue
            environ = (status.parent / "environ").read_bytes().split(b"\0")
        except (OSError, KeyError, ValueError):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(status.parent.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the ranks in /proc")
def test_a_killed_rank_resumes_from_rank_0s_checkpoint(shards, runs, tmp_path):
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "model.pt"
    args = ["scratch", str(shards), "--out", str(out), "--batch-size", "8", "--checkpoint",
            str(ckpt), *SCRATCH]
    launcher = subprocess.Popen(_command(2, *args), env=_environment(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.is_file() and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = _rank_process(launcher.pid, 1)
        assert victim is not None, "rank 1 was not found running after the first checkpoint"
        os.kill(victim, signal.SIGKILL)
        output, _ = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    assert launcher.returncode != 0, output[-2000:]
    done = checkpoints.load_checkpoint(ckpt)["epoch"]
    assert 1 <= done < 12 and not out.exists()
    resumed = _run(_command(2, *args), tmp_path)
    assert f"Resuming from {ckpt}: {done} of 12 epochs done." in resumed
    history = checkpoints.load_checkpoint(ckpt)["history"]
    assert history["epoch"] == list(range(13))
    # Every step repeats exactly: the same losses as the run never interrupted.
    never = checkpoints.load_checkpoint(runs[2].with_name("run.ckpt"))["history"]
    for key in ("train_loss", "valid_loss", "valid_acc"):
        assert history[key][1:] == pytest.approx(never[key][1:], abs=1e-6), key
    assert export.load_model(out).metrics["test_accuracy"] == pytest.approx(
        export.load_model(runs[2]).metrics["test_accuracy"])


_TRANSFER = """
import sys
from landmarklib import distributed, recipes, world
recipe = recipes.TransferRecipe(hidden=32, epochs=4, members=2, finetune_epochs=1,
                                mirrored=False, batch_size=16, precision="float32")
with world.from_environment() as group:
    distributed.train_transfer(sys.argv[1], sys.argv[2], recipe, group, progress=False)
"""


@pytest.mark.slow
def test_transfer_members_train_on_different_ranks(shards, tmp_path):
    script = tmp_path / "transfer.py"
    script.write_text(_TRANSFER)
    _run(_command(2, str(shards), str(tmp_path / "model.pt"), program=(str(script),)),
         tmp_path)
    saved = export.load_model(tmp_path / "model.pt")
    assert saved.metrics["ranks"] == 2 and len(saved.model.members) == 2
    assert saved.metrics["test_accuracy"] >= 0.5  # chance 1/7; ImageNet features know these
    # Member 1 was trained on rank 1 and came back: its top left the ImageNet weights.
    from landmarklib import transfer

    fresh = transfer.build_finetuned_model(7, hidden=32, members=2)
    tops = [m.top.state_dict() for m in saved.model.members]
    start = fresh.members[1].top.state_dict()
    assert any(not torch.equal(tops[1][k], start[k]) for k in start if start[k].is_floating_point())
    assert any(not torch.equal(tops[0][k], tops[1][k]) for k in start
               if start[k].is_floating_point())
