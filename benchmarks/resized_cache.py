"""How much does the resized-image cache save per epoch?

Times one pass over every training photo (decode with landmarklib.images.open_image, then the
training transform at 128 px), reading the original files and then the resized copies written
by landmarklib.data.resized_copy (short side 256). Also times building the copies once.

    python benchmarks/resized_cache.py [DATASET_FOLDER ...]

Default folders: ../shared/data/landmark_images_partial (800-px originals of the real dataset)
and ../shared/data/caltech101 (~300-px photos). Runs single-threaded, as a DataLoader worker does.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from landmarklib import data
from landmarklib.images import open_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def one_pass(files, transform) -> float:
    """Seconds to decode and transform every file once."""
    start = time.perf_counter()
    for path, _ in files:
        transform(open_image(path))
    return time.perf_counter() - start


def main(folders: list[Path]) -> None:
    torch.set_num_threads(1)
    transform = data.train_transform(128, (0.5,) * 3, (0.25,) * 3)
    for folder in folders:
        files = data.check_layout(folder).files["train"]
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            copy = data.resized_copy(folder, short_side=256, dest=tmp, progress=False)
            build = time.perf_counter() - start
            start = time.perf_counter()
            data.resized_copy(folder, short_side=256, dest=tmp, progress=False)
            reuse = time.perf_counter() - start
            cached = data.check_layout(copy).files["train"]
            original = one_pass(files, transform)
            resized = one_pass(cached, transform)
        n = len(files)
        print(f"{folder.name}: {n} training photos")
        print(f"  build copies once: {build:.1f} s; check an unchanged cache: {reuse:.2f} s")
        print(f"  one epoch from originals: {original:.2f} s ({n / original:.0f} photos/s)")
        print(f"  one epoch from copies:    {resized:.2f} s ({n / resized:.0f} photos/s), "
              f"{original / resized:.1f}x faster")
        print(f"  scaled to the real 3,996-photo training split: "
              f"{original / n * 3996:.0f} s vs {resized / n * 3996:.0f} s per epoch per core")


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    main(args or [SHARED / "landmark_images_partial", SHARED / "caltech101"])
