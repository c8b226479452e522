"""The scratch recipe on 1 process and on several (torchrun + DistributedDataParallel), from
shards: epoch time, training photos per second, and test accuracy.

A short prepared run for a GPU machine (CUDA, mixed precision: bfloat16 autocast where the GPU
has it, ``--precision auto``) and its CPU variant (gloo; each process gets ``cores / ranks``
threads, ``--threads`` to choose; 2 processes on 2 cores cannot be faster than 1 process using
both cores: they only show that the run works and what communication costs):

    python benchmarks/distributed.py --data ../shared/data/landmarks44 --epochs 3   # 1 and all GPUs
    python benchmarks/distributed.py --data DIR --ranks 1 2 --epochs 2 --size 64 --precision float32

Each run is ``torchrun --standalone --nproc-per-node N -m landmarklib.distributed scratch``
(what ``docs/scaling.md`` tells a user to type), timed from outside; the epoch times come from
the run's checkpoint (``History.seconds``: training and validation of one epoch), the test
accuracy from its model file. The first epoch is left out of the mean (warm-up: cuDNN's
algorithm search, worker start-up). ``--batch-size`` is per rank, so N ranks take N times fewer
steps per epoch, each on N times more photos.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from runs import machine

from landmarklib import checkpoints, data, export


def parse_args() -> argparse.Namespace:
    gpus = torch.cuda.device_count()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="dataset folder (default $LANDMARK_DATA)")
    parser.add_argument("--shards", default=None,
                        help="a shard folder to reuse (default: written to a temporary folder)")
    parser.add_argument("--ranks", type=int, nargs="+", default=sorted({1, gpus or 2}),
                        help="process counts to run (default: 1 and every GPU; CPU: 1 2)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--size", type=int, default=128, help="training resolution, pixels")
    parser.add_argument("--precision", default="auto" if gpus else "float32")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers per rank (default: GPUs: cores / ranks, at "
                             "most 8; CPU: 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per rank (default: cores / ranks)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args()


def one_run(shards: Path, ranks: int, args, folder: Path) -> dict:
    """One torchrun of the scratch recipe with ``ranks`` processes; its figures."""
    cores = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (
        min(8, max(1, cores // ranks - 1)) if torch.cuda.is_available() else 0)
    out, ckpt = folder / f"ranks{ranks}.pt", folder / f"ranks{ranks}.ckpt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(ranks), "-m", "landmarklib.distributed", "scratch",
               str(shards), "--out", str(out), "--checkpoint", str(ckpt), "--epochs",
               str(args.epochs), "--batch-size", str(args.batch_size), "--size", str(args.size),
               "--precision", args.precision, "--workers", str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or max(1, cores // ranks))}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    history = checkpoints.load_checkpoint(ckpt)["history"]
    saved = export.load_model(out)
    photos = len(data.shard_loaders(shards, args.size, args.batch_size, world_size=ranks).train)
    photos *= args.batch_size * ranks  # training photos per epoch, all ranks together
    later = history["seconds"][2:] or history["seconds"][1:]
    epoch_s = sum(later) / len(later)
    row = {"ranks": ranks, "workers_per_rank": workers, "threads_per_rank": env["OMP_NUM_THREADS"],
           "precision": saved.precision, "size": args.size, "epochs": args.epochs, "wall_s": wall,
           "epoch_s": history["seconds"][1:], "mean_epoch_s": epoch_s,
           "train_photos_per_epoch": photos, "photos_per_s": photos / epoch_s,
           "test_accuracy": saved.metrics["test_accuracy"],
           "test_correct": saved.metrics["test_correct"], "test_total": saved.metrics["test_total"],
           "valid_loss": history["valid_loss"][-1]}
    print(f"{ranks} rank(s), {workers} worker(s) and {row['threads_per_rank']} thread(s) each, "
          f"{saved.precision}: {epoch_s:.1f} s per epoch ({row['photos_per_s']:.0f} training "
          f"photos/s, validation included), {wall:.0f} s wall; test accuracy "
          f"{row['test_accuracy']:.1%} ({row['test_correct']}/{row['test_total']})", flush=True)
    return row


def main() -> None:
    args = parse_args()
    root = data.data_root(args.data)
    print(f"Data: {root}\nMachine: {machine()}\nGPUs: {torch.cuda.device_count()} "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}")
    results = {"machine": machine(), "data": str(root), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(args.shards) if args.shards else Path(tmp) / "shards"
        if not args.shards:
            start = time.perf_counter()
            data.write_shards(root, shards, progress=False)
            results["write_shards_s"] = time.perf_counter() - start
            print(f"Shards written in {results['write_shards_s']:.1f} s")
        for ranks in args.ranks:
            results["runs"].append(one_run(shards, ranks, args, Path(tmp)))
    print(f"Machine at the end: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
