"""Time one Grad-CAM heatmap (``landmarklib.explain.grad_cam``) on the CPU.

* a Lite0 transfer model (frozen EfficientNet-Lite0 with its ImageNet weights + head, 50
  classes) on one 224-pixel photo: the goal is at most 200 ms on 2 cores;
* the scratch ``LandmarkCNN`` (50 classes) on one 128-pixel photo;
* for scale, the plain forward pass of the Lite0 model (inference mode, no heatmap), and
  pytorch-grad-cam's ``GradCAM`` on the same model and photo (it runs the backward pass down
  to the input; ours stops at the target layer).

The very first Grad-CAM call on the Lite0 model (one-time setup of the CPU kernels included) is
timed alone; then, after 3 warm-up rounds, the calls are timed in turns (one of each per round,
``--repeats`` rounds), so that all see the same load, and the median of each is printed in
milliseconds. Weights of the heads are random (the cost does not depend on them).

    python benchmarks/gradcam.py [--threads 2] [--repeats 20]

The load average (processes wanting a core, over the last minute) is printed before and after:
with 2 cores, anything above about 1 means other jobs slowed the measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from matplotlib import cbook
from torch import nn


def medians_ms(functions: dict, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median wall time of each ``function()`` in milliseconds, timed in turns."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(warmup + repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def forward(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(image)


def reference(model: nn.Module):
    """pytorch-grad-cam on ``model`` without its LogSoftmax (logits), as a function of the
    image; None if pytorch-grad-cam is not installed."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return None
    logits_model = nn.Sequential(model.backbone, model.head[:-1]).eval()
    cam = GradCAM(logits_model, [logits_model[0].bn2])
    return lambda image: cam(image.clone().requires_grad_(True), [ClassifierOutputTarget(0)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from landmarklib import explain, models, transfer
    from landmarklib.data import eval_transform
    from landmarklib.images import open_image

    photo = open_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    torch.manual_seed(0)
    lite0 = transfer.build_transfer_model(50, "efficientnet_lite0").eval()
    image_224 = eval_transform(224, lite0.spec.mean, lite0.spec.std)(photo)[None]
    scratch = models.LandmarkCNN(n_classes=50).eval()
    image_128 = eval_transform(128, (0.5,) * 3, (0.25,) * 3)(photo)[None]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    explain.grad_cam(lite0, image_224)
    print(f"{'Lite0 transfer model, 224 px, first call':48s} "
          f"{1000 * (time.perf_counter() - start):7.1f} ms")
    functions = {
        "Lite0 transfer model, 224 px (goal: <= 200 ms)": lambda: explain.grad_cam(lite0,
                                                                                    image_224),
        "Lite0 transfer model, forward pass only": lambda: forward(lite0, image_224),
        "LandmarkCNN, 128 px": lambda: explain.grad_cam(scratch, image_128),
    }
    pytorch_grad_cam = reference(lite0)
    if pytorch_grad_cam is not None:
        functions["pytorch-grad-cam on the Lite0 model, 224 px"] = (
            lambda: pytorch_grad_cam(image_224))
    for name, ms in medians_ms(functions, args.repeats).items():
        print(f"{name:48s} {ms:7.1f} ms")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
