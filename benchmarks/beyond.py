"""Beyond the fixed classes (issue 14, items 4-6): added landmarks, "I don't know", calibration.

1. Trains the transfer recipe (landmarklib.recipes.train_transfer) on 40 of the 44 landmarks44
   classes (a folder of symbolic links to their train/ and test/ folders); the 4 held out are
   drawn with random.Random(--held-seed) (0, the default: 02.ayasofya, 16.independence_hall,
   24.pamukkale, 26.pyramids).
2. Builds the model's memory from the training split (landmarklib.memory.build_memory) and
   fits the temperature and the threshold on the validation split
   (landmarklib.embeddings.fit_calibration; goal: accept 95% of known-landmark photos).
3. Adds the 4 held-out landmarks from 5 training photos each and their mirror images
   (landmarklib.adding.add_landmark; numpy's default_rng(draw), --draws draws), reports
   top-1 on their test photos (also by class) and the 40 original classes' before and after
   adding.
   Then the same with 3 to 80 photos each, 5 draws: the added landmarks' top-1 by the
   number of photos.
4. Compares the combination rules (nearest class mean, margins against class means and
   the nearest training photo), raw and centred, with and without the mirror images.
5. Known or unknown (beyond_scores.py): AUROC and FPR at 95% TPR of every score of
   landmarklib.calibration.SCORES
   (and of the scores measured and not kept) on near (the 4 held-out classes' test photos,
   before adding them) and far (caltech101's test photos), and the shares accepted at the
   stored threshold. Choices are read from the validation columns: the 40 classes'
   validation split, the 4 held-out classes' training photos, 500 caltech101 training photos.
6. Expected calibration error (15 bins) before and after temperature scaling, on the
   validation and test splits; the time of one exact nearest-photo search.

    python benchmarks/beyond.py [--work DIR] [--members 2] [--backbone B] [--label-smoothing X]
                                [--held-seed 0] [--draws 10] [--json FILE] [--reuse]

--reuse keeps the trained model in --work (default: a new temporary folder), trains if none.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from beyond_scores import imagenet, other_scores, stacked, unknown
from runs import machine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "landmarks44")
    parser.add_argument("--far", type=Path, default=SHARED / "caltech101" / "test")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--backbone", help="the recipe's backbone (default: TransferRecipe's)")
    parser.add_argument("--label-smoothing", type=float,
                        help="the recipe's label smoothing (default: TransferRecipe's)")
    parser.add_argument("--held-seed", type=int, default=0,
                        help="random.Random(seed) draws the 4 held-out classes")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="landmarklib-beyond-"))
    print(f"Machine: {machine()}", flush=True)
    results = {"machine": machine()}
    root, known, held = landmarks40(args.data, work, args.held_seed)
    results["held_out"] = held
    predictor, results["training"] = trained_model(root, work, args, args.reuse)
    outputs = classify_all(predictor, root, args.data, held, args.far)
    memory, results["calibration"] = calibrated_memory(predictor, outputs, root)
    results["adding"] = adding(memory, outputs, args.draws)
    results["by_photos"] = by_photos(memory, outputs, min(args.draws, 5))
    results["rules"] = rules(memory, outputs, args.draws)
    results["unknown"] = unknown(memory, outputs)
    results["other_scores"] = other_scores(memory, outputs)
    results["search"] = search_speed(memory)
    results["machine_at_end"] = machine()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def landmarks40(source: Path, work: Path, seed: int) -> tuple[Path, list[str], list[str]]:
    """A dataset folder of symbolic links to 40 of the 44 classes; the 4 held out."""
    from landmarklib.data import class_folders, class_subset

    classes = class_folders(source / "train")
    held = [classes[i] for i in sorted(random.Random(seed).sample(range(len(classes)), 4))]
    known = [c for c in classes if c not in held]
    root = class_subset(source, work / "landmarks40", known)
    print(f"Held out: {', '.join(held)}", flush=True)
    return root, known, held


def trained_model(root: Path, work: Path, args: argparse.Namespace, reuse: bool):
    from landmarklib.deployment import Predictor
    from landmarklib.recipes import TransferRecipe, train_transfer

    model = work / "model40.pt"
    changed = {"members": args.members}
    if args.label_smoothing is not None:
        changed["label_smoothing"] = args.label_smoothing
    if args.backbone is not None:
        changed["backbone"] = args.backbone
    settings = ", ".join(f"{key}={value}" for key, value in changed.items())
    record = {"recipe": f"TransferRecipe({settings}), other settings the defaults"}
    if not (reuse and model.with_suffix(".onnx").is_file()):
        start = time.perf_counter()
        result = train_transfer(root, model, TransferRecipe(**changed), progress=False)
        record |= {"seconds": time.perf_counter() - start, "test_accuracy": result.test.accuracy,
                   "frozen_test_accuracy": result.frozen.accuracy}
        print(f"Trained on 40 classes in {record['seconds']:.0f} s: test top-1 "
              f"{result.test.accuracy:.1%} (frozen backbone + head {result.frozen.accuracy:.1%})",
              flush=True)
    return Predictor(model.with_suffix(".onnx")), record


def classify_all(predictor, root: Path, source: Path, held: list[str], far: Path) -> dict:
    """Every photo set through the deployment file once: ``{set: (answers, labels)}``."""
    from landmarklib import data
    from landmarklib.deployment import classify_photos
    from landmarklib.images import find_photos

    report = data.check_layout(root, warn=False)
    train, valid = data.split_samples(report.files["train"], report.root)
    sets = {"train": train, "valid": valid, "test": report.files["test"],
            "added_train": [(p, j) for j, c in enumerate(held)
                            for p in sorted((source / "train" / c).iterdir())],
            "added_test": [(p, j) for j, c in enumerate(held)
                           for p in sorted((source / "test" / c).iterdir())],
            "far": [(p, -1) for p in find_photos([far])],
            "far_valid": far_valid(far.parent / "train")}
    sets["added_train_mirror"] = sets["added_train"]
    outputs = {}
    for name, samples in sets.items():
        start = time.perf_counter()
        answers = list(classify_photos([p for p, _ in samples], predictor,
                                       mirror=name.endswith("_mirror")))
        assert all(a.error is None for a in answers), [a.error for a in answers if a.error]
        outputs[name] = (answers, np.array([label for _, label in samples]))
        print(f"{name}: {len(answers)} photos in {time.perf_counter() - start:.0f} s", flush=True)
    outputs["held"] = held
    return outputs


def far_valid(folder: Path, count: int = 500) -> list:
    """``count`` of caltech101's training photos (numpy default_rng(0)): unknown photos to
    choose a score on, none of them in the far test set."""
    from landmarklib.images import find_photos

    photos = sorted(find_photos([folder]))
    return [(photos[i], -1) for i in sorted(np.random.default_rng(0).choice(len(photos), count,
                                                                           replace=False))]


def calibrated_memory(predictor, outputs: dict, root: Path):
    from landmarklib.calibration import calibrate, calibration_error
    from landmarklib.embeddings import fit_calibration
    from landmarklib.memory import build_memory

    train, labels = outputs["train"]
    memory = build_memory(train, labels, predictor.class_names, predictor.model_id, root)
    memory, measured = fit_calibration(memory, *outputs["valid"], accept=0.95)
    test, test_labels = outputs["test"]
    log_probs = stacked(test, "log_probs")
    measured |= {"test_ece_before": calibration_error(np.exp(log_probs), test_labels),
                 "test_ece_after": calibration_error(calibrate(log_probs, memory.temperature),
                                                     test_labels),
                 "score": memory.score}
    print(f"Temperature {memory.temperature:.3f}; ECE validation {measured['ece_before']:.1%} "
          f"-> {measured['ece_after']:.1%}, test {measured['test_ece_before']:.1%} -> "
          f"{measured['test_ece_after']:.1%}; threshold {memory.score} "
          f">= {memory.threshold:.4f}", flush=True)
    return memory, measured


def top1(memory, answers, labels) -> float:
    return accepted(memory, answers, labels)[0]


def accepted(memory, answers, labels=None) -> tuple[float, float, float, float]:
    """``(top-1, share right and accepted by the "I don't know" rule, share accepted, share
    answered as an added landmark)``."""
    from landmarklib.embeddings import recognise

    recognition = recognise(memory, stacked(answers, "log_probs"), stacked(answers, "embedding"),
                            stacked(answers, "logits"), imagenet=imagenet(answers))
    right = recognition.probabilities.argmax(axis=1) == labels
    added = recognition.probabilities.argmax(axis=1) >= len(memory.class_names)
    return (float(right.mean()), float((right & recognition.known).mean()),
            float(recognition.known.mean()), float(added.mean()))


def per_class(memory, answers, labels) -> list[float]:
    """Top-1 on each class's photos, in the order of ``np.unique(labels)``."""
    return [top1(memory, [a for a, y in zip(answers, labels) if y == c], c)
            for c in np.unique(labels)]


