"""Photos in WebDataset shards: tar files written once, read as streams by many processes.

4.1 million photos (Google Landmarks v2) are slow to list and to read file by file, above all
over a network file system; the dataset ships as 500 tar files instead. A *shard* is such a
tar file: each photo's bytes, as on disk, with its class id and file name, under one key
(``00000042.jpg``, ``00000042.cls``, ``00000042.path.txt``: the WebDataset convention). Many
processes each read their own shards, sequentially (the ``webdataset`` library writes and
reads them here).

* :func:`write_shards` (``landmarklib shard DATA OUT``): the training, validation and test
  splits of a dataset folder (the same stratified split as
  :func:`~landmarklib.data.make_loaders`), and ``manifest.json`` (classes, counts, shards and
  their SHA-256, the training split's mean and std, the photos left out). The same photos and
  seed give byte-identical shards.
* :func:`shard_loaders`: a :class:`~landmarklib.data.Loaders` whose batches are those of
  :func:`~landmarklib.data.make_loaders` (float32 ``(B, 3, size, size)``, int64 ``(B,)``), read
  from shards by one rank of a group (:mod:`landmarklib.world`).

How the photos are shared out. **Training**: each epoch the shards are put in a seeded order,
the same on every rank; rank ``r`` of ``W`` takes every ``W``-th of them (as
``webdataset.split_by_node`` does), and its DataLoader workers share those
(``webdataset.split_by_worker``); a shuffle buffer mixes the photos of the shards a worker
reads. Every rank gives the same number of batches, ``photos // (W * batch_size)``, as
DistributedDataParallel needs (a rank that runs out starts its shards again). **Validation and
test**: photo ``i`` goes to rank ``i % W``, so every photo is counted once whatever the number
of shards, in the order of the folder loaders.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import warnings
from collections import Counter
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from landmarklib.data.layout import check_layout
from landmarklib.data.loaders import Loaders, collate_photos
from landmarklib.data.locate import data_root
from landmarklib.data.split import channel_stats, stratified_split
from landmarklib.data.transforms import CenterCrop, ToInput, train_transform
from landmarklib.files import atomic_path, write_json
from landmarklib.images import ImageError, image_from_bytes

__all__ = ["SHARDS_FORMAT", "MANIFEST", "write_shards", "read_manifest", "ShardStream",
           "ShardLoader", "shard_loader", "shard_loaders"]

SHARDS_FORMAT = "landmarklib-shards/1"
MANIFEST = "manifest.json"
#: Tar member metadata fixed, so the same photos give the same bytes on any machine and day.
_TAR = {"user": "landmarklib", "group": "landmarklib", "mode": 0o444, "mtime": 0, "encoder": False}
_NOT_PHOTO = ("cls", "path.txt")  # the fields of a sample beside the photo


def write_shards(
    root: str | os.PathLike | None,
    out: str | os.PathLike,
    shard_size: int = 256,
    seed: int = 0,
    val_fraction: float = 0.2,
    stats_size: int = 128,
    progress: bool = True,
) -> dict:
    """Write a dataset folder's three splits as WebDataset shards, and their manifest.

    The photos are those :func:`~landmarklib.data.check_layout` found usable (the others are
    listed under ``left_out``); validation is taken from ``train/`` by
    :func:`~landmarklib.data.stratified_split` with ``val_fraction`` and ``seed``, as by
    :func:`~landmarklib.data.make_loaders`. Training photos are written in a seeded order (a
    hash of ``seed`` and the file name) so that every shard mixes the classes; validation and
    test photos in the folder loaders' order. Each shard is written by ``webdataset.TarWriter``
    with fixed owners and times, atomically; the same photos and seed give the same bytes.

    Args:
        root: dataset folder (default :func:`~landmarklib.data.data_root`).
        out: folder for ``train-000000.tar``..., ``valid-...``, ``test-...`` and
            ``manifest.json`` (readers ignore shards the manifest does not list).
        shard_size: photos per shard (readers want as many training shards as ranks, times
            their workers to keep all busy).
        seed, val_fraction: the split, as in :func:`~landmarklib.data.make_loaders`.
        stats_size: the size at which the training split's mean and std are measured
            (:func:`~landmarklib.data.channel_stats`) and recorded.
        progress: progress bars.

    Returns:
        The manifest (also written as ``out/manifest.json``): ``format``, ``classes``,
        ``splits`` (for each, ``photos``, ``per_class`` and ``shards``: ``name``, ``photos``,
        ``sha256``), ``stats``, ``left_out`` (``path``, ``reason``) and the settings.

    Raises:
        FileNotFoundError, ValueError: no dataset folder; fatal problems (listed); shard_size 0.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, not {shard_size}")
    report = check_layout(data_root(root), warn=False, progress=progress)
    if report.problems:
        raise ValueError(f"The dataset in {report.root} cannot be used:\n{report}")
    splits, train = _splits(report, val_fraction, seed)
    mean, std = channel_stats(train, stats_size, progress=progress)
    manifest = {
        "format": SHARDS_FORMAT, "source": str(report.root), "classes": report.classes,
        "seed": seed, "val_fraction": val_fraction, "shard_size": shard_size,
        "stats": {"size": stats_size, "mean": list(mean), "std": list(std)},
        "splits": {split: _write_split(Path(out), split, samples, report.root, shard_size,
                                       len(report.classes), progress)
                   for split, samples in splits.items()},
        "left_out": [{"path": str(Path(p).relative_to(report.root)), "reason": reason}
                     for p, reason in [*report.unreadable,
                                       *((p, "not a photo") for p in report.not_images)]],
    }
    write_json(Path(out) / MANIFEST, manifest)
    return manifest


