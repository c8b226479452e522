"""``landmarklib train``, ``export`` and ``evaluate``: models from data, and how good they are."""

from __future__ import annotations

import json
from pathlib import Path

from landmarklib.cli.options import DATA_HELP, MODEL_HELP, non_negative_int, positive_int
from landmarklib.hardware import DEFAULT_PRECISION, PRECISION_ENV, PRECISIONS


def add_parsers(commands) -> None:
    _add_train(commands)
    export = commands.add_parser(
        "export", help="write the deployment file (.onnx) of training files (.pt)")
    export.add_argument("models", nargs="+", metavar="MODEL.pt")
    export.set_defaults(run=_export)
    quantize = commands.add_parser(
        "quantize", help="write the 8-bit deployment file (MODEL.int8.onnx): a quarter of the "
                         "size, faster, its test accuracy measured")
    quantize.add_argument("model", metavar="MODEL.onnx", help="the (float) deployment file")
    quantize.add_argument("--data", help=DATA_HELP + "; its training photos calibrate, its "
                                         "test photos measure")
    quantize.add_argument("--photos", type=positive_int, default=200,
                          help="calibration photos, drawn from the training split (default 200)")
    quantize.add_argument("--no-index", action="store_true",
                          help="do not write the 8-bit file's memory (`landmarklib index` "
                               "writes it later)")
    quantize.set_defaults(run=_quantize)
    evaluate = commands.add_parser(
        "evaluate", help="evaluate a deployment file on the test split, as users get it")
    evaluate.add_argument("--model", help=MODEL_HELP)
    evaluate.add_argument("--data", help=DATA_HELP)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=_evaluate)


def _add_train(commands) -> None:
    train = commands.add_parser("train", help="train a model and save it")
    train.add_argument("kind", choices=("transfer", "scratch"))
    train.add_argument("--data", help=DATA_HELP)
    train.add_argument("--out", help="model file to write")
    train.add_argument("--epochs", type=positive_int,
                       help="epochs (default: the recipe's; transfer: of the head on frozen "
                            "features, fine-tuning runs 8)")
    train.add_argument("--lr", type=float,
                       help="learning rate (default: the recipe's; transfer: the head's)")
    train.add_argument("--batch-size", type=positive_int,
                       help="batch size (default: the recipe's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backbone", default="efficientnet_lite0",
                       help="transfer: pre-trained backbone (efficientnet_lite0 works offline)")
    train.add_argument("--members", type=non_negative_int,
                       help="transfer: fine-tuned tops averaged (default 2; 0: frozen backbone "
                            "and head only, faster)")
    train.add_argument("--checkpoint", help="scratch: checkpoint file, to resume a killed run")
    train.add_argument("--no-index", action="store_true",
                       help="do not write the model's memory (the training photos' embeddings, "
                            "the temperature, the 'I don't know' threshold); `landmarklib "
                            "index` writes it later")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="number format for training: float32, bfloat16, or auto (bfloat16 "
                            "where the hardware computes it natively); default "
                            f"${PRECISION_ENV} or {DEFAULT_PRECISION}")
    train.set_defaults(run=_train)


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
    if not args.no_index:
        from landmarklib.cli.landmarks import report_index
        from landmarklib.deployment import Predictor
        from landmarklib.indexing import index_model

        split_seed = args.seed if args.kind == "scratch" else 0  # as the recipes split
        report_index(*index_model(Predictor(result.deployment_path), args.data,
                                  seed=split_seed))
    return 0


def _export(args) -> int:
    from landmarklib.export import export_onnx

    for model in args.models:
        out = export_onnx(model)
        print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _quantize(args) -> int:
    import random

    from landmarklib.data import data_root, dataset_of_model, split_samples
    from landmarklib.deployment import Predictor, model_path
    from landmarklib.inference import evaluate_deployment
    from landmarklib.quantization import quantize_model

    predictor = Predictor(model_path(args.model), memory=False)
    report = dataset_of_model(data_root(args.data), predictor.trained_folders, progress=True)
    train, _ = split_samples(report.files["train"], report.root)  # validation photos kept out
    photos = random.Random(0).sample([path for path, _ in train], min(args.photos, len(train)))

    out = quantize_model(predictor.path, photos, measure=lambda path: evaluate_deployment(
        report.files["test"], path).metrics())
    int8 = Predictor(out, memory=False)
    before, after = predictor.metrics.get("test_accuracy"), int8.metrics
    calibrated = json.loads(int8.session.get_modelmeta().custom_metadata_map["quantization"]
                            )["calibration_photos"]
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB, float: "
          f"{predictor.path.stat().st_size / 1e6:.1f} MB; calibrated on {calibrated} training "
          f"photos); test top-1 "
          f"{after['test_accuracy']:.1%} ({after['test_correct']}/{after['test_total']})"
          + (f", float {before:.1%}" if before is not None else ""))
    if not args.no_index:
        from landmarklib.cli.landmarks import report_index
        from landmarklib.indexing import index_model
        from landmarklib.memory import memory_path

        print("Indexing the 8-bit file's memory (should this be interrupted, `landmarklib "
              f"index --model {out}` finishes it)")
        report_index(*index_model(int8, report.root, added_from=memory_path(predictor.path)))
    return 0


def _evaluate(args) -> int:
    from landmarklib.data import data_root, dataset_of_model
    from landmarklib.deployment import get_predictor
    from landmarklib.inference import evaluate_deployment

    predictor = get_predictor(args.model)
    report = dataset_of_model(data_root(args.data), predictor.trained_folders, progress=True)
    result = evaluate_deployment(report.files["test"], args.model)
    print(json.dumps(result.to_dict(), indent=1) if args.json else result)
    return 0
