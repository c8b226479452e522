"""``landmarklib predict`` and ``landmarklib tag``: photos in, landmarks and places out.

Both run the deployment file with ONNX Runtime (:mod:`landmarklib.inference`) and never import
torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from landmarklib.cli.options import MODEL_HELP, positive_int, probability
from landmarklib.images import find_photos
from landmarklib.sidecars import DEFAULT_NAMING, NAMINGS
from landmarklib.tagging import TAG_THRESHOLD


def add_parsers(commands) -> None:
    predict = commands.add_parser("predict", help="the most likely landmarks in photos")
    predict.add_argument("paths", nargs="+", metavar="PHOTO_OR_FOLDER")
    predict.add_argument("-k", type=positive_int, default=5,
                         help="how many landmarks per photo (5)")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--json", action="store_true", help="print one JSON document")
    predict.set_defaults(run=_predict)
    _add_tag(commands)


def _add_tag(commands) -> None:
    tag = commands.add_parser(
        "tag", help="write where photos were taken into XMP sidecars, for photo managers",
        description="Recognise the landmark in each photo and write its place (GPS, city, "
                    "country, keywords) into an XMP sidecar next to the photo, which photo "
                    "managers such as digiKam, darktable and Immich read. Photos are never "
                    "modified; photos that already have a location are left alone.")
    tag.add_argument("paths", nargs="+", metavar="PHOTO_OR_FOLDER",
                     help="photos, and folders to walk recursively (hidden ones skipped)")
    tag.add_argument("--threshold", type=probability, default=TAG_THRESHOLD, metavar="P",
                     help=f"least top-1 probability to write a sidecar (default {TAG_THRESHOLD})")
    tag.add_argument("--dry-run", action="store_true",
                     help="write no sidecar; only the report says what would be done")
    tag.add_argument("--report", metavar="FILE.csv", help="write a CSV report, one row a photo")
    tag.add_argument("--geojson", metavar="FILE", help="write the report as GeoJSON")
    tag.add_argument("--map", metavar="FILE.html",
                     help="write a map of the tagged photos (one marker per landmark)")
    tag.add_argument("--sidecar", choices=NAMINGS, default=DEFAULT_NAMING, metavar="NAMING",
                     help=f"sidecar names: {NAMINGS[0]} (default: digiKam, darktable, Immich) "
                          f"or {NAMINGS[1]} (ExifTool, Lightroom)")
    tag.add_argument("--model", help=MODEL_HELP)
    tag.add_argument("--batch-size", type=positive_int, default=16, help="photos per batch (16)")
    tag.add_argument("--quiet", action="store_true", help="no progress bar")
    tag.set_defaults(run=_tag)


def _predict(args) -> int:
    from landmarklib.deployment import check_k, classify_photos, get_predictor, ranked

    predictor = get_predictor(args.model)
    check_k(args.k, len(predictor.class_names))
    answers, failures = [], 0
    for name in args.paths:
        if Path(name).is_dir() and next(find_photos([name]), None) is None:
            failures += 1
            print(f"landmarklib predict: {name}: no photos in this folder", file=sys.stderr)
    for answer in classify_photos(find_photos(args.paths), predictor):
        if answer.error is not None:
            failures += 1
            print(f"landmarklib predict: {answer.error}", file=sys.stderr)
            answers.append({"file": str(answer.path), "error": answer.error.reason})
            continue
        top = ranked(answer.probabilities, predictor.class_names, args.k)
        answers.append({"file": str(answer.path), "predictions": [
            {"name": name, "probability": round(p, 4), **_place(predictor.place(name))}
            for name, p in top], **_evidence(answer, predictor)})
        if not args.json:
            unknown = "" if answer.known else " (not sure it shows a landmark I know)"
            print(f"{answer.path}: " + ", ".join(f"{name} ({p:.0%})" for name, p in top)
                  + unknown)
            if answer.neighbours:  # the evidence, as the apps show it (--json: whole paths)
                print("  most similar: " + ", ".join(
                    f"{n.name} {n.similarity:.2f} ({Path(n.path).parent.name}/"
                    f"{Path(n.path).name})" for n in answer.neighbours))
    if args.json:
        print(json.dumps(answers, indent=1, ensure_ascii=False))
    return 1 if failures else 0


def _tag(args) -> int:
    """Run ``landmarklib tag``: exit 0 when every photo was dealt with, 1 if any failed, 130
    after Ctrl-C (the report of the photos finished is written first; the same command run
    again finishes the job)."""
    from landmarklib import tag_report, tagging
    from landmarklib.deployment import get_predictor

    predictor = get_predictor(args.model)
    summary, interrupted = tagging.TagSummary(), False
    try:
        tagging.tag_paths(args.paths, predictor, threshold=args.threshold, naming=args.sidecar,
                          dry_run=args.dry_run, batch_size=args.batch_size,
                          progress=not args.quiet and sys.stderr.isatty(), summary=summary)
    except KeyboardInterrupt:
        interrupted = True
    for path, write in ((args.report, tag_report.write_csv),
                        (args.geojson, tag_report.write_geojson), (args.map, tag_report.write_map)):
        if path:
            write(summary.rows, path)
    if args.map and not tag_report.map_markers(summary.rows):
        print(f"landmarklib tag: {args.map} has no markers: no photo tagged with a landmark "
              f"that has coordinates (an added landmark has them with --lat/--lon)",
              file=sys.stderr)
    for row in summary.failed:
        print(f"landmarklib tag: {row.file}: {row.reason}", file=sys.stderr)
    print(summary)
    if interrupted:
        print("landmarklib tag: interrupted; run the same command again to finish (photos "
              "already tagged are skipped)", file=sys.stderr)
        return 130
    return 1 if summary.failed else 0


def _evidence(answer, predictor) -> dict:
    """With a memory beside the model: whether the photo passed its "I don't know" rule,
    and the most similar remembered photos."""
    if predictor.memory is None:
        return {}
    return {"known": answer.known, "similar": [
        {"file": str(n.path), "name": n.name, "similarity": round(n.similarity, 4)}
        for n in answer.neighbours]}


def _place(place) -> dict:
    if place is None:
        return {}
    return {"city": place.city, "country": place.country, "latitude": place.latitude,
            "longitude": place.longitude, "map_url": place.map_url}
