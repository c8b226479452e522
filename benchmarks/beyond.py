"""Beyond the fixed classes (issue 14, items 4-6): added landmarks, "I don't know", calibration.

1. Trains the transfer recipe (landmarklib.recipes.train_transfer) on 40 of the 44 landmarks44
   classes (a folder of symbolic links to their train/ and test/ folders); the 4 held out are
   drawn with random.Random(0) (02.ayasofya, 16.independence_hall, 24.pamukkale, 26.pyramids).
2. Builds the model's memory from the training split (landmarklib.memory.build_memory) and
   fits the temperature and the threshold on the validation split
   (landmarklib.embeddings.fit_calibration; goal: accept 95% of known-landmark photos).
3. Adds the 4 held-out landmarks with 5 training photos each (landmarklib.embeddings.
   add_landmark; photos drawn with numpy's default_rng(draw)), and reports top-1 on their
   test photos and on the 40 original classes' test photos before and after adding; for
   draw 0 and over --draws draws of the 5 photos.
4. Compares the combination rules measured when choosing one (nearest class mean, 1-nearest
   neighbour, margins against the prototypes) on the same embeddings.
5. Known or unknown: AUROC and FPR at 95% TPR of every score of landmarklib.calibration.SCORES
   on near (the 4 held-out classes' test photos, before adding them) and far (caltech101's
   test photos), and the shares accepted at the stored threshold.
6. Expected calibration error (15 bins) before and after temperature scaling, on the
   validation and test splits; the time of one exact nearest-photo search.

    python benchmarks/beyond.py [--work DIR] [--members 2] [--draws 10] [--json FILE]
        [--reuse]

--reuse keeps the trained model in --work (the default work folder is a new temporary one)
and trains only when there is none.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from runs import machine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "landmarks44")
    parser.add_argument("--far", type=Path, default=SHARED / "caltech101" / "test")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="landmarklib-beyond-"))
    print(f"Machine: {machine()}", flush=True)
    results = {"machine": machine()}
    root, known, held = landmarks40(args.data, work)
    results["held_out"] = held
    predictor, results["training"] = trained_model(root, work, args.members, args.reuse)
    outputs = classify_all(predictor, root, args.data, held, args.far)
    memory, results["calibration"] = calibrated_memory(predictor, outputs, root)
    results["adding"] = adding(memory, outputs, args.draws)
    results["rules"] = rules(memory, outputs, args.draws)
    results["unknown"] = unknown(memory, outputs)
    results["search"] = search_speed(memory)
    results["machine_at_end"] = machine()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def landmarks40(source: Path, work: Path) -> tuple[Path, list[str], list[str]]:
    """A dataset folder of symbolic links to 40 of the 44 classes; the 4 held out."""
    from landmarklib.data import class_folders, class_subset

    classes = class_folders(source / "train")
    held = [classes[i] for i in sorted(random.Random(0).sample(range(len(classes)), 4))]
    known = [c for c in classes if c not in held]
    root = class_subset(source, work / "landmarks40", known)
    print(f"Held out: {', '.join(held)}", flush=True)
    return root, known, held


def trained_model(root: Path, work: Path, members: int, reuse: bool):
    from landmarklib.deployment import Predictor
    from landmarklib.recipes import TransferRecipe, train_transfer

    model = work / "model40.pt"
    record = {"recipe": f"TransferRecipe(members={members}), other settings the defaults"}
    if not (reuse and model.with_suffix(".onnx").is_file()):
        start = time.perf_counter()
        result = train_transfer(root, model, TransferRecipe(members=members), progress=False)
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
            "far": [(p, -1) for p in find_photos([far])]}
    outputs = {}
    for name, samples in sets.items():
        start = time.perf_counter()
        answers = list(classify_photos([p for p, _ in samples], predictor))
        assert all(a.error is None for a in answers), [a.error for a in answers if a.error]
        outputs[name] = (answers, np.array([label for _, label in samples]))
        print(f"{name}: {len(answers)} photos in {time.perf_counter() - start:.0f} s", flush=True)
    outputs["held"] = held
    return outputs


def stacked(answers, name: str) -> np.ndarray:
    return np.stack([getattr(a, name) for a in answers])


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
    from landmarklib.embeddings import recognise

    recognition = recognise(memory, stacked(answers, "log_probs"), stacked(answers, "embedding"))
    return float((recognition.probabilities.argmax(axis=1) == labels).mean())


def draw(outputs: dict, seed: int, per_class: int = 5) -> list[list]:
    """``per_class`` answers of each held-out class's training photos."""
    answers, labels = outputs["added_train"]
    rng = np.random.default_rng(seed)
    return [[answers[i] for i in sorted(rng.choice(np.flatnonzero(labels == j), per_class,
                                                   replace=False))]
            for j in range(len(outputs["held"]))]


