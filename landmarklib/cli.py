"""The ``landmarklib`` command: download, check, train, evaluate, predict.

    landmarklib download                         # the real dataset, into the cache folder
    landmarklib check [--data DIR]               # layout report
    landmarklib train transfer [--data DIR] [--members 2] [--out FILE]
    landmarklib train scratch  [--data DIR] [--epochs 30] [--lr 3e-3] [--checkpoint FILE]
    landmarklib export MODEL.pt...               # the deployment file (.onnx) tagging uses
    landmarklib evaluate [--model FILE] [--data DIR]
    landmarklib predict PHOTO_OR_FOLDER... [-k 5] [--json] [--model FILE]
    landmarklib make-student OUT_DIR [--notebooks DIR]   # student versions of the notebooks

Exit status: 0 on success; 1 when something went wrong (stderr says what; with ``predict``,
the other photos are still answered); 2 for a command line that makes no sense.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from landmarklib.hardware import DEFAULT_PRECISION, PRECISION_ENV, PRECISIONS
from landmarklib.images import ImageError, find_photos


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
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


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


DATA_HELP = ("dataset folder (default: the tiny subset if $LANDMARKLIB_TINY=1, else "
             "$LANDMARK_DATA, else the cache folder)")
MODEL_HELP = "model file (default: $LANDMARKLIB_MODEL or the default)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landmarklib",
        description="Download, check, train, evaluate and predict landmarks in photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="download and unzip the landmark dataset")
    download.add_argument("--dest", help="folder to download into (default: the cache folder)")
    download.set_defaults(run=_download)
    check = commands.add_parser("check", help="check a dataset folder's layout")
    check.add_argument("--data", help=DATA_HELP)
    check.set_defaults(run=_check)
    _add_train(commands)
    export = commands.add_parser(
        "export", help="write the deployment file (.onnx) of training files (.pt)")
    export.add_argument("models", nargs="+", metavar="MODEL.pt")
    export.set_defaults(run=_export)
    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on the test split")
    evaluate.add_argument("--model", help=MODEL_HELP)
    evaluate.add_argument("--data", help=DATA_HELP)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=_evaluate)
    predict = commands.add_parser("predict", help="the most likely landmarks in photos")
    predict.add_argument("paths", nargs="+", metavar="PHOTO_OR_FOLDER")
    predict.add_argument("-k", type=_positive_int, default=5,
                         help="how many landmarks per photo (5)")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--json", action="store_true", help="print one JSON document")
    predict.set_defaults(run=_predict)
    student = commands.add_parser(
        "make-student", help="write student versions of the notebooks (solutions removed)")
    student.add_argument("out_dir", metavar="OUT_DIR", help="folder to write them to")
    student.add_argument("--notebooks",
                         help="folder of solution notebooks (default: this checkout's notebooks/)")
    student.set_defaults(run=_make_student)
    return parser


def _add_train(commands) -> None:
    train = commands.add_parser("train", help="train a model and save it")
    train.add_argument("kind", choices=("transfer", "scratch"))
    train.add_argument("--data", help=DATA_HELP)
    train.add_argument("--out", help="model file to write")
    train.add_argument("--epochs", type=_positive_int,
                       help="epochs (default: the recipe's; transfer: of the head on frozen "
                            "features, fine-tuning runs 8)")
    train.add_argument("--lr", type=float,
                       help="learning rate (default: the recipe's; transfer: the head's)")
    train.add_argument("--batch-size", type=_positive_int,
                       help="batch size (default: the recipe's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backbone", default="efficientnet_lite0",
                       help="transfer: pre-trained backbone (efficientnet_lite0 works offline)")
    train.add_argument("--members", type=_non_negative_int,
                       help="transfer: fine-tuned tops averaged (default 2; 0: frozen backbone "
                            "and head only, faster)")
    train.add_argument("--checkpoint", help="scratch: checkpoint file, to resume a killed run")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="number format for training: float32, bfloat16, or auto (bfloat16 "
                            "where the hardware computes it natively); default "
                            f"${PRECISION_ENV} or {DEFAULT_PRECISION}")
    train.set_defaults(run=_train)


def _download(args) -> int:
    from landmarklib.data import download_landmarks

    print(download_landmarks(args.dest))
    return 0


def _check(args) -> int:
    from landmarklib.data import check_layout, data_root

    report = check_layout(data_root(args.data), warn=False, progress=True)
    print(report)
    return 1 if report.problems else 0


def _train(args) -> int:
    from dataclasses import replace

    from landmarklib import recipes
    from landmarklib.backbones import BACKBONES
    from landmarklib.training import Recipe

    if args.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {args.backbone!r}; choose from {', '.join(BACKBONES)}")
    if args.out and Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder; give the model file to write")
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr),
                                   ("batch_size", args.batch_size),
                                   ("precision", args.precision)) if v is not None}
    if args.members is not None and args.kind == "scratch":
        raise ValueError("--members is for `train transfer`")
    if args.kind == "scratch":
        recipe = replace(Recipe(), seed=args.seed, **overrides)
        result = recipes.train_scratch(args.data, args.out, recipe, checkpoint=args.checkpoint)
    else:
        if args.members is not None:
            overrides["members"] = args.members
        recipe = replace(recipes.TransferRecipe(), backbone=args.backbone, seed=args.seed,
                         **overrides)
        result = recipes.train_transfer(args.data, args.out, recipe)
        print(f"Frozen backbone and head: {result.frozen}")
    print(result.test)
    print(f"Saved {result.model_path} and {result.deployment_path} ({result.seconds:.0f} s, "
          f"trained in {result.precision})")
    return 0


def _evaluate(args) -> int:
    from landmarklib.data import check_layout, data_root
    from landmarklib.inference import evaluate_deployment, get_predictor

    predictor = get_predictor(args.model)
    report = check_layout(data_root(args.data), warn=False, progress=True)
    if report.problems:
        raise ValueError(f"The dataset in {report.root} cannot be used:\n{report}")
    if report.classes != predictor.class_folders:
        raise ValueError(
            f"the model knows {len(predictor.class_folders)} classes but the dataset in "
            f"{report.root} has {len(report.classes)} different ones")
    result = evaluate_deployment(report.files["test"], args.model)
    print(json.dumps(result.to_dict(), indent=1) if args.json else result)
    return 0


def _predict(args) -> int:
    from landmarklib.inference import check_k, classify_photos, get_predictor, ranked
    from landmarklib.places import place_for

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
            {"name": name, "probability": round(p, 4), **_place(place_for(name))}
            for name, p in top]})
        if not args.json:
            print(f"{answer.path}: " + ", ".join(f"{name} ({p:.0%})" for name, p in top))
    if args.json:
        print(json.dumps(answers, indent=1, ensure_ascii=False))
    return 1 if failures else 0


def _export(args) -> int:
    from landmarklib.export import export_onnx

    for model in args.models:
        out = export_onnx(model)
        print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _make_student(args) -> int:
    from landmarklib import students

    source = args.notebooks or students.default_notebooks_dir()
    for path in students.make_student_notebooks(source, args.out_dir):
        print(path)
    return 0


def _place(place) -> dict:
    if place is None:
        return {}
    return {"city": place.city, "country": place.country, "latitude": place.latitude,
            "longitude": place.longitude, "map_url": place.map_url}


if __name__ == "__main__":
    sys.exit(main())