def draw(outputs: dict, seed: int, per_class: int = 5, key: str = "added_train") -> list[list]:
    """``per_class`` answers of each held-out class's training photos (``key``
    ``"added_train_mirror"``: of their mirror images)."""
    answers, labels = outputs[key]
    return [[answers[i] for i in rows] for rows in drawn(labels, seed, per_class)]


def drawn(labels: np.ndarray, seed: int, per_class: int = 5) -> list[np.ndarray]:
    """The rows of the photos of each held-out class drawn with ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [np.array(sorted(rng.choice(np.flatnonzero(labels == j), per_class, replace=False)))
            for j in range(int(labels.max()) + 1)]


def with_held_out(memory, outputs: dict, seed: int, per_class: int = 5):
    """``memory`` with the held-out classes added (their names and places) from ``per_class``
    drawn training photos each and their mirror images (:func:`draw`)."""
    from landmarklib.adding import add_landmark
    from landmarklib.places import display_name, place_for

    for name, photos, mirrored in zip(outputs["held"], draw(outputs, seed, per_class),
                                      draw(outputs, seed, per_class, "added_train_mirror")):
        place = place_for(display_name(name))
        memory = add_landmark(memory, display_name(name), photos, place.where if place else "",
                              place.latitude if place else None,
                              place.longitude if place else None, mirrored)
    return memory


def adding(memory, outputs: dict, draws: int) -> dict:
    """Top-1 on the 40 original and the 4 added classes, before and after adding."""
    before = top1(memory, *outputs["test"])
    runs = []
    for seed in range(draws):
        added = with_held_out(memory, outputs, seed)
        answers, labels = outputs["added_test"]
        rest, rest_labels = undrawn(outputs, seed)
        added_test = accepted(added, answers, labels + len(memory.class_names))
        original, far = accepted(added, *outputs["test"]), accepted(added, outputs["far"][0])
        runs.append({"draw": seed, "original": original[0],
                     "added": added_test[0],
                     "added_per_class": per_class(added, answers, labels + len(memory.class_names)),
                     "added_right_accepted": added_test[1],
                     "original_accepted": original[2], "far_accepted": far[2],
                     "far_answered_added": far[3],
                     "original_valid": top1(added, *outputs["valid"]),
                     "added_valid": top1(added, rest, rest_labels + len(memory.class_names)),
                     "margin": added.margin})
    mean = {key: np.mean([r[key] for r in runs], axis=0).tolist() for key in runs[0]
            if key != "draw"}
    result = {"original_before": before, "draws": runs, "original_after_mean": mean["original"],
              "original_valid_before": top1(memory, *outputs["valid"]),
              "original_valid_after_mean": mean["original_valid"],
              "added_valid_mean": mean["added_valid"], "added_mean": mean["added"],
              "added_per_class_mean": dict(zip(outputs["held"], mean["added_per_class"])),
              "added_min": float(np.min([r["added"] for r in runs])),
              "original_after_min": float(np.min([r["original"] for r in runs])),
              "added_right_accepted_mean": mean["added_right_accepted"],
              "original_accepted_before": accepted(memory, *outputs["test"])[2],
              "original_accepted_after_mean": mean["original_accepted"],
              "far_accepted_before": accepted(memory, outputs["far"][0])[2],
              "far_accepted_after_mean": mean["far_accepted"],
              "far_answered_added_mean": mean["far_answered_added"]}
    print(f"Original 40 classes: {before:.1%} before adding, {mean['original']:.1%} after (mean "
          f"of {draws} draws, lowest {result['original_after_min']:.1%}); validation "
          f"{result['original_valid_before']:.1%} -> {mean['original_valid']:.1%}\nAdded 4 "
          f"classes (5 photos each): {mean['added']:.1%} (lowest {result['added_min']:.1%}); "
          f"validation (undrawn training photos) {mean['added_valid']:.1%}; by class: "
          f"{', '.join(f'{n} {a:.0%}' for n, a in zip(outputs['held'], mean['added_per_class']))}"
          f"\nAccepted by the "
          f"'I don't know' rule: the added classes' test photos answered right and accepted "
          f"{mean['added_right_accepted']:.1%}; the 40 classes' test photos "
          f"{result['original_accepted_before']:.1%} before adding, "
          f"{mean['original_accepted']:.1%} after; caltech101 test photos "
          f"{result['far_accepted_before']:.2%} before, {mean['far_accepted']:.2%} after "
          f"({mean['far_answered_added']:.1%} answered as an added landmark)",
          flush=True)
    return result


def by_photos(memory, outputs: dict, draws: int, counts=(3, 5, 10, 20, 40, 80)) -> dict:
    """Test top-1 of the added and the trained landmarks when each landmark is added from
    ``counts`` photos (and their mirror images), mean over ``draws`` draws: whether more
    photos would close the gap to the target."""
    table = {}
    for count in counts:
        runs = []
        for seed in range(draws):
            added = with_held_out(memory, outputs, seed, count)
            answers, labels = outputs["added_test"]
            runs.append((top1(added, answers, labels + len(memory.class_names)),
                         top1(added, *outputs["test"])))
        table[count] = dict(zip(("added", "original"), np.mean(runs, axis=0).tolist()))
    print(f"By photos per added landmark (test top-1, mean of {draws} draws): " + "; ".join(
        f"{n}: added {r['added']:.1%}, original {r['original']:.1%}" for n, r in table.items()),
        flush=True)
    return table


def undrawn(outputs: dict, seed: int) -> tuple[list, np.ndarray]:
    """The held-out classes' training photos not drawn: validation photos of the added
    landmarks (the test photos stay unseen when choosing)."""
    answers, labels = outputs["added_train"]
    keep = np.ones(len(labels), bool)
    keep[np.concatenate(drawn(labels, seed))] = False
    return [a for a, k in zip(answers, keep) if k], labels[keep]


def rules(memory, outputs: dict, draws: int) -> dict:
    """The rules compared when choosing how an added landmark competes, each in the raw and
    the centred space (memory.centred), from the 5 photos and from their mirror images too:
    mean top-1 over the draws on validation photos (the 40 classes' validation split, the
    held-out classes' undrawn training photos: what was chosen on) and on the test photos."""
    table = {}
    for centred in (False, True):
        for mirrored in (False, True):
            for split in ("valid", "test"):
                found = rules_once(memory, outputs, draws, centred, mirrored, split)
                for name, (original, added) in found.items():
                    label = f"{name}; {'centred' if centred else 'raw'}" + (
                        ", with mirror images" if mirrored else "")
                    table.setdefault(label, {})[split] = {"original": original, "added": added}
    print(f"Combination rules (mean over {draws} draws): top-1 original / added, validation; "
          "test")
    for name, row in table.items():
        print(f"  {row['valid']['original']:6.1%} / {row['valid']['added']:6.1%};  "
              f"{row['test']['original']:6.1%} / {row['test']['added']:6.1%}  {name}")
    return table


def rules_once(memory, outputs: dict, draws: int, centred: bool, mirrored: bool, split: str):
    """``{rule: (original top-1, added top-1)}``, means over the draws."""
    from landmarklib.adding import SHARPNESS, TAKE_AT_MOST
    from landmarklib.calibration import calibrate

    space = (memory if centred else replace(memory, centre=np.zeros(0, np.float32))).centred
    n, trained = len(memory.class_names), space(memory.embeddings)
    means = space(np.stack([trained[memory.labels == c].mean(0) for c in range(n)]))
    valid, scores = space(stacked(outputs["valid"][0], "embedding")), {}
    conf_v = np.log(calibrate(stacked(outputs["valid"][0], "log_probs"),
                              memory.temperature).max(1)) / SHARPNESS
    for seed in range(draws):
        known = outputs[split] if split == "test" else outputs["valid"]
        near, near_labels = outputs["added_test"] if split == "test" else undrawn(outputs, seed)
        queries = space(np.concatenate([stacked(known[0], "embedding"),
                                        stacked(near, "embedding")]))
        truth = np.concatenate([known[1], near_labels + n])
        log_probs = np.concatenate([stacked(known[0], "log_probs"), stacked(near, "log_probs")])
        head = log_probs.argmax(1)
        conf_q = np.log(calibrate(log_probs, memory.temperature).max(1)) / SHARPNESS
        photos = [space(stacked(group, "embedding")) for group in draw(outputs, seed)]
        if mirrored:
            photos = [np.concatenate([p, space(stacked(m, "embedding"))]) for p, m in zip(
                photos, draw(outputs, seed, key="added_train_mirror"))]
        protos = space(np.stack([p.mean(0) for p in photos]))
        cos_added, pick = queries @ protos.T, n + (queries @ protos.T).argmax(1)

        def beats(claim_q, claim_v, pick=pick, head=head):
            return np.where(claim_q > np.quantile(claim_v, 1 - TAKE_AT_MOST), pick, head)

        found = {
            "nearest class mean, every class": np.concatenate(
                [queries @ means.T, cos_added], 1).argmax(1),
            "head; added prototype beats every class mean, validation margin": beats(
                cos_added.max(1) - (queries @ means.T).max(1),
                (valid @ protos.T).max(1) - (valid @ means.T).max(1)),
            "head; added prototype vs nearest training photo, validation margin": beats(
                cos_added.max(1) - (queries @ trained.T).max(1) - conf_q,
                (valid @ protos.T).max(1) - (valid @ trained.T).max(1) - conf_v),
        }
        for name, predicted in found.items():
            right = predicted == truth
            scores.setdefault(name, []).append((right[truth < n].mean(), right[truth >= n].mean()))
    return {name: tuple(float(x) for x in np.mean(v, axis=0)) for name, v in scores.items()}


def search_speed(memory, queries: int = 256, repeats: int = 5) -> dict:
    """Milliseconds of one exact nearest-photo search (float32 matrix product + top 3)."""
    from landmarklib.embeddings import nearest

    batch = memory.centred(np.random.default_rng(0).normal(size=(queries, memory.embeddings.shape[
        1])))  # unit rows (the training mean subtracted too: a harmless extra)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        nearest(memory, batch, k=3)
        times.append((time.perf_counter() - start) / queries * 1e3)
    rows = len(memory.embeddings)
    result = {"rows": rows, "dimensions": int(memory.embeddings.shape[1]), "ms_per_query": float(
        min(times)), "memory_megabytes_float16": memory.embeddings.nbytes / 1e6}
    print(f"Exact search over {rows} photos x {result['dimensions']} dimensions: "
          f"{result['ms_per_query']:.3f} ms per photo (batches of {queries}); "
          f"{result['memory_megabytes_float16']:.1f} MB of float16 embeddings", flush=True)
    return result


if __name__ == "__main__":
    main()
