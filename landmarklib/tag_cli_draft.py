"""Draft of ``landmarklib tag`` for :mod:`landmarklib.cli` (to be merged there by the lead).

    landmarklib tag PHOTO_OR_FOLDER... [--threshold P] [--dry-run] [--report FILE.csv]
                    [--geojson FILE] [--map FILE.html] [--sidecar NAMING] [--model FILE]

Merging: in ``cli._parser()`` call ``add_tag_parser(commands)``; ``main`` then runs
:func:`run_tag_command` like the other commands (its errors, OSError and ValueError, are
reported by ``main`` in one line with exit status 1). ``landmarklib tag`` exits 0 when every
photo was dealt with (tagged, not sure, had a location, already tagged), 1 if any failed, 130
after Ctrl-C (the report of the photos finished is written first; run the same command again to
finish).
"""

from __future__ import annotations

import argparse
import sys

from landmarklib import sidecars, tag_report, tagging


def _probability(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {value}")
    return value


def add_tag_parser(commands) -> argparse.ArgumentParser:
    """Add the ``tag`` command to ``landmarklib``'s sub-command parsers."""
    tag = commands.add_parser(
        "tag", help="write where photos were taken into XMP sidecars, for photo managers",
        description="Recognise the landmark in each photo and write its place (GPS, city, "
                    "country, keywords) into an XMP sidecar next to the photo, which photo "
                    "managers such as digiKam, darktable and Immich read. Photos are never "
                    "modified; photos that already have a location are left alone.")
    tag.add_argument("paths", nargs="+", metavar="PHOTO_OR_FOLDER",
                     help="photos, and folders to walk recursively (hidden ones skipped)")
    tag.add_argument("--threshold", type=_probability, default=tagging.TAG_THRESHOLD, metavar="P",
                     help="least top-1 probability to write a sidecar "
                          f"(default {tagging.TAG_THRESHOLD})")
    tag.add_argument("--dry-run", action="store_true",
                     help="write no sidecar; only the report says what would be done")
    tag.add_argument("--report", metavar="FILE.csv", help="write a CSV report, one row a photo")
    tag.add_argument("--geojson", metavar="FILE", help="write the report as GeoJSON")
    tag.add_argument("--map", metavar="FILE.html",
                     help="write a map of the tagged photos (one marker per landmark)")
    tag.add_argument("--sidecar", choices=sidecars.NAMINGS, default=sidecars.DEFAULT_NAMING,
                     metavar="NAMING",
                     help=f"sidecar names: {sidecars.NAMINGS[0]} (default: digiKam, darktable) "
                          f"or {sidecars.NAMINGS[1]} (ExifTool, Lightroom)")
    tag.add_argument("--model", help="model file (default: $LANDMARKLIB_MODEL or the default)")
    tag.add_argument("--batch-size", type=int, default=16, help=argparse.SUPPRESS)
    tag.add_argument("--quiet", action="store_true", help="no progress bar")
    tag.set_defaults(run=run_tag_command)
    return tag


def run_tag_command(args: argparse.Namespace) -> int:
    """Run ``landmarklib tag`` with parsed arguments; returns the exit status.

    Raises:
        FileNotFoundError, ValueError: no usable model file (``main`` reports it, exit 1).
    """
    from landmarklib.inference import get_predictor  # torch: imported only when tagging

    classifier = tagging.classifier_from_predictor(get_predictor(args.model))
    summary, interrupted = tagging.TagSummary(), False
    try:
        tagging.tag_paths(args.paths, classifier, threshold=args.threshold, naming=args.sidecar,
                          dry_run=args.dry_run, batch_size=max(1, args.batch_size),
                          progress=not args.quiet and sys.stderr.isatty(), summary=summary)
    except KeyboardInterrupt:
        interrupted = True
    for path, write in ((args.report, tag_report.write_csv),
                        (args.geojson, tag_report.write_geojson), (args.map, tag_report.write_map)):
        if path:
            write(summary.rows, path)
    for row in summary.failed:
        print(f"landmarklib tag: {row.file}: {row.reason}", file=sys.stderr)
    print(summary)
    if interrupted:
        print("landmarklib tag: interrupted; run the same command again to finish (photos "
              "already tagged are skipped)", file=sys.stderr)
        return 130
    return 1 if summary.failed else 0