def adding(memory, outputs: dict, draws: int) -> dict:
    """Top-1 on the 40 original and the 4 added classes, before and after adding."""
    from landmarklib.embeddings import add_landmark
    from landmarklib.places import display_name, place_for

    before = top1(memory, *outputs["test"])
    runs = []
    for seed in range(draws):
        added = memory
        for name, photos in zip(outputs["held"], draw(outputs, seed)):
            place = place_for(display_name(name))
            added = add_landmark(added, display_name(name), photos, place.where if place else "",
                                 place.latitude if place else None,
                                 place.longitude if place else None)
        answers, labels = outputs["added_test"]
        runs.append({"draw": seed, "original": top1(added, *outputs["test"]),
                     "added": top1(added, answers, labels + len(memory.class_names)),
                     "margin": added.margin})
    result = {"original_before": before, "draws": runs,
              "original_after_mean": float(np.mean([r["original"] for r in runs])),
              "added_mean": float(np.mean([r["added"] for r in runs])),
              "added_min": float(np.min([r["added"] for r in runs])),
              "original_after_min": float(np.min([r["original"] for r in runs]))}
    print(f"Original 40 classes: {before:.1%} before adding; after adding (draw 0) "
          f"{runs[0]['original']:.1%}, mean over {draws} draws {result['original_after_mean']:.1%}"
          f" (lowest {result['original_after_min']:.1%})\nAdded 4 classes (5 photos each): draw 0"
          f" {runs[0]['added']:.1%}, mean {result['added_mean']:.1%} (lowest "
          f"{result['added_min']:.1%})", flush=True)
    return result


def rules(memory, outputs: dict, draws: int) -> dict:
    """The combination rules compared when choosing one, on the same embeddings and draws."""
    from landmarklib.calibration import calibrate
    from landmarklib.embeddings import SHARPNESS, TAKE_AT_MOST

    n = len(memory.class_names)
    trained = memory.embeddings.astype(np.float32)
    class_means = np.stack([trained[memory.labels == c].mean(0) for c in range(n)])
    class_means /= np.linalg.norm(class_means, axis=1, keepdims=True)
    test, test_labels = outputs["test"]
    near, near_labels = outputs["added_test"]
    queries = np.concatenate([stacked(test, "embedding"), stacked(near, "embedding")])
    truth = np.concatenate([test_labels, near_labels + n])
    head = np.concatenate([stacked(test, "log_probs"), stacked(near, "log_probs")]).argmax(1)
    valid = memory.valid_embeddings.astype(np.float32)

    def nearest_trained(e):
        return (e @ trained.T).max(axis=1)

    conf_q = np.log(calibrate(np.concatenate([stacked(test, "log_probs"), stacked(
        near, "log_probs")]), memory.temperature).max(axis=1)) / SHARPNESS
    conf_v = np.log(np.maximum(memory.valid_confidence, 1e-12)) / SHARPNESS
    scores = {}
    for seed in range(draws):
        photos = [stacked(group, "embedding") for group in draw(outputs, seed)]
        protos = np.stack([p.mean(0) / np.linalg.norm(p.mean(0)) for p in photos])
        added_rows = np.concatenate(photos)
        added_labels = np.repeat(np.arange(len(photos)), [len(p) for p in photos]) + n
        cos_added, cos_means = queries @ protos.T, queries @ class_means.T
        pick = n + cos_added.argmax(1)
        everything = np.concatenate([trained, added_rows])
        labels = np.concatenate([memory.labels, added_labels])
        nn_added = np.stack([(queries @ p.T).max(1) for p in photos], 1)
        claim_v_nn = np.stack([(valid @ p.T).max(1) for p in photos], 1).max(1) \
            - nearest_trained(valid) - conf_v
        claim_v_proto = (valid @ protos.T).max(1) - nearest_trained(valid) - conf_v
        found = {
            "nearest class mean, every class": np.concatenate([cos_means, cos_added], 1).argmax(1),
            "1-nearest neighbour, every photo": labels[(queries @ everything.T).argmax(1)],
            "head; added prototype beats the predicted class's mean": np.where(
                cos_added.max(1) > cos_means[np.arange(len(head)), head], pick, head),
            "head; added prototype beats every class mean": np.where(
                cos_added.max(1) > cos_means.max(1), pick, head),
            "head; added nearest photo vs nearest training photo, validation margin": np.where(
                nn_added.max(1) - nearest_trained(queries) - conf_q
                > np.quantile(claim_v_nn, 1 - TAKE_AT_MOST), n + nn_added.argmax(1), head),
            "head; added prototype vs nearest training photo, validation margin (chosen)":
                np.where(cos_added.max(1) - nearest_trained(queries) - conf_q
                         > np.quantile(claim_v_proto, 1 - TAKE_AT_MOST), pick, head),
        }
        for name, predicted in found.items():
            right = predicted == truth
            scores.setdefault(name, []).append((right[truth < n].mean(), right[truth >= n].mean()))
    table = {name: {"original": float(np.mean([o for o, _ in v])),
                    "added": float(np.mean([a for _, a in v]))} for name, v in scores.items()}
    print(f"Combination rules (mean over {draws} draws): top-1 original / added")
    for name, row in table.items():
        print(f"  {row['original']:6.1%} / {row['added']:6.1%}  {name}")
    return table


