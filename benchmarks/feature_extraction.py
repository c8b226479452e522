"""Feature-extraction throughput of the frozen EfficientNet-Lite0 backbone on this CPU.

Runs a fixed set of random batches through the backbone under several settings and prints
images per second (median of the timed rounds, after one warm-up batch):

* the straightforward loop: NCHW tensors, ``torch.no_grad``, batch 32;
* ``torch.inference_mode`` instead of ``no_grad``;
* the channels-last memory layout;
* batch size 64;
* bfloat16 autocast (fast where the CPU has AVX-512 BF16 or AMX);
* input sizes 224, 192 and 160 pixels.

    python benchmarks/feature_extraction.py [--rounds 5] [--threads N]

Photo decoding is not included (see resized_cache.py); the DataLoader overlaps it with compute.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from landmarklib.backbones import create_backbone


def images_per_second(model, batch: int, size: int, rounds: int, channels_last: bool,
                      inference_mode: bool, bfloat16: bool = False) -> float:
    images = torch.randn(batch, 3, size, size)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    images = images.contiguous(memory_format=memory_format)
    context = torch.inference_mode if inference_mode else torch.no_grad
    times = []
    with context(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        model(images)  # warm-up
        for _ in range(rounds):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = create_backbone("efficientnet_lite0")
    model.eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    settings = [
        ("straightforward: no_grad, NCHW, batch 32, 224 px", 32, 224, False, False, False),
        ("+ inference_mode", 32, 224, False, True, False),
        ("+ channels_last", 32, 224, True, True, False),
        ("+ batch 64", 64, 224, True, True, False),
        ("+ bfloat16 autocast (landmarklib's default here)", 64, 224, True, True, True),
        ("channels_last, batch 64, bfloat16, 192 px", 64, 192, True, True, True),
        ("channels_last, batch 64, bfloat16, 160 px", 64, 160, True, True, True),
    ]
    print(f"native bfloat16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    for label, batch, size, channels_last, inference, bf16 in settings:
        rate = images_per_second(model, batch, size, args.rounds, channels_last, inference, bf16)
        print(f"{label:55s} {rate:6.1f} images/s")


if __name__ == "__main__":
    main()
