"""Train the from-scratch CNN with notebook 02's recipe: speed, and test accuracy over seeds.

Two parts:

1. **Throughput** (``--throughput-batches``, 0 skips it): training images per second of the
   default :class:`~landmarklib.models.LandmarkCNN` when the photos come from memory (decoded
   once, :class:`~landmarklib.data.DecodedPhotos`), from the original files (decoded every
   epoch by DataLoader workers), and from resized copies (:func:`~landmarklib.data.resized_copy`),
   in each precision asked for. Also the data pipeline alone, without the model.
2. **Whole runs** (``--epochs``, 0 skips them): :func:`landmarklib.recipes.train_scratch`
   (what ``landmarklib train scratch`` runs) once per seed and precision, with
   :class:`~landmarklib.training.Recipe` (the flags override its fields); the test split is
   evaluated once per run: top-1 and top-3 accuracy, with the mean and spread over the seeds.

    python benchmarks/train_scratch.py --data ../shared/data/landmarks44 --seeds 0 1 2
    python benchmarks/train_scratch.py --data DIR --epochs 30 --precision float32 bfloat16

The numbers depend on what else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from runs import machine, spread
from torch.utils.data import DataLoader

from landmarklib import data, recipes
from landmarklib.hardware import autocast
from landmarklib.models import LandmarkCNN
from landmarklib.training import Recipe, make_loss, make_optimizer


def parse_args() -> argparse.Namespace:
    recipe = Recipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="dataset folder (default $LANDMARK_DATA)")
    parser.add_argument("--epochs", type=int, default=recipe.epochs)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--precision", nargs="+", default=["float32"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    parser.add_argument("--throughput-batches", type=int, default=20,
                        help="batches timed per data source (0 skips the comparison)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args()


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


def training_step(n_classes: int, recipe: Recipe, precision: str):
    model = LandmarkCNN(n_classes).to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model, recipe.lr, recipe.weight_decay)
    loss_fn = make_loss(recipe.label_smoothing)

    def step(images, labels):
        with autocast("cpu", precision):
            loss = loss_fn(model(images).float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def throughput(root: Path, batches: int, recipe: Recipe, precisions: list[str]) -> dict:
    """Data-only and training images/s from memory, original files and resized copies."""
    report = data.check_layout(root, warn=False)
    files, classes = report.files["train"], report.classes
    augment = data.train_transform(recipe.size, (0.5,) * 3, (0.25,) * 3)
    start = time.perf_counter()
    in_memory = data.DecodedPhotos(data.PhotoDataset(files, classes, augment, recipe.size,
                                                     data.Downsize(recipe.size * 8 // 7)),
                                   progress=False)
    results = {"decode_once_s": time.perf_counter() - start}
    print(f"Decoding {len(files)} photos into memory once: {results['decode_once_s']:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        copy = data.resized_copy(root, short_side=256, dest=tmp, progress=False)
        print(f"Writing resized copies (short side 256) once: {time.perf_counter() - start:.1f} s")
        copies = data.check_layout(copy, warn=False).files["train"]
        workers = data.default_num_workers()
        sources = {
            "in memory": (in_memory, 0),
            f"original files, {workers} worker(s)": (
                data.PhotoDataset(files, classes, augment, recipe.size), workers),
            f"resized copies, {workers} worker(s)": (
                data.PhotoDataset(copies, classes, augment, recipe.size), workers),
        }
        for name, (dataset, num_workers) in sources.items():
            loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True,
                                num_workers=num_workers, collate_fn=data.collate_photos)
            row = {"data_only_images_per_s": time_batches(loader, batches)}
            for precision in precisions:
                step = training_step(len(classes), recipe, precision)
                row[f"training_images_per_s_{precision}"] = time_batches(loader, batches, step)
            results[name] = row
            print(f"  {name:32s} " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()))
    return results


# --------------------------------------------------------------------------------- whole runs


def whole_runs(root: Path, epochs: int, seeds: list[int], precisions: list[str]) -> list[dict]:
    runs = []
    for precision in precisions:
        for seed in seeds:
            recipe = replace(Recipe(), epochs=epochs, seed=seed, precision=precision)
            with tempfile.TemporaryDirectory() as tmp:
                result = recipes.train_scratch(root, Path(tmp) / "model.pt", recipe,
                                               progress=False)
            seconds = result.history.seconds[1:]
            runs.append({"recipe": asdict(recipe), "precision": result.precision,
                         "accuracy": result.test.accuracy, "correct": result.test.correct,
                         "total": result.test.total, "top3": result.test.top3,
                         "best_epoch": result.history.best_epoch, "wall_s": result.seconds,
                         "mean_epoch_s": sum(seconds) / len(seconds)})
            print(f"{result.precision} seed {seed}: {result.test}; best epoch "
                  f"{result.history.best_epoch}; {result.seconds / 60:.1f} min wall, "
                  f"{runs[-1]['mean_epoch_s']:.1f} s per epoch", flush=True)
        done = [r for r in runs if r["precision"] == result.precision]
        print(f"== {result.precision}: top-1 {spread([r['accuracy'] for r in done])}, top-3 "
              f"{spread([r['top3'] for r in done])}")
    return runs


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = data.data_root(args.data)
    print(f"Data: {root}\nMachine: {machine()}")
    results = {"machine": machine(), "data": str(root)}
    if args.throughput_batches > 0:
        results["throughput"] = throughput(root, args.throughput_batches, Recipe(),
                                           args.precision)
    if args.epochs > 0:
        results["runs"] = whole_runs(root, args.epochs, args.seeds, args.precision)
        print(f"Machine at the end: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
