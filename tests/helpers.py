"""Small models and data shared by the tests of training, fitting and checkpoints."""

from __future__ import annotations

import torch
from torch import nn

from landmarklib.models import LandmarkCNN

#: Keyword arguments of fit for a quiet run on the CPU.
QUIET = {"progress": False, "live_plot": False, "device": "cpu"}


def small_cnn(n_classes: int = 7) -> nn.Module:
    """A LandmarkCNN small enough to train on 32-pixel photos in a second."""
    return LandmarkCNN(n_classes, widths=(8, 16, 32))


def synthetic(n: int = 64, n_classes: int = 4, seed: int = 0, shift: int = 0):
    """Random 8x8 images; labels a function of the images (``+ shift`` gives wrong labels)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 8, 8, generator=g)
    labels = (torch.arange(n) + shift) % n_classes
    images[:, 0] += labels.view(-1, 1, 1).float()  # make the true labels learnable
    return images, labels


def linear_model(n_classes: int = 4) -> nn.Module:
    """Logistic regression on the 8x8 images of :func:`synthetic`."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, n_classes), nn.LogSoftmax(dim=1))


def imported_by(code: str) -> set[str]:
    """The modules a fresh Python process has imported after running ``code``."""
    import subprocess
    import sys

    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    return set(result.stdout.strip().splitlines()[-1].split())