def unknown(memory, outputs: dict) -> dict:
    """AUROC, FPR@95TPR and shares accepted, for every score, near and far."""
    from dataclasses import replace

    from landmarklib.calibration import SCORES, choose_threshold, detection_metrics
    from landmarklib.embeddings import recognise

    def scores(kind, name):
        answers = outputs[name][0]
        return recognise(replace(memory, score=kind), stacked(answers, "log_probs"),
                         stacked(answers, "embedding"), stacked(answers, "logits")).score

    table = {}
    print("Known (40 classes' test photos) against unknown: AUROC, FPR@95TPR; accepted at the "
          "threshold that accepts 95% of the validation photos")
    for kind in SCORES:
        known, valid = scores(kind, "test"), scores(kind, "valid")
        threshold = choose_threshold(valid, 0.95)
        row = {"threshold": threshold, "known_accepted": float((known >= threshold).mean())}
        for name, key in (("near", "added_test"), ("far", "far")):
            other = scores(kind, key)
            row[name] = detection_metrics(known, other)
            row[name]["accepted"] = float((other >= threshold).mean())
        table[kind] = row
        print(f"  {kind:9s} near {row['near']['auroc']:.3f}, {row['near']['fpr_at_95_tpr']:.1%};"
              f" far {row['far']['auroc']:.3f}, {row['far']['fpr_at_95_tpr']:.1%}; accepted: "
              f"known {row['known_accepted']:.1%}, near {row['near']['accepted']:.1%}, far "
              f"{row['far']['accepted']:.1%}", flush=True)
    return table


def search_speed(memory, queries: int = 256, repeats: int = 5) -> dict:
    """Milliseconds of one exact nearest-photo search (float32 matrix product + top 3)."""
    from landmarklib.embeddings import nearest

    rng = np.random.default_rng(0)
    batch = rng.normal(size=(queries, memory.embeddings.shape[1])).astype(np.float32)
    batch /= np.linalg.norm(batch, axis=1, keepdims=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        nearest(memory, batch, k=3)
        times.append((time.perf_counter() - start) / queries * 1e3)
    rows = len(memory.embeddings)
    result = {"rows": rows, "dimensions": int(memory.embeddings.shape[1]),
              "ms_per_query": float(min(times)),
              "memory_megabytes_float16": memory.embeddings.nbytes / 1e6}
    print(f"Exact search over {rows} photos x {result['dimensions']} dimensions: "
          f"{result['ms_per_query']:.3f} ms per photo (batches of {queries}); "
          f"{result['memory_megabytes_float16']:.1f} MB of float16 embeddings", flush=True)
    return result


if __name__ == "__main__":
    main()
