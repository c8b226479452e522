"""``landmarklib index``, ``add-landmark``, ``remove-landmark`` and ``landmarks``: a model's
memory (:mod:`landmarklib.memory`), the file beside its deployment file.

    landmarklib index [--data DIR] [--accept 0.95] [--score NAME] [--model FILE.onnx]
    landmarklib add-landmark NAME PHOTO... [--where "City, Country"] [--lat LAT --lon LON]
    landmarklib remove-landmark NAME
    landmarklib landmarks [--json]

``index`` embeds the training split's photos, fits the temperature and the "I don't know"
threshold on the validation split and keeps the landmarks added before
(:func:`landmarklib.indexing.index_model`); ``landmarklib train`` does it too, unless
``--no-index``. The other commands change or list the added landmarks; every
change is written atomically, and nothing is written when something is wrong.
"""

from __future__ import annotations

import json

from landmarklib.cli.options import DATA_HELP, MODEL_HELP, probability

#: The names of :data:`landmarklib.calibration.SCORES`, without importing NumPy to parse a
#: command line (a test keeps the two equal).
SCORE_NAMES = ("msp", "energy", "max_logit", "knn", "imagenet_knn", "msp+knn",
               "msp+knn+imagenet_knn", "msp+knn+imagenet_veto")

_GOAL = "share of the validation photos of known landmarks to accept (0.95)"


def add_parsers(commands) -> None:
    index = commands.add_parser(
        "index", help="remember the training photos' embeddings, calibrate, choose the "
                      "'I don't know' threshold")
    index.add_argument("--data", help=DATA_HELP)
    index.add_argument("--accept", type=probability, default=0.95, help=_GOAL)
    index.add_argument("--score", default=None, choices=SCORE_NAMES,
                       help="known-landmark score (default: msp+knn+imagenet_veto, or msp+knn "
                            "for a model without ImageNet embeddings: the best on landmarks44's "
                            "validation photos; see benchmarks/README.md)")
    index.add_argument("--model", help=MODEL_HELP)
    index.set_defaults(run=_index)
    add = commands.add_parser("add-landmark", help="teach the model a landmark from 3+ photos")
    add.add_argument("name", metavar="NAME")
    add.add_argument("photos", nargs="+", metavar="PHOTO_OR_FOLDER")
    add.add_argument("--where", default="",
                     help='"City, Country": the country after the last comma ("Maui, Hawaii, '
                          'United States": city "Maui, Hawaii"); ", Country" for a country '
                          'alone; one name without a comma is taken as the city')
    add.add_argument("--lat", type=float, help="latitude, degrees north (-90 to 90)")
    add.add_argument("--lon", type=float, help="longitude, degrees east (-180 to 180)")
    add.add_argument("--model", help=MODEL_HELP)
    add.set_defaults(run=_add)
    remove = commands.add_parser("remove-landmark", help="forget an added landmark")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--model", help=MODEL_HELP)
    remove.set_defaults(run=_remove)
    listing = commands.add_parser("landmarks", help="the landmarks a model knows")
    listing.add_argument("--model", help=MODEL_HELP)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)


def _memory_of(args):
    """``(predictor, memory file, memory)`` of ``--model``."""
    from landmarklib.deployment import get_predictor
    from landmarklib.memory import memory_path, read_memory

    predictor = get_predictor(args.model)
    path = memory_path(predictor.path)
    return predictor, path, read_memory(path, predictor.model_id)


def _index(args) -> int:
    from landmarklib.deployment import get_predictor
    from landmarklib.indexing import index_model

    report_index(*index_model(get_predictor(args.model), args.data, args.accept, args.score))
    return 0


def report_index(path, memory, measured) -> None:
    """Print what :func:`landmarklib.indexing.index_model` wrote."""
    print(f"{path}: {int((memory.labels < len(memory.class_names)).sum())} training photos; "
          f"temperature {memory.temperature:.3f} (validation ECE {measured['ece_before']:.1%} "
          f"-> {measured['ece_after']:.1%}); 'I don't know' below {memory.score} "
          f"{memory.threshold:.4f} (accepts {memory.accept:.0%} of the validation photos)")


def _add(args) -> int:
    from landmarklib.adding import add_landmark
    from landmarklib.deployment import classify_photos
    from landmarklib.images import find_photos
    from landmarklib.memory import write_memory

    predictor, path, memory = _memory_of(args)
    photos = list(find_photos(args.photos))
    memory = add_landmark(memory, args.name, classify_photos(photos, predictor), args.where,
                          args.lat, args.lon, classify_photos(photos, predictor, mirror=True))
    write_memory(memory, path)
    added = memory.landmarks[-1]
    print(f"Added {added.name!r} from {len(added.photos)} photos"
          + (f" ({added.where})" if added.where else "")
          + f"; the model now knows {len(memory.names)} landmarks ({path})")
    return 0


def _remove(args) -> int:
    from landmarklib.adding import remove_landmark
    from landmarklib.memory import write_memory

    _, path, memory = _memory_of(args)
    left = remove_landmark(memory, args.name)
    gone = next(name for name in memory.names if name not in left.names)
    write_memory(left, path)
    print(f"Removed {gone!r}; the model now knows {len(left.names)} landmarks ({path})")
    return 0


def _list(args) -> int:
    _, path, memory = _memory_of(args)
    added = [{"name": m.name, "where": m.where, "latitude": m.latitude,
              "longitude": m.longitude, "photos": len(m.photos)} for m in memory.landmarks]
    if args.json:
        print(json.dumps({"memory": str(path), "trained": memory.class_names, "added": added,
                          "temperature": memory.temperature, "score": memory.score,
                          "threshold": memory.threshold, "accept": memory.accept},
                         indent=1, ensure_ascii=False))
        return 0
    print(f"{len(memory.class_names)} trained landmarks: {', '.join(memory.class_names)}")
    print(f"{len(added)} added:" if added else "none added (landmarklib add-landmark)")
    for entry in added:
        where = f", {entry['where']}" if entry["where"] else ""
        at = (f" ({entry['latitude']:.4f}, {entry['longitude']:.4f})"
              if entry["latitude"] is not None else "")
        print(f"  {entry['name']}{where}{at}: {entry['photos']} photos")
    return 0
