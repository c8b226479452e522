"""Shared fixtures: a private cache folder per test session and small real datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from landmarklib.data import tiny_data_root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep statistics and resized copies out of the user's cache; never read their data."""
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("LANDMARK_DATA", raising=False)
    monkeypatch.delenv("LANDMARKLIB_TINY", raising=False)


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    """A writable copy of the tiny dataset shipped in the package."""
    return Path(shutil.copytree(tiny_data_root(), tmp_path / "landmark_images"))


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    """The tiny subset as WebDataset shards of 8 photos: 7 training, 2 validation and 3 test
    shards (enough for 2 ranks)."""
    from landmarklib import data

    out = tmp_path_factory.mktemp("shards")
    with pytest.MonkeyPatch.context() as patch:  # this session's private cache, as above
        patch.setenv("LANDMARKLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        data.write_shards(tiny_data_root(), out, shard_size=8, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model_file(tiny_training_file) -> Path:
    """The deployment file (.onnx) of :func:`tiny_training_file`: what tagging uses."""
    from landmarklib import export

    return export.export_onnx(tiny_training_file)


@pytest.fixture(scope="session")
def tiny_training_file(tmp_path_factory) -> Path:
    """A real transfer model (frozen Lite0 + head) trained for a few seconds on the tiny data,
    saved as a training file (.pt).

    It tells the tiny data's 7 landmarks apart well enough for tests of inference and the apps
    (its test accuracy is not a claim about anything)."""
    import torch

    from landmarklib import export, transfer

    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, hidden=64)
    spec = model.spec
    loaders = _tiny_loaders(spec)
    _train_head(model.head, *transfer.extract_features(model.backbone, loaders.train,
                                                       progress=False, precision="float32"))
    return export.save_model(folder / "tiny_model.pt", model.eval(), loaders.classes,
                             spec.input_size, spec.mean, spec.std)


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_file):
    """:func:`tiny_model_file` on ONNX Runtime, without a memory."""
    from landmarklib.deployment import Predictor

    return Predictor(tiny_model_file)


@pytest.fixture(scope="session")
def tiny_finetuned_model_file(tmp_path_factory) -> Path:
    """The deployment file of a fine-tuned model (frozen Lite0 trunk, one member whose top
    keeps its ImageNet weights and whose head trained for a few seconds on the tiny data):
    the kind of file with ImageNet embeddings (:mod:`landmarklib.export`)."""
    import torch

    from landmarklib import export, transfer

    torch.manual_seed(0)
    model = transfer.build_finetuned_model(7, hidden=64, members=1).eval()
    spec, member = model.spec, model.members[0]
    loaders = _tiny_loaders(spec)
    with torch.inference_mode():
        batches = [(member.top(model.trunk(x)), y) for x, y in loaders.train]
    _train_head(member.head, *(torch.cat(parts) for parts in zip(*batches)))
    folder = tmp_path_factory.mktemp("finetuned")
    return export.export_onnx(export.save_model(folder / "tiny_finetuned.pt", model.eval(),
                                                loaders.classes, spec.input_size, spec.mean,
                                                spec.std))


def _tiny_loaders(spec):
    from landmarklib import data

    return data.make_loaders(data.tiny_data_root(), size=spec.input_size, mean=spec.mean,
                             std=spec.std, augment=False, in_memory=False, num_workers=0,
                             progress=False)


def _train_head(head, features, labels) -> None:
    """60 Adam steps of a head on fixed features: enough to tell the 7 landmarks apart."""
    import torch

    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    head.train()
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(head(features), labels).backward()
        optimizer.step()
    head.eval()


@pytest.fixture(scope="session")
def exiftool():
    """Read files with ExifTool, the independent second reader of the sidecars we write:
    ``exiftool(paths)`` returns ``{Path: {"XMP-exif:GPSLatitude": 48.8584, ...}}``
    (``exiftool -j -n -G1``: numbers as numbers, tags named by group). Skipped when ExifTool is
    missing (Debian: ``apt-get install -y libimage-exiftool-perl``), an error in CI."""
    import json
    import os
    import subprocess

    program = shutil.which("exiftool")
    if program is None:
        message = "ExifTool is not installed (Debian: apt-get install -y libimage-exiftool-perl)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    def read(paths) -> dict[Path, dict]:
        paths = [str(p) for p in paths]
        result = subprocess.run([program, "-j", "-n", "-G1", "-charset", "filename=utf8", *paths],
                                capture_output=True, text=True, encoding="utf-8", check=False)
        if result.returncode not in (0, 1) or not result.stdout.strip():
            raise RuntimeError(f"exiftool failed ({result.returncode}): {result.stderr}")
        return {Path(entry["SourceFile"]): entry for entry in json.loads(result.stdout)}

    return read


@pytest.fixture(scope="session")
def tiny_memory(tiny_model_file):
    """The memory of :func:`tiny_model_file` (:mod:`landmarklib.memory`): the embeddings of the
    tiny data's training split (56 photos), calibrated on its validation split (14 photos)."""
    return _memory_of(tiny_model_file)


@pytest.fixture(scope="session")
def tiny_finetuned_memory(tiny_finetuned_model_file):
    """The same for :func:`tiny_finetuned_model_file`, with ImageNet embeddings."""
    return _memory_of(tiny_finetuned_model_file)


def _memory_of(model_file: Path):
    from landmarklib import data
    from landmarklib.deployment import Predictor, classify_photos
    from landmarklib.embeddings import fit_calibration
    from landmarklib.memory import build_memory

    predictor, root = Predictor(model_file), data.tiny_data_root()
    folders = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    samples = [(path, c) for c, folder in enumerate(folders)
               for path in sorted((root / "train" / folder).glob("*.jpg"))]
    train, valid = data.split_samples(samples, root)
    memory = build_memory(classify_photos([p for p, _ in train], predictor),
                          [c for _, c in train], predictor.class_names, predictor.model_id, root)
    memory, _ = fit_calibration(memory, classify_photos([p for p, _ in valid], predictor),
                                [c for _, c in valid])
    return memory
