"""Train the from-scratch CNN with notebook 02's recipe; report speed and test accuracy.

Two parts:

1. **Throughput** (``--throughput-batches``, 0 skips it): training images per second of the
   default :class:`~landmarklib.models.LandmarkCNN` when the photos come from memory (decoded
   once, :class:`~landmarklib.data.DecodedPhotos`), from the original files (decoded every
   epoch by DataLoader workers), and from resized copies (:func:`~landmarklib.data.resized_copy`).
   Also the data pipeline alone, without the model.
2. **The full run** (``--epochs``, 0 skips it): :func:`~landmarklib.training.fit` with
   :class:`~landmarklib.training.Recipe` (the flags below override its fields), then the test
   split, evaluated once: top-1 and top-3 accuracy and N/total correct.

    LANDMARK_DATA=../shared/data/landmarks44 python benchmarks/train_scratch.py
    python benchmarks/train_scratch.py --data DIR --epochs 30 --lr 3e-3 --label-smoothing 0.1

The numbers depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from landmarklib import data
from landmarklib.evaluation import evaluate_model
from landmarklib.models import LandmarkCNN, count_parameters
from landmarklib.training import Recipe, fit, make_loss, make_optimizer, seed_everything


def parse_args() -> argparse.Namespace:
    recipe = Recipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="dataset folder (default $LANDMARK_DATA)")
    parser.add_argument("--size", type=int, default=recipe.size)
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size)
    parser.add_argument("--epochs", type=int, default=recipe.epochs)
    parser.add_argument("--lr", type=float, default=recipe.lr)
    parser.add_argument("--weight-decay", type=float, default=recipe.weight_decay)
    parser.add_argument("--label-smoothing", type=float, default=recipe.label_smoothing)
    parser.add_argument("--lr-scheduler", default=recipe.scheduler,
                        type=lambda s: None if s.lower() == "none" else s,
                        help="onecycle, plateau or none")
    parser.add_argument("--seed", type=int, default=recipe.seed)
    parser.add_argument("--widths", type=lambda s: tuple(int(w) for w in s.split(",")),
                        default=None, help="channels per stage, e.g. 32,64,128,256")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (default: a temporary one); an existing one resumes")
    parser.add_argument("--throughput-batches", type=int, default=20,
                        help="batches timed per data source (0 skips the comparison)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args()


def recipe_from(args: argparse.Namespace) -> Recipe:
    values = {f.name: getattr(args, f.name) for f in fields(Recipe) if hasattr(args, f.name)}
    return Recipe(**values, scheduler=args.lr_scheduler)


def new_model(n_classes: int, args) -> LandmarkCNN:
    return LandmarkCNN(n_classes, widths=args.widths) if args.widths else LandmarkCNN(n_classes)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"load average {load}")


# ------------------------------------------------------------------------------- throughput


def time_batches(loader, n_batches: int, step=None) -> float:
    """Images per second over ``n_batches`` batches (after one warm-up batch)."""
    iterator = iter(loader)
    images, labels = next(iterator)
    if step:
        step(images, labels)
    start, seen = time.perf_counter(), 0
    for _ in range(n_batches):
        try:
            images, labels = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            images, labels = next(iterator)
        if step:
            step(images, labels)
        seen += len(labels)
    return seen / (time.perf_counter() - start)


def throughput(root: Path, args, recipe: Recipe) -> dict:
    """Data-only and training images/s from memory, original files and resized copies."""
    report = data.check_layout(root)
    files, classes = report.files["train"], report.classes
    transform = data.train_transform(recipe.size, (0.5,) * 3, (0.25,) * 3)
    model = new_model(len(classes), args).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, recipe.lr, recipe.weight_decay)
    loss_fn = make_loss(recipe.label_smoothing)
    model.train()

    def step(images, labels):
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def loader(dataset, num_workers):
        return DataLoader(data.Transformed(dataset, transform), batch_size=recipe.batch_size,
                          shuffle=True, num_workers=num_workers,
                          persistent_workers=num_workers > 0)

    results = {}
    start = time.perf_counter()
    in_memory = data.DecodedPhotos(data.PhotoDataset(files, classes), recipe.size * 8 // 7,
                                   progress=False)
    decode_s = time.perf_counter() - start
    print(f"Decoding {len(files)} photos into memory once: {decode_s:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        copy = data.resized_copy(root, short_side=256, dest=tmp, progress=False)
        print(f"Writing resized copies (short side 256) once: {time.perf_counter() - start:.1f} s")
        copies = data.check_layout(copy).files["train"]
        workers = data.default_num_workers()
        sources = {
            "in memory": (in_memory, 0),
            f"in memory, {workers} worker(s)": (in_memory, workers),
            f"original files, {workers} worker(s)": (data.PhotoDataset(files, classes), workers),
            f"resized copies, {workers} worker(s)": (data.PhotoDataset(copies, classes), workers),
        }
        for name, (dataset, num_workers) in sources.items():
            only_data = time_batches(loader(dataset, num_workers), args.throughput_batches)
            training = time_batches(loader(dataset, num_workers), args.throughput_batches, step)
            results[name] = {"data_only_images_per_s": only_data,
                             "training_images_per_s": training}
            print(f"  {name:32s} data alone {only_data:7.0f} images/s, "
                  f"training {training:5.0f} images/s")
    results["decode_once_s"] = decode_s
    return results


# --------------------------------------------------------------------------------- full run


def full_run(root: Path, args, recipe: Recipe) -> dict:
    wall_start = time.perf_counter()
    seed_everything(recipe.seed)
    loaders = data.make_loaders(root, size=recipe.size, batch_size=recipe.batch_size,
                                seed=recipe.seed, progress=False)
    model = new_model(len(loaders.classes), args)
    print(f"{len(loaders.train.dataset)} training, {len(loaders.valid.dataset)} validation, "
          f"{len(loaders.test.dataset)} test photos, {len(loaders.classes)} classes; "
          f"model with {count_parameters(model):,} weights; {recipe}")
    optimizer = make_optimizer(model, lr=recipe.lr, weight_decay=recipe.weight_decay)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else Path(tmp) / "scratch.pt"
        history = fit(model, loaders, epochs=recipe.epochs, optimizer=optimizer,
                      scheduler=recipe.scheduler, label_smoothing=recipe.label_smoothing,
                      checkpoint_path=checkpoint, channels_last=True, seed=recipe.seed,
                      live_plot=False, progress=False)
    result = evaluate_model(model, loaders.test, loaders.class_names, progress=False)
    wall = time.perf_counter() - wall_start
    seconds = history.seconds
    n_train = len(loaders.train.dataset)
    print(result)
    print(f"Top-1 {result.accuracy:.1%} ({result.correct}/{result.total}), top-3 {result.top3:.1%}"
          f" (chance {1 / len(loaders.classes):.1%}); best epoch {history.best_epoch}")
    print(f"Epochs: mean {sum(seconds) / len(seconds):.1f} s, min {min(seconds):.1f} s, "
          f"max {max(seconds):.1f} s; {n_train * len(seconds) / sum(seconds):.0f} training "
          f"images/s (validation included in the time); whole run {wall / 60:.1f} min wall")
    return {"recipe": asdict(recipe), "history": history.to_dict(), "test": {
        k: v for k, v in result.to_dict().items() if k not in ("confusion", "per_class_accuracy")},
        "wall_s": wall, "best_epoch": history.best_epoch}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = recipe_from(args)
    root = data.data_root(args.data)
    print(f"Data: {root}\nMachine: {machine()}")
    results = {"machine": machine(), "data": str(root)}
    if args.throughput_batches > 0:
        results["throughput"] = throughput(root, args, recipe)
    if args.epochs > 0:
        results["run"] = full_run(root, args, recipe)
        print(f"Machine at the end: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
