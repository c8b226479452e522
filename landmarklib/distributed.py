"""The recipes of :mod:`landmarklib.recipes` on many processes: torchrun, DistributedDataParallel
and data in WebDataset shards.

    landmarklib shard DATA SHARDS
    torchrun --standalone --nproc-per-node 4 -m landmarklib.distributed scratch SHARDS \\
        --out scratch_model.pt --checkpoint scratch.ckpt
    torchrun --standalone --nproc-per-node 4 -m landmarklib.distributed transfer SHARDS

torchrun starts one process per GPU (a *rank*); each runs the same function here with its
:class:`~landmarklib.world.ProcessGroup`. Started without torchrun, the same command is one
process (:class:`~landmarklib.world.World`). How to run it on a machine and on a cluster, and
what changes at Google Landmarks v2 scale: ``docs/scaling.md``.

* :func:`train_scratch`: data parallelism. Each rank trains a copy of
  :class:`~landmarklib.models.LandmarkCNN` on its share of every epoch
  (:func:`~landmarklib.data.shard_loaders`), DistributedDataParallel averages the gradients,
  and :func:`~landmarklib.fitting.fit` (the notebooks' loop) reduces the metrics and lets rank
  0 write the checkpoints. On GPUs the BatchNorm layers become
  :class:`~torch.nn.SyncBatchNorm`: they normalise with the mean and variance of the whole
  global batch, not of one rank's share (a few photos per GPU give noisy statistics).
  ``recipe.batch_size`` is per rank: the global batch is ``ranks * batch_size``.
* :func:`train_transfer`: the cached-features recipe, shared out by *member*. The frozen
  trunk runs once per photo (the first rank of each machine computes and caches the
  activations, the others read the cache), so there is no gradient to average there; the
  fine-tuned members are independent models, so member ``k`` trains on rank ``k % ranks``,
  alone, exactly as in the one-process recipe (same seeds), and rank 0 gathers them. No
  BatchNorm is synchronised: the trunk is frozen (its statistics are ImageNet's) and each
  member's top trains on one rank.

Either way, rank 0 alone evaluates the test split (once) and writes the training file and its
deployment file (:func:`landmarklib.export.save_model`, :func:`~landmarklib.export.export_onnx`):
the same files as a one-process run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from landmarklib import data, evaluation, export, recipes, transfer
from landmarklib.cache import default_model_path
from landmarklib.fitting import History, fit
from landmarklib.hardware import resolve_precision
from landmarklib.models import LandmarkCNN, init_weights
from landmarklib.training import Recipe, seed_everything
from landmarklib.world import World

__all__ = ["train_scratch", "train_transfer"]


def train_scratch(
    shards: str | os.PathLike,
    out: str | os.PathLike | None = None,
    recipe: Recipe | None = None,
    checkpoint: str | os.PathLike | None = None,
    world: World | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> recipes.RunResult | None:
    """:func:`landmarklib.recipes.train_scratch` on this rank's share of a shard folder.

    Every rank calls it; they start from the same weights (DistributedDataParallel copies rank
    0's), take the same steps and record the same history. A run started again with the same
    ``checkpoint`` continues from rank 0's last checkpoint on every rank, also after one rank
    was killed.

    Args:
        shards: a folder written by :func:`landmarklib.data.write_shards`.
        out: training file to write (default ``scratch_model.pt`` beside the default model),
            and its ``.onnx`` beside it; by rank 0.
        recipe: :class:`~landmarklib.training.Recipe` (``batch_size`` per rank).
        checkpoint: written by rank 0 after every epoch, read by every rank to resume (a path
            every rank sees).
        world, num_workers, progress: this process's group (default one process); DataLoader
            workers per rank; progress bars (rank 0 only).

    Returns:
        On rank 0 a :class:`~landmarklib.recipes.RunResult`; ``None`` on the other ranks.

    Raises:
        ValueError: too few training shards for the ranks (see
            :func:`~landmarklib.data.shard_loaders`).
    """
    start, world, recipe = time.perf_counter(), world or World(), recipe or Recipe()
    loaders = data.shard_loaders(shards, recipe.size, recipe.batch_size, rank=world.rank,
                                 world_size=world.size, num_workers=num_workers,
                                 seed=recipe.seed or 0)
    seed_everything(recipe.seed or 0)
    model = init_weights(LandmarkCNN(n_classes=len(loaders.classes)), "default")
    if world.device.type == "cuda" and world.size > 1:  # SyncBatchNorm runs on GPUs only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    history = fit(model, loaders.train, loaders.valid, recipe, checkpoint=checkpoint,
                  device=world.device, live_plot=False, progress=progress and world.is_main,
                  world=world)
    precision = resolve_precision(recipe.precision, world.device)
    out = Path(out) if out else default_model_path().with_name("scratch_model.pt")

    def save() -> recipes.RunResult:
        test_photos = data.shard_loader(shards, "test", recipe.size, loaders.mean, loaders.std,
                                        recipe.batch_size, num_workers=num_workers)
        test = evaluation.evaluate_model(model, test_photos, loaders.class_names,
                                         progress=progress)
        export.save_model(out, model, loaders.classes, recipe.size, loaders.mean, loaders.std,
                          metrics={**recipes._metrics(test, history, precision),
                                   "ranks": world.size}, precision=precision)
        return recipes.RunResult(out, export.export_onnx(out), test, history,
                                 time.perf_counter() - start, precision)

    return world.on_main(save)


def train_transfer(
    shards: str | os.PathLike,
    out: str | os.PathLike | None = None,
    recipe: recipes.TransferRecipe | None = None,
    world: World | None = None,
    pretrained: bool = True,
    num_workers: int = 0,
    progress: bool = True,
) -> recipes.RunResult | None:
    """:func:`landmarklib.recipes.train_transfer` from a shard folder, its members shared out
    over the ranks (see the module's documentation). A recipe that one process would refuse
    is refused before any work (ValueError).

    Args:
        shards: a folder written by :func:`landmarklib.data.write_shards`.
        out: training file to write (default :func:`landmarklib.cache.default_model_path`),
            and its ``.onnx`` beside it; by rank 0.
        recipe: :class:`~landmarklib.recipes.TransferRecipe`. With ``members=0`` (a head on the
            frozen backbone) rank 0 trains the head and the other ranks wait.
        world, pretrained, num_workers, progress: this process's group (default one
            process); ImageNet weights (``False``: random, for tests); DataLoader workers for
            feature extraction; progress bars (rank 0 only).

    Returns:
        On rank 0 a :class:`~landmarklib.recipes.RunResult` (``frozen``: member 0's head on the
        frozen features); ``None`` on the other ranks.
    """
    start, world, recipe = time.perf_counter(), world or World(), recipe or recipes.TransferRecipe()
    precision, spec = recipes._check(recipe)
    progress = progress and world.is_main
    loaders = data.shard_loaders(shards, spec.input_size, 64, spec.mean, spec.std,
                                 augment=False, num_workers=num_workers)  # every photo, in order
    torch.manual_seed(recipe.seed)
    model, frozen, top, cache_name = recipes._transfer_model(recipe, len(loaders.classes),
                                                             pretrained)
    outputs = _activations(world, frozen, cache_name, loaders, recipe, progress)
    features = {split: transfer.run_in_batches(top, x) for split, (x, _) in outputs.items()}
    # The heads or members of this rank (k = rank, rank + ranks, ...); then every rank's.
    parts = [model.head] if recipe.members == 0 else list(model.members)
    mine = {k: _train_member(model, k, features, outputs, recipe, loaders, progress)
            for k in range(world.rank, len(parts), world.size)}
    done = {k: v for part in world.gather(mine) for k, v in part.items()}
    for k, (weights, _, _) in done.items():
        parts[k].load_state_dict(weights)
    out = Path(out) if out else default_model_path()

    def save() -> recipes.RunResult:
        history, frozen_test = History.from_dict(done[len(parts) - 1][1]), done[0][2]
        test = frozen_test if not recipe.members else evaluation.summarize(
            transfer.run_in_batches(model.from_activations, outputs["test"][0]),
            outputs["test"][1], loaders.class_names)
        metrics = {**recipes._metrics(test, history, precision), "ranks": world.size,
                   "frozen_test_accuracy": frozen_test.accuracy}
        export.save_model(out, model, loaders.classes, spec.input_size, spec.mean, spec.std,
                          metrics=metrics, precision=precision)
        return recipes.RunResult(out, export.export_onnx(out), test, history,
                                 time.perf_counter() - start, precision, frozen_test)

    return world.on_main(save)


def _activations(world: World, frozen, cache_name: str, loaders, recipe, progress: bool):
    """The frozen part's outputs for every photo (:func:`landmarklib.transfer.trunk_activations`):
    the first rank of each machine computes and caches them while the others wait, then the
    others read them from the cache."""
    outputs = None
    for turn in (True, False):
        if (world.local_rank == 0) == turn:
            outputs = transfer.trunk_activations(frozen, cache_name, loaders, recipe.mirrored,
                                                 world.device, progress, recipe.precision)
        if turn:
            world.barrier()
    return outputs


def _train_member(model, k: int, features, outputs, recipe, loaders, progress: bool):
    """Member ``k`` (or the head, with no members) trained as in
    :func:`landmarklib.recipes.train_transfer`: ``(its weights on the CPU, its history as a
    dict, for member 0 its head's test result on the frozen features, else None)``."""
    head = model.head if recipe.members == 0 else model.members[k].head
    history = recipes.train_head(head, features, outputs, recipe, recipe.seed + k)
    frozen_test = None
    if k == 0:
        frozen_test = evaluation.summarize(transfer.run_in_batches(head, features["test"]),
                                           outputs["test"][1], loaders.class_names)
    part = head
    if recipe.members:
        part = model.members[k]
        history = recipes.finetune_member(part, outputs, recipe, k, progress)
    weights = {name: value.detach().cpu() for name, value in part.state_dict().items()}
    return weights, history.to_dict(), frozen_test


if __name__ == "__main__":  # torchrun ... -m landmarklib.distributed scratch SHARDS ...
    from landmarklib.cli import main

    sys.exit(main(["distributed", *sys.argv[1:]]))
