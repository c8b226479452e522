"""Tests of landmarklib.data.shards: writing the splits as WebDataset shards, and reading them
back on one rank or several."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from landmarklib import data
from landmarklib.cli import main as cli_main

# The tiny subset: 7 classes of 10 training photos (8 + 2 for validation) and 3 test photos.
TRAIN, VALID, TEST = 56, 14, 21


def test_shards_written_twice_are_byte_identical(shards, tmp_path):
    data.write_shards(data.tiny_data_root(), tmp_path, shard_size=8, progress=False)
    names = sorted(p.name for p in shards.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 7 + 2 + 3 + 1
    for name in names:
        assert (shards / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_manifest_counts_classes_and_checksums(shards):
    manifest = data.read_manifest(shards)
    report = data.check_layout(data.tiny_data_root(), warn=False)
    assert manifest["classes"] == report.classes
    assert {s: e["photos"] for s, e in manifest["splits"].items()} == {
        "train": TRAIN, "valid": VALID, "test": TEST}
    assert manifest["splits"]["train"]["per_class"] == [8] * 7
    assert manifest["splits"]["test"]["per_class"] == [3] * 7
    assert manifest["left_out"] == []
    for entry in manifest["splits"].values():
        assert sum(s["photos"] for s in entry["shards"]) == entry["photos"]
        for shard in entry["shards"]:
            digest = hashlib.sha256((shards / shard["name"]).read_bytes()).hexdigest()
            assert digest == shard["sha256"]


def test_a_shard_holds_the_photo_bytes_class_and_name(shards):
    with tarfile.open(shards / "test-000000.tar") as tar:
        members = tar.getmembers()
        assert {m.mtime for m in members} == {0} and {m.uname for m in members} == {"landmarklib"}
        first = {m.name: tar.extractfile(m).read() for m in members[:3]}
    name = first["00000000.path.txt"].decode()
    assert first["00000000.jpg"] == (data.tiny_data_root() / name).read_bytes()
    assert first["00000000.cls"] == b"0" and name.startswith("test/00.")


def test_validation_and_test_batches_equal_the_folder_loaders(shards):
    folder = data.make_loaders(data.tiny_data_root(), size=64, batch_size=8, in_memory=False,
                               num_workers=0, progress=False)
    loaders = data.shard_loaders(shards, size=64, batch_size=8, mean=folder.mean, std=folder.std)
    assert loaders.classes == folder.classes
    for split in ("valid", "test"):
        ours, theirs = list(getattr(loaders, split)), list(getattr(folder, split))
        assert len(ours) == len(theirs) == len(getattr(loaders, split))
        for (x, y), (fx, fy) in zip(ours, theirs):
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            assert torch.equal(y, fy) and torch.equal(x, fx)


def test_the_manifest_mean_and_std_are_make_loaders(shards):
    folder = data.make_loaders(data.tiny_data_root(), size=128, in_memory=False,
                               num_workers=0, progress=False)
    loaders = data.shard_loaders(shards, size=128)
    assert loaders.mean == folder.mean and loaders.std == folder.std


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_validation_once_in_order(shards, world_size):
    labels = [torch.cat([y for _, y in data.shard_loaders(shards, 64, 4, rank=r,
                                                          world_size=world_size).valid])
              for r in range(world_size)]
    assert sum(len(y) for y in labels) == VALID
    everyone = torch.cat([torch.cat([y for _, y in data.shard_loaders(shards, 64, 4).valid])])
    for rank, y in enumerate(labels):
        assert torch.equal(y, everyone[rank::world_size])


def test_workers_give_the_same_batches_in_the_same_order(shards):
    alone = list(data.shard_loaders(shards, 64, 4).test)
    shared = list(data.shard_loaders(shards, 64, 4, num_workers=2).test)
    assert len(alone) == len(shared) == 6
    for (x, y), (wx, wy) in zip(alone, shared):
        assert torch.equal(y, wy) and torch.equal(x, wx)


def _pixels(stream, n: int) -> list[bytes]:
    """The first ``n`` photos of a stream without a transform, as a hash of their pixels."""
    found = []
    for image, _ in stream:
        found.append(hashlib.sha256(np.asarray(image).tobytes()).digest())
        if len(found) == n:
            return found
    return found


def test_ranks_train_on_different_shards_that_cover_the_split(shards):
    streams = [data.ShardStream(shards, "train", None, 32, training=True, rank=r, world_size=2,
                                seed=5) for r in range(2)]
    order = sorted(streams[0].urls, key=lambda u: data.shards._digest(f"5:{Path(u).name}"))
    sizes = {url: size for url, size in zip(streams[0].urls, streams[0].sizes)}
    shares = [sum(sizes[u] for u in order[r::2]) for r in range(2)]
    assert sum(shares) == TRAIN
    seen = [_pixels(stream, share) for stream, share in zip(streams, shares)]
    assert not set(seen[0]) & set(seen[1])
    everything = _pixels(data.ShardStream(shards, "train", None, 32), TRAIN)
    assert set(seen[0]) | set(seen[1]) == set(everything) and len(set(everything)) == TRAIN


def test_training_batches_per_rank(shards):
    for rank in range(2):
        loaders = data.shard_loaders(shards, size=32, batch_size=8, rank=rank, world_size=2)
        assert len(loaders.train) == TRAIN // (2 * 8)
        batches = list(loaders.train)
        assert len(batches) == 3 and loaders.train.photos == 24
        x, y = batches[0]
        assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_training_with_workers(shards):
    loader = data.shard_loaders(shards, size=32, batch_size=8, num_workers=2).train
    batches = list(loader)
    assert len(batches) == len(loader) == TRAIN // 8 and loader.photos == TRAIN
    labels = torch.cat([y for _, y in batches])
    assert labels.min() >= 0 and labels.max() <= 6 and len(set(labels.tolist())) > 3


def test_training_order_is_seeded_and_changes_every_epoch(shards):
    def epochs(loader, n=2):
        return [torch.cat([y for _, y in loader]) for _ in range(n)]

    first = epochs(data.shard_loaders(shards, 32, 8, seed=3).train)
    again = epochs(data.shard_loaders(shards, 32, 8, seed=3).train)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])
    x1 = next(iter(data.shard_loaders(shards, 32, 8, seed=3).train))[0]
    x2 = next(iter(data.shard_loaders(shards, 32, 8, seed=3).train))[0]
    assert torch.equal(x1, x2)  # the same augmentation too


def test_too_few_training_shards_for_the_ranks(shards):
    with pytest.raises(ValueError, match="--shard-size"):
        data.shard_loaders(shards, world_size=8, rank=0)
    with pytest.raises(ValueError, match="rank 2"):
        data.shard_loaders(shards, world_size=2, rank=2)


def test_a_photo_that_does_not_decode_is_left_out_and_listed(tiny_copy, tmp_path):
    broken = sorted((tiny_copy / "train" / "09.Golden_Gate_Bridge").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:200])
    manifest = data.write_shards(tiny_copy, tmp_path / "shards", shard_size=16, progress=False)
    assert [entry["path"] for entry in manifest["left_out"]] == [
        str(broken.relative_to(tiny_copy))]
    assert "truncated" in manifest["left_out"][0]["reason"]
    assert manifest["splits"]["train"]["photos"] + manifest["splits"]["valid"]["photos"] == 69


def test_not_a_shard_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="landmarklib shard"):
        data.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a landmarklib-shards/1 manifest"):
        data.shard_loaders(tmp_path)


def test_shard_command(tmp_path, capsys):
    assert cli_main(["shard", str(data.tiny_data_root()), str(tmp_path), "--shard-size",
                     "32"]) == 0
    out = capsys.readouterr().out
    assert "train: 56 photos in 2 shards" in out and "test: 21 photos in 1 shards" in out
    assert (tmp_path / "manifest.json").is_file()
