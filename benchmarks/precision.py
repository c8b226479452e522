"""How much faster bfloat16 is than float32 on this machine, for the steps that train.

Times, in each precision and in turns (float32, bfloat16, float32, ... so that both see the
same load), the three steps whose speed the precision setting changes:

* the transfer recipe's feature extraction: Lite0's trunk on batches of 64 photos at 224 px
  (photos/s);
* the transfer recipe's fine-tuning: one member's top and head on cached 192 x 7 x 7
  activations, a training step on a batch of 64 (seconds per epoch of 3,520 photos);
* the scratch recipe: a training step of LandmarkCNN on a batch of 32 photos at 128 px
  (photos/s).

The accuracy of each precision is measured by whole runs: ``train_transfer.py`` and
``train_scratch.py`` with ``--precision float32 bfloat16``.

    python benchmarks/precision.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from runs import machine

from landmarklib import transfer
from landmarklib.hardware import autocast
from landmarklib.models import LandmarkCNN
from landmarklib.training import make_loss, make_optimizer


def _seconds(step, repeats: int) -> float:
    step()  # warm-up: kernels chosen, memory allocated
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def trunk_step(precision: str):
    torch.manual_seed(0)
    trunk = transfer.build_finetuned_model(44, members=1).trunk.eval()
    trunk.to(memory_format=torch.channels_last)
    x = torch.randn(64, 3, 224, 224).contiguous(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode(), autocast("cpu", precision):
            trunk(x)
    return step, 64


def _training_step(model, shape: tuple[int, ...], precision: str):
    """One optimiser step of ``model`` on a random batch of ``shape`` (44 classes)."""
    model.to(memory_format=torch.channels_last).train()
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 44, (shape[0],))
    optimizer, loss_fn = make_optimizer(model, 1e-3), make_loss(0.1)

    def step():
        with autocast("cpu", precision):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step, shape[0]


def finetune_step(precision: str):
    torch.manual_seed(0)
    member = transfer.build_finetuned_model(44, members=1).members[0]
    return _training_step(member, (64, 192, 7, 7), precision)


def scratch_step(precision: str):
    torch.manual_seed(0)
    return _training_step(LandmarkCNN(44), (32, 3, 128, 128), precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    steps = {"transfer: trunk feature extraction": (trunk_step, 3),
             "transfer: fine-tuning a member": (finetune_step, 5),
             "scratch: training LandmarkCNN": (scratch_step, 8)}
    for name, (make, repeats) in steps.items():
        rates = {"float32": [], "bfloat16": []}
        for _ in range(args.rounds):
            for precision in rates:
                step, batch = make(precision)
                rates[precision].append(batch / _seconds(step, repeats))
        fp32, bf16 = (statistics.median(rates[p]) for p in ("float32", "bfloat16"))
        extra = ("" if "fine-tuning" not in name else
                 f"; an epoch of 3,520: {3520 / fp32:.1f} s / {3520 / bf16:.1f} s")
        print(f"{name:38s} float32 {fp32:6.1f} photos/s, bfloat16 {bf16:6.1f} photos/s: "
              f"{bf16 / fp32:.2f}x{extra}")
    print(f"Machine at the end: {machine()}")


if __name__ == "__main__":
    main()
