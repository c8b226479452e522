"""``landmarklib shard`` and ``landmarklib distributed``: beyond one machine's folder of photos.

    landmarklib shard DATA OUT [--shard-size 256] [--seed 0]
    torchrun --standalone --nproc-per-node 4 -m landmarklib.distributed scratch SHARDS ...

``landmarklib distributed`` (what ``python -m landmarklib.distributed`` runs) trains on
shards; under torchrun every rank runs it, without torchrun it is one process. See
``docs/scaling.md``.
"""

from __future__ import annotations

import contextlib
import os
import sys

from landmarklib.cli.options import non_negative_int, positive_int
from landmarklib.hardware import DEFAULT_PRECISION, PRECISION_ENV, PRECISIONS


def add_parsers(commands) -> None:
    shard = commands.add_parser(
        "shard", help="write a dataset folder's train, validation and test splits as "
                      "WebDataset shards (tar files) with a manifest")
    shard.add_argument("data", metavar="DATA", help="dataset folder (train/ and test/)")
    shard.add_argument("out", metavar="OUT", help="folder for the shards and manifest.json")
    shard.add_argument("--shard-size", type=positive_int, default=256,
                       help="photos per shard (default 256; at least as many training shards "
                            "as GPUs are needed)")
    shard.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    shard.set_defaults(run=_shard)
    _add_distributed(commands)


def _add_distributed(commands) -> None:
    train = commands.add_parser(
        "distributed", help="train on shards with DistributedDataParallel (run it with "
                            "torchrun; without, it is one process)")
    train.add_argument("kind", choices=("scratch", "transfer"))
    train.add_argument("shards", metavar="SHARDS", help="folder written by `landmarklib shard`")
    train.add_argument("--out", help="model file to write (by rank 0)")
    train.add_argument("--checkpoint", help="scratch: checkpoint file (written by rank 0, "
                                            "read by every rank to resume)")
    train.add_argument("--epochs", type=positive_int, help="epochs (default: the recipe's)")
    train.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    train.add_argument("--batch-size", type=positive_int,
                       help="photos per batch on each rank (default: the recipe's)")
    train.add_argument("--size", type=positive_int, help="scratch: training resolution, pixels")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--members", type=non_negative_int,
                       help="transfer: fine-tuned members, shared out over the ranks (default 2)")
    train.add_argument("--workers", type=non_negative_int, default=0,
                       help="DataLoader worker processes per rank (default 0)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help=f"float32, bfloat16 or auto; default ${PRECISION_ENV} or "
                            f"{DEFAULT_PRECISION}")
    train.set_defaults(run=_distributed)


def _shard(args) -> int:
    from landmarklib.data import write_shards

    manifest = write_shards(args.data, args.out, shard_size=args.shard_size, seed=args.seed)
    for split, entry in manifest["splits"].items():
        print(f"{split}: {entry['photos']} photos in {len(entry['shards'])} shards")
    print(f"{len(manifest['left_out'])} files left out (listed in the manifest); "
          f"{os.path.join(args.out, 'manifest.json')}")
    return 0


def _distributed(args) -> int:
    from dataclasses import replace

    from landmarklib import distributed, recipes, world
    from landmarklib.training import Recipe

    if args.kind == "transfer" and (args.checkpoint or args.size):
        raise ValueError("--checkpoint and --size are for `distributed scratch`")
    if args.kind == "scratch" and args.members is not None:
        raise ValueError("--members is for `distributed transfer`")
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr),
                                   ("batch_size", args.batch_size), ("size", args.size),
                                   ("members", args.members), ("precision", args.precision))
                 if v is not None}
    # Only rank 0 prints; every rank's warnings and errors still reach stderr.
    with world.from_environment() as group, open(os.devnull, "w") as devnull, \
            contextlib.redirect_stdout(sys.stdout if group.is_main else devnull):
        if args.kind == "scratch":
            result = distributed.train_scratch(
                args.shards, args.out, replace(Recipe(), seed=args.seed, **overrides),
                args.checkpoint, group, args.workers)
        else:
            result = distributed.train_transfer(
                args.shards, args.out,
                replace(recipes.TransferRecipe(), seed=args.seed, **overrides),
                group, num_workers=args.workers)
    if result is not None:
        print(result.test)
        print(f"Saved {result.model_path} and {result.deployment_path} ({result.seconds:.0f} s "
              f"on {group.size} process{'es' if group.size > 1 else ''}, "
              f"{result.precision})")
    return 0
