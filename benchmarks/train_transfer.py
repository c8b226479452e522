"""Accuracy and wall time of the transfer-learning recipe (frozen backbone + new head).

Runs landmarklib.recipes.train_transfer (the recipe of notebook 03 and `landmarklib train
transfer`) on each dataset folder given, from an empty feature cache, and prints the test
accuracy of the frozen backbone + head and of the final (fine-tuned) model, and the time spent.

    python benchmarks/train_transfer.py [DATASET_FOLDER ...] [--backbone efficientnet_lite0]
                                        [--members 2]

Default folders: ../shared/data/landmarks44 and ../shared/data/caltech101 (stand-ins: the
real 50-landmark dataset is not on the development machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--members", type=int, default=recipes_default_members(),
                        help="fine-tuned tops averaged (0: frozen backbone and head only)")
    args = parser.parse_args()
    os.environ["LANDMARKLIB_CACHE"] = tempfile.mkdtemp(prefix="landmarklib-bench-")

    from landmarklib import recipes
    from landmarklib.data import check_layout

    for folder in args.folders or [SHARED / "landmarks44", SHARED / "caltech101"]:
        report = check_layout(folder)
        photos = sum(len(files) for files in report.files.values())
        recipe = recipes.TransferRecipe(backbone=args.backbone, members=args.members)
        start = time.perf_counter()
        result = recipes.train_transfer(folder, Path(tempfile.mkdtemp()) / "model.pt", recipe,
                                        progress=False)
        seconds = time.perf_counter() - start
        print(f"{folder.name}: {len(report.classes)} classes, {photos} photos; {recipe}")
        print(f"  frozen backbone + head: {result.frozen}")
        print(f"  final ({args.members} fine-tuned members): {result.test}")
        print(f"  whole run {seconds:.0f} s ({photos / seconds:.0f} photos/s end to end, "
              f"features of every photo computed once); best epoch {result.history.best_epoch}")


def recipes_default_members() -> int:
    from landmarklib.recipes import TransferRecipe

    return TransferRecipe().members


if __name__ == "__main__":
    main()
