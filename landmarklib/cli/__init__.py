"""The ``landmarklib`` command.

    landmarklib download                         # the real dataset, into the cache folder
    landmarklib check [--data DIR]               # layout report (decodes every photo)
    landmarklib train transfer [--data DIR] [--members 2] [--out FILE.pt] [--precision P]
    landmarklib train scratch  [--data DIR] [--epochs 30] [--lr 3e-3] [--checkpoint FILE]
    landmarklib export MODEL.pt...               # the deployment file (.onnx) tagging uses
    landmarklib quantize MODEL.onnx [--data DIR] # its 8-bit file (.int8.onnx): smaller, faster
    landmarklib evaluate [--model FILE.onnx] [--data DIR]
    landmarklib predict PHOTO_OR_FOLDER... [-k 5] [--json] [--model FILE.onnx]
    landmarklib tag PHOTO_OR_FOLDER... [--threshold P] [--dry-run] [--report FILE.csv]
                    [--geojson FILE] [--map FILE.html] [--sidecar NAMING] [--model FILE.onnx]
    landmarklib index [--data DIR] [--accept 0.95] [--model FILE.onnx]  # the model's memory
    landmarklib add-landmark NAME PHOTO... [--where "City, Country"] [--lat LAT --lon LON]
    landmarklib remove-landmark NAME · landmarklib landmarks [--json]
    landmarklib make-student OUT_DIR [--notebooks DIR]   # student versions of the notebooks
    landmarklib shard DATA OUT [--shard-size 256]         # the splits as WebDataset shards
    landmarklib distributed scratch|transfer SHARDS ...   # under torchrun: many GPUs (DDP)

The commands live by subject: :mod:`~landmarklib.cli.dataset` (download, check),
:mod:`~landmarklib.cli.training` (train, export, evaluate), :mod:`~landmarklib.cli.scale`
(shard, distributed), :mod:`~landmarklib.cli.tagging` (predict, tag),
:mod:`~landmarklib.cli.landmarks` (index, add-landmark, remove-landmark, landmarks) and
:mod:`~landmarklib.cli.classroom` (make-student). Each handler imports what
it needs when it runs, so that ``landmarklib predict`` and ``landmarklib tag`` never import
torch.

Warnings (a photo left out, a memory ignored) print as ``landmarklib COMMAND: warning: ...``
on stderr, without Python's file and line.

Exit status: 0 on success; 1 when something went wrong (stderr says what; with ``predict`` and
``tag``, the other photos are still done); 2 for a command line that makes no sense; 130 after
Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from landmarklib.cli import classroom, dataset, landmarks, scale, tagging, training
from landmarklib.images import ImageError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="landmarklib",
        description="Download, check, train, evaluate, export and tag landmarks in photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    for subject in (dataset, training, scale, tagging, landmarks, classroom):
        subject.add_parsers(commands)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: print(
            f"landmarklib {args.command}: warning: {message}", file=sys.stderr)
        try:
            return args.run(args)
        except (OSError, ValueError, ImageError, RuntimeError) as error:
            # OSError covers missing files, folders given for files, and failed downloads.
            if isinstance(error, BrokenPipeError):  # e.g. `landmarklib predict DIR | head -1`
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written
                return 0
            print(f"landmarklib {args.command}: error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"landmarklib {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
