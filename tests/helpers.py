"""Small models and data shared by the tests: of training, fitting and checkpoints; photos of
a landmark no model has seen; uploads into the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
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


def striped_photos(folder: Path, n: int = 4) -> list[Path]:
    """``n`` photos of a "landmark" no model has seen: red and yellow stripes, shifted and
    with a little noise (seeded), as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = np.random.default_rng(0), []
    for i in range(n):
        x = np.arange(240)[None, :] + 7 * i
        stripes = ((x // 20) % 2).repeat(200, axis=0)[..., None]
        pixels = (np.where(stripes, [230, 40, 30], [250, 210, 40])
                  + rng.normal(0, 8, (200, 240, 3)))
        paths.append(folder / f"stripes_{i}.jpg")
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(paths[-1], quality=92)
    return paths


def browser_upload(app, files: dict[str, bytes]) -> None:
    """Upload files into the box as the browser does (the message FileUpload receives)."""
    app.upload.set_state({"value": [
        {"name": name, "type": "image/jpeg", "size": len(content),
         "content": memoryview(content), "last_modified": 1_700_000_000_000}
        for name, content in files.items()]})


def network_outputs(paths, predictor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log_probs, embeddings, logits)`` of photo files, stacked (every photo readable)."""
    from landmarklib.deployment import classify_photos

    answers = list(classify_photos(paths, predictor))
    return (np.stack([a.log_probs for a in answers]), np.stack([a.embedding for a in answers]),
            np.stack([a.logits for a in answers]))