def _splits(report, val_fraction: float, seed: int):
    """``({split: [(path, class_id)]}, the training photos in make_loaders' order)``; the
    training split is written in a seeded order (hash of seed and name) that mixes classes."""
    files = report.files["train"]
    names = [str(path.relative_to(report.root)) for path, _ in files]
    train_idx, val_idx = stratified_split(names, [t for _, t in files], val_fraction, seed)
    mixed = sorted(train_idx, key=lambda i: hashlib.sha256(f"{seed}:{names[i]}".encode()).digest())
    splits = {"train": [files[i] for i in mixed], "valid": [files[i] for i in val_idx],
              "test": report.files["test"]}
    return splits, [files[i] for i in train_idx]  # the same float sums, the same mean and std


def _write_split(out: Path, split: str, samples, root: Path, shard_size: int, n_classes: int,
                 progress: bool) -> dict:
    """Write one split's shards; returns its entry of the manifest."""
    shards = []
    bar = tqdm(total=len(samples), desc=f"Writing {split} shards", disable=not progress)
    for start in range(0, len(samples), shard_size):
        path = out / f"{split}-{start // shard_size:06d}.tar"
        chunk = range(start, min(start + shard_size, len(samples)))
        with atomic_path(path) as tmp, open(tmp, "wb") as stream, \
                wds.TarWriter(stream, **_TAR) as tar:
            for index in chunk:
                photo, label = samples[index]
                tar.write({"__key__": f"{index:08d}", photo.suffix.lower().lstrip("."):
                           photo.read_bytes(), "cls": str(label).encode(),
                           "path.txt": str(photo.relative_to(root)).encode()})
                bar.update()
        shards.append({"name": path.name, "photos": len(chunk),
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    bar.close()
    counts = Counter(label for _, label in samples)
    return {"photos": len(samples), "per_class": [counts[i] for i in range(n_classes)],
            "shards": shards}


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a shard folder written by :func:`write_shards`.

    Raises:
        FileNotFoundError: no ``manifest.json`` there. ValueError: not a shard manifest.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {folder}: write it with `landmarklib shard`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SHARDS_FORMAT:
        raise ValueError(f"{path} is not a {SHARDS_FORMAT} manifest")
    return manifest


class ShardStream(IterableDataset):
    """The photos of one split, read from its shards by one rank (and its workers).

    Items are ``(transform(prepare(photo)), class_id)`` as from
    :class:`~landmarklib.data.PhotoDataset` (decoded by
    :func:`~landmarklib.images.image_from_bytes`); a photo that does not decode gives ``None``
    and a warning naming it. In order: photo ``i`` goes to rank ``i % world_size`` and batch
    ``b`` of a rank to worker ``b % workers``, so a DataLoader over the stream gives the rank's
    photos in the split's order with any number of workers. For training (see the module),
    each photo's augmentation is seeded by :attr:`seed` and its key: the same on any rank.

    Args:
        folder, split: a shard folder and ``"train"``, ``"valid"`` or ``"test"``.
        transform, size, prepare: as in :class:`~landmarklib.data.PhotoDataset`.
        training: stream for training (shards split by rank, shuffled, repeated).
        rank, world_size: this process's rank and the number of ranks.
        batch_size, shuffle_buffer: the loader's batch size; photos a training worker holds
            and draws from at random.
        seed: the epoch's seed (:class:`ShardLoader` sets it every epoch).

    Raises:
        ValueError: an unknown split, a rank outside ``[0, world_size)``, or, for training,
            fewer shards than ranks.
    """

    def __init__(self, folder, split: str, transform=None, size: int | None = None, prepare=None,
                 *, training: bool = False, rank: int = 0, world_size: int = 1,
                 batch_size: int = 32, shuffle_buffer: int = 1000, seed: int = 0):
        manifest = read_manifest(folder)
        if split not in manifest["splits"]:
            raise ValueError(f"split must be one of {', '.join(manifest['splits'])}, not {split!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        entry = manifest["splits"][split]
        self.urls = [str(Path(folder) / shard["name"]) for shard in entry["shards"]]
        if training and len(self.urls) < world_size:
            raise ValueError(
                f"{folder}: {len(self.urls)} {split} shards for {world_size} ranks; write the "
                f"shards again with --shard-size {max(1, entry['photos'] // world_size)} or less")
        self.sizes = [shard["photos"] for shard in entry["shards"]]
        self.checksums = [shard["sha256"] for shard in entry["shards"]]
        self.split, self.total, self.classes = split, entry["photos"], manifest["classes"]
        self.transform, self.size, self.prepare, self.training = transform, size, prepare, training
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.shuffle_buffer, self.seed = shuffle_buffer, seed

    def __len__(self) -> int:
        """Photos this rank gets in one pass over the split (in-order streams)."""
        return len(range(self.rank, self.total, self.world_size))

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.training:
            return self._shuffled(worker, workers)
        return self._in_order(worker, workers)

    def _mine(self, index: int, worker: int, workers: int) -> bool:
        position, rank = divmod(index, self.world_size)
        return rank == self.rank and (position // self.batch_size) % workers == worker

    def _in_order(self, worker: int, workers: int):
        starts = list(itertools.accumulate([0, *self.sizes]))
        urls = [url for url, a, b in zip(self.urls, starts, starts[1:])  # shards with photos
                if any(self._mine(i, worker, workers) for i in range(a, b))]  # for this worker
        if not urls:
            return
        yield from wds.DataPipeline(
            wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=wds.warn_and_continue),
            wds.select(lambda sample: self._mine(int(sample["__key__"]), worker, workers)),
            wds.map(self._item))

    def _shuffled(self, worker: int, workers: int):
        order = sorted(self.urls, key=lambda url: _digest(f"{self.seed}:{Path(url).name}"))
        mine = order[self.rank::self.world_size]  # the same order on every rank: no overlap
        for rerun in itertools.count():
            rng = random.Random(f"{self.seed}:{self.rank}:{worker}:{rerun}")
            given = 0
            for item in wds.DataPipeline(
                    wds.SimpleShardList(mine, seed=rng.random()), wds.split_by_worker,
                    wds.tarfile_to_samples(handler=wds.warn_and_continue),
                    wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng),
                    wds.map(lambda sample, rerun=rerun: self._item(sample, rerun))):
                given += 1
                yield item
            if given == 0:  # a worker with no shard
                return

    def _item(self, sample: dict, rerun: int | None = None):
        """``(input, class_id)`` of a sample of a shard, or ``None`` if its photo does not
        decode; training augmentation is seeded by the epoch's seed and the photo's key."""
        name = sample.get("path.txt", b"?").decode("utf-8", "replace")
        try:
            field = next(k for k in sample if not k.startswith("__") and k not in _NOT_PHOTO)
            image = image_from_bytes(sample[field], name, short_side=self.size)
        except (StopIteration, ImageError) as error:
            warnings.warn(f"skipped a photo that does not decode: {name}: {error}", stacklevel=2)
            return None
        image = self.prepare(image) if self.prepare else image
        label = int(sample["cls"])
        if self.transform is None or rerun is None:  # in order: nothing random
            return (self.transform(image) if self.transform else image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_digest(f"{self.seed}:{rerun}:{sample['__key__']}"))
            return self.transform(image), label

    def with_transform(self, transform) -> ShardStream:
        """The same photos with another transform (e.g. a mirrored view)."""
        view = object.__new__(ShardStream)
        view.__dict__.update(self.__dict__, transform=transform)
        return view

    def key(self) -> str:
        """What the items depend on, as text (the key of cached features): the shards' SHA-256,
        the rank's share and the steps."""
        return "\n".join([f"{self.split} {self.rank}/{self.world_size} {self.size!r} "
                          f"{self.prepare!r} {self.transform!r} {self.training}",
                          *self.checksums])


def _digest(text: str) -> int:
    """A 63-bit number from ``text`` (SHA-256): the same on every machine and Python."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


class ShardLoader:
    """Batches from a :class:`ShardStream`, what a DataLoader is for a folder.

    Each pass gives ``len(self)`` batches of a :class:`~torch.utils.data.DataLoader` over the
    stream (:func:`~landmarklib.data.collate_photos`). For training it first draws the epoch's
    seed from :attr:`generator`, which :func:`~landmarklib.fitting.fit` seeds and checkpoints:
    every rank draws the same, so every rank puts the shards in the same order.

    Attributes:
        dataset, batch_size, num_workers, collate_fn: as a DataLoader's.
        generator: the training loader's :class:`torch.Generator` (``None`` in order).
        photos: how many photos the last pass gave (:meth:`landmarklib.world.World.mean`).
    """

    def __init__(self, dataset: ShardStream, batch_size: int, num_workers: int = 0,
                 batches: int | None = None, generator: torch.Generator | None = None):
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.collate_fn, self.generator, self.photos = collate_photos, generator, 0
        self.batches = batches if batches is not None else -(-len(dataset) // batch_size)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        if self.generator is not None:
            self.dataset.seed = int(torch.randint(2**62, (), generator=self.generator))
        loader = DataLoader(self.dataset, batch_size=self.batch_size,
                            num_workers=self.num_workers, collate_fn=collate_photos,
                            pin_memory=torch.cuda.is_available())
        self.photos = 0
        for images, labels in itertools.islice(loader, self.batches):
            self.photos += len(labels)
            yield images, labels


def shard_loader(folder, split: str, size: int, mean, std, batch_size: int = 32, *,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0) -> ShardLoader:
    """In-order batches of one split with the one evaluation preprocessing (center crop, then
    normalisation), as :func:`~landmarklib.data.make_loaders` gives for validation and test:
    float32 ``(B, 3, size, size)`` and int64 ``(B,)``. Rank ``rank`` of ``world_size`` gets
    photos ``rank, rank + world_size, ...`` (the default: every photo)."""
    stream = ShardStream(folder, split, ToInput(tuple(mean), tuple(std)), size, CenterCrop(size),
                         rank=rank, world_size=world_size, batch_size=batch_size)
    return ShardLoader(stream, batch_size, num_workers)


def shard_loaders(
    folder: str | os.PathLike,
    size: int = 128,
    batch_size: int = 32,
    mean=None,
    std=None,
    *,
    augment: bool = True,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    shuffle_buffer: int = 1000,
    seed: int = 0,
) -> Loaders:
    """:func:`~landmarklib.data.make_loaders` for a shard folder, for rank ``rank`` of
    ``world_size`` (who gets which photos: see the module's documentation).

    Args:
        folder: written by :func:`write_shards`.
        size, batch_size: training resolution (pixels); photos per batch on this rank.
        mean, std: normalisation (default: the manifest's, measured at its ``stats`` size,
            128 px unless written otherwise; the model file records what was used).
        augment: training photos get :func:`~landmarklib.data.train_transform`, shuffled
            (``False``: in order, with the evaluation preprocessing, for feature extraction).
        rank, world_size: this process's place in the group (:mod:`landmarklib.world`).
        num_workers, shuffle_buffer, seed: DataLoader workers per rank; photos each training
            worker shuffles among; seeds the training loader's generator.

    Returns:
        A :class:`~landmarklib.data.Loaders` of :class:`ShardLoader` (``report`` is ``None``:
        the manifest lists what the check left out).

    Raises:
        FileNotFoundError, ValueError: no manifest; too few training shards for the ranks.
    """
    manifest = read_manifest(folder)
    if mean is None or std is None:
        mean, std = manifest["stats"]["mean"], manifest["stats"]["std"]
    mean, std = tuple(mean), tuple(std)
    share = {"rank": rank, "world_size": world_size, "num_workers": num_workers}
    if augment:
        stream = ShardStream(folder, "train", train_transform(size, mean, std), size,
                             training=True, rank=rank, world_size=world_size,
                             batch_size=batch_size, shuffle_buffer=shuffle_buffer)
        batches = max(1, stream.total // (world_size * batch_size))
        train = ShardLoader(stream, batch_size, num_workers, batches,
                            torch.Generator().manual_seed(seed))
    else:
        train = shard_loader(folder, "train", size, mean, std, batch_size, **share)
    valid, test = (shard_loader(folder, split, size, mean, std, batch_size, **share)
                   for split in ("valid", "test"))
    return Loaders(train, valid, test, list(manifest["classes"]), mean, std, size, None)
