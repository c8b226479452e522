"""One process or many: the group of processes ("the world") a training run belongs to.

PyTorch trains on several GPUs by running one process per GPU, each called a *rank*: torchrun
starts them and tells each its number (``RANK``), how many there are (``WORLD_SIZE``), its
number on its own machine (``LOCAL_RANK``) and where to meet the others (``MASTER_ADDR``,
``MASTER_PORT``). Every rank holds a copy of the model; :class:`~torch.nn.parallel.
DistributedDataParallel` (DDP) averages the gradients over the ranks after every backward pass,
so the copies take the same step and stay equal (Li et al., 2020, "PyTorch Distributed:
Experiences on Accelerating Data Parallel Training").

:func:`landmarklib.fitting.fit` takes a ``world`` and asks it for the little that differs:

* :meth:`World.wrap`: the model to train (DDP around it, or the model itself);
* :meth:`World.mean`: a loss or accuracy over every rank's photos, from each rank's sums and
  counts (``all_reduce``), so that every rank records the same history and makes the same
  decisions (best epoch, early stopping);
* :meth:`World.on_main`: something only rank 0 does (write the checkpoint), then everyone waits
  for it (``barrier``), so that a run started again finds a whole checkpoint.

:class:`World` is one process, the default: each method does what a lone process does
(nothing), so notebooks never meet any of this. :class:`ProcessGroup` is a rank of a group
started by torchrun. :func:`from_environment` picks one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from landmarklib.hardware import pick_device

__all__ = ["World", "ProcessGroup", "from_environment", "TORCHRUN_VARIABLES"]

#: The environment variables torchrun sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class World:
    """A world of one process: the default of :func:`~landmarklib.fitting.fit`.

    Attributes:
        rank, size, local_rank: 0, 1, 0.
        device: where this process trains (:func:`landmarklib.hardware.pick_device`).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    def __init__(self, device: torch.device | str | None = None):
        self.device = pick_device(device)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that writes files and prints."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train: ``model`` itself."""
        return model

    def mean(self, loader, *means: float) -> tuple[float, ...]:
        """Means (a loss per photo, an accuracy) over every rank's photos: here, ``means``."""
        return tuple(means)

    def on_main(self, function: Callable, *args, **kwargs):
        """``function(*args, **kwargs)`` on rank 0 only (its result; ``None`` on the other
        ranks), then wait until every rank gets here."""
        result = function(*args, **kwargs) if self.is_main else None
        self.barrier()
        return result

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    def gather(self, value) -> list:
        """Every rank's ``value`` (anything picklable), in rank order, on every rank."""
        return [value]

    def close(self) -> None:
        """Leave the group (nothing to leave here)."""

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank {self.rank} of {self.size}, {self.device})"


class ProcessGroup(World):
    """One rank of a group of processes started by torchrun, joined on construction.

    Each rank trains on ``cuda:LOCAL_RANK`` with the NCCL backend when PyTorch sees GPUs, else
    on the CPU with the gloo backend (the backend used by the tests: 2 processes on one
    machine). The rendezvous is torchrun's (``env://``: the variables of
    :data:`TORCHRUN_VARIABLES`).

    Args:
        backend: ``"nccl"`` or ``"gloo"`` (default: by the device, as above).

    Raises:
        RuntimeError: a variable torchrun sets is missing (not started by torchrun), or the
            other ranks never arrived (PyTorch's timeout).
    """

    def __init__(self, backend: str | None = None):
        import torch.distributed as dist

        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise RuntimeError(f"not started by torchrun: {', '.join(missing)} not set")
        self.rank, self.size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
        dist.init_process_group(self.backend, rank=self.rank, world_size=self.size,
                                device_id=self.device if self.device.type == "cuda" else None)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` (already on :attr:`device`) inside
        :class:`~torch.nn.parallel.DistributedDataParallel`: on construction it copies rank 0's
        weights and buffers to every rank; during ``backward`` it averages the gradients."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def mean(self, loader, *means: float) -> tuple[float, ...]:
        """Means over every rank's photos: each rank contributes ``mean * photos`` (sums)
        and ``photos`` (its count, ``loader.photos``: how many photos its last pass over
        ``loader`` gave), added up over the ranks with ``all_reduce``.

        Raises:
            TypeError: ``loader`` does not count its photos (use the loaders of
                :mod:`landmarklib.data.shards`).
        """
        import torch.distributed as dist

        photos = getattr(loader, "photos", None)
        if photos is None:
            raise TypeError(f"a {type(loader).__name__} does not count its photos; train "
                            "distributed on landmarklib.data.shard_loaders")
        sums = torch.tensor([m * photos for m in means] + [photos], dtype=torch.float64,
                            device=self.device)
        dist.all_reduce(sums)
        if sums[-1] == 0:
            raise ValueError("no rank got a photo from the loader")
        return tuple((sums[:-1] / sums[-1]).tolist())

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def gather(self, value) -> list:
        import torch.distributed as dist

        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        """Leave the group together: a barrier, then ``destroy_process_group``, so that no
        rank tears down its connections while another still talks over them (gloo aborts
        the process when that happens)."""
        import torch.distributed as dist

        if dist.is_initialized():
            self.barrier()
            dist.destroy_process_group()


def from_environment(device: torch.device | str | None = None) -> World:
    """A :class:`ProcessGroup` when this process was started by torchrun (``WORLD_SIZE`` is
    set), else a :class:`World` of one process on ``device`` (default
    :func:`~landmarklib.hardware.pick_device`)."""
    if "WORLD_SIZE" in os.environ:
        return ProcessGroup()
    return World(device)
