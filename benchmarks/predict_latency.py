"""Latency of tagging one photo with the default transfer model (EfficientNet-Lite0 + head).

* cold: a new Python process imports landmarklib, loads the model file and classifies one
  800-pixel photo, median of 3 runs: ``predict_landmarks`` from ``python -c``, and the command
  line (``landmarklib predict photo.jpg``); for scale, ``import torch`` alone and
  ``import landmarklib.inference`` (which imports neither torchvision nor timm);
* warm: ``predict_landmarks`` on one 800-pixel photo with the model already loaded
  (decode + resize + forward pass), median of 20 calls;
* batch: photos per second through ``Predictor.probabilities`` in batches of 32 (decoding
  excluded).

    python benchmarks/predict_latency.py [--model FILE]

Without --model a model is trained on the tiny subset first (same network, 7 classes: the
cost of a forward pass does not depend on the number of classes in any measurable way).
Photos: the 800-pixel originals in ../shared/data/landmark_images_partial. The load average
(processes wanting a core, over the last minute) is printed before and after: with 2 cores,
anything above about 1 means other jobs slowed the measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: train one on the tiny subset)")
    args = parser.parse_args()

    from landmarklib import inference
    from landmarklib.images import open_image

    if args.model:
        model = Path(args.model)
    else:
        from landmarklib import recipes

        model = recipes.quick_tiny_model(Path(tempfile.mkdtemp()) / "tiny_model.pt")
    photos = sorted((SHARED / "landmark_images_partial" / "test").rglob("*.jpg"))
    photo = photos[0]
    print(f"photo {photo.name}: {open_image(photo).size[0]}x{open_image(photo).size[1]} px")

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    commands = {
        "import torch": "import torch",
        "import landmarklib.inference": "import landmarklib.inference",
        "cold, predict_landmarks (new process: import, load model, 1 photo)": (
            "from landmarklib.inference import predict_landmarks; "
            f"predict_landmarks({str(photo)!r}, k=5, model={str(model)!r})"),
        "cold, landmarklib predict photo.jpg": (
            "import sys; from landmarklib.cli import main; "
            f"sys.exit(main(['predict', {str(photo)!r}, '--model', {str(model)!r}]))"),
    }
    for label, code in commands.items():
        print(f"{label}: {statistics.median(_seconds(code) for _ in range(3)):.2f} s")

    inference.predict_landmarks(photo, k=5, model=model)  # load once
    warm = []
    for _ in range(20):
        start = time.perf_counter()
        inference.predict_landmarks(photo, k=5, model=model)
        warm.append(time.perf_counter() - start)
    print(f"warm (1 photo of 800 px, model loaded): {1000 * statistics.median(warm):.0f} ms")

    predictor = inference.get_predictor(model)
    images = [open_image(p, short_side=predictor.saved.input_size) for p in photos[:32]]
    images = (images * (32 // len(images) + 1))[:32]
    predictor.probabilities(images)
    start = time.perf_counter()
    for _ in range(3):
        predictor.probabilities(images)
    rate = 3 * 32 / (time.perf_counter() - start)
    print(f"batch of 32 (decoded photos): {rate:.0f} photos/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _seconds(code: str) -> float:
    """Wall-clock seconds of ``python -c code`` in a new process (its output discarded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
