"""Accuracy and wall time of the transfer-learning recipe, over seeds and precisions.

Runs landmarklib.recipes.train_transfer (the recipe of notebook 03 and `landmarklib train
transfer`) once per seed and precision on each dataset folder, and prints the test accuracy
of the frozen backbone + head and of the final (fine-tuned) model, with their mean and spread
over the seeds, and the time of each run. Each precision starts from an empty feature cache,
so its first run includes computing the trunk's activations of every photo; the later seeds
find them in the cache (their time is the head and the fine-tuning).

    python benchmarks/train_transfer.py [DATASET_FOLDER ...] [--seeds 0 1 2]
        [--precision float32 bfloat16] [--members 2] [--backbone efficientnet_lite0]
        [--json results.json]

Default folder: ../shared/data/landmarks44 (a stand-in: the real 50-landmark dataset is not on
the development machine).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from runs import machine, spread

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--members", type=int, default=2,
                        help="fine-tuned tops averaged (0: frozen backbone and head only)")
    parser.add_argument("--json", help="also write every run's numbers to this file")
    args = parser.parse_args()

    from landmarklib import recipes

    print(f"Machine: {machine()}")
    runs = []
    for folder in args.folders or [SHARED / "landmarks44"]:
        for precision in args.precision:
            os.environ["LANDMARKLIB_CACHE"] = tempfile.mkdtemp(prefix="landmarklib-bench-")
            for seed in args.seeds:
                recipe = recipes.TransferRecipe(backbone=args.backbone, members=args.members,
                                                precision=precision, seed=seed)
                start = time.perf_counter()
                result = recipes.train_transfer(folder, Path(tempfile.mkdtemp()) / "model.pt",
                                                recipe, progress=False)
                runs.append({"data": folder.name, "precision": result.precision, "seed": seed,
                             "seconds": time.perf_counter() - start,
                             "frozen": result.frozen.accuracy, "final": result.test.accuracy,
                             "final_top3": result.test.top3, "correct": result.test.correct,
                             "total": result.test.total})
                print(f"{folder.name} {precision} seed {seed}: frozen {result.frozen.accuracy:.1%}"
                      f", final {result.test.accuracy:.1%} ({result.test.correct}/"
                      f"{result.test.total}), top-3 {result.test.top3:.1%}, "
                      f"{runs[-1]['seconds']:.0f} s", flush=True)
            summarize([r for r in runs if r["data"] == folder.name
                       and r["precision"] == result.precision])
    print(f"Machine at the end: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1))


def summarize(runs: list[dict]) -> None:
    first = runs[0]
    later = ", ".join(str(round(r["seconds"])) for r in runs[1:]) or "none"
    print(f"== {first['data']}, {first['precision']}: final {spread([r['final'] for r in runs])}"
          f"; top-3 {spread([r['final_top3'] for r in runs])}; frozen backbone + head "
          f"{spread([r['frozen'] for r in runs])}; first run (empty cache) "
          f"{first['seconds']:.0f} s, later runs {later} s")


if __name__ == "__main__":
    main()
