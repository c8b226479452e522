"""Known against unknown, for benchmarks/beyond.py (issue 14, item 6): every score of
landmarklib.calibration.SCORES, and the scores measured when choosing and not kept.

Each function takes the memory beyond.py calibrated and its ``outputs`` (``{set: (answers,
labels)}``: the deployment file's answers for the validation, test, held-out and caltech101
photos); choices are read from the validation columns, the test columns only measured.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np


def stacked(answers, name: str) -> np.ndarray:
    return np.stack([getattr(a, name) for a in answers])


def imagenet(answers) -> np.ndarray | None:
    """The answers' ImageNet embeddings ``(N, F')``; ``None`` for a file without them."""
    return None if answers[0].imagenet is None else stacked(answers, "imagenet")


def unknown(memory, outputs: dict) -> dict:
    """AUROC, FPR@95TPR and shares accepted, for every score, near and far; chosen on the
    validation columns (known: the validation split; near: the held-out classes' training
    photos; far: 500 caltech101 training photos), the test columns only measured."""
    from landmarklib.calibration import NEEDS_IMAGENET, SCORES, choose_threshold, detection_metrics
    from landmarklib.embeddings import recognise

    def scores(kind, name):
        answers = outputs[name][0]
        return recognise(replace(memory, score=kind), stacked(answers, "log_probs"),
                         stacked(answers, "embedding"), stacked(answers, "logits"),
                         imagenet=imagenet(answers)).score

    table = {}
    print("Known against unknown: AUROC, FPR@95TPR, validation (choosing) | test (known: the "
          "40 classes' test photos); accepted at the threshold that accepts 95% of the "
          "validation photos")
    for kind in [k for k in SCORES if len(memory.imagenet) or k not in NEEDS_IMAGENET]:
        known, valid = scores(kind, "test"), scores(kind, "valid")
        threshold = choose_threshold(valid, 0.95)
        row = {"threshold": threshold, "known_accepted": float((known >= threshold).mean())}
        for name, key, check in (("near", "added_test", "added_train"),
                                 ("far", "far", "far_valid")):
            other = scores(kind, key)
            row[name] = detection_metrics(known, other)
            row[name]["accepted"] = float((other >= threshold).mean())
            row[f"{name}_valid"] = detection_metrics(valid, scores(kind, check))
        table[kind] = row
        print(f"  {kind:20s} valid near {row['near_valid']['auroc']:.3f} far "
              f"{row['far_valid']['auroc']:.4f} | test near {row['near']['auroc']:.3f}, "
              f"{row['near']['fpr_at_95_tpr']:.1%}; far {row['far']['auroc']:.4f}, "
              f"{row['far']['fpr_at_95_tpr']:.1%}; accepted: known {row['known_accepted']:.1%},"
              f" near {row['near']['accepted']:.1%}, far {row['far']['accepted']:.1%}",
              flush=True)
    return table


def other_scores(memory, outputs: dict) -> dict:
    """The scores measured when choosing and not kept (AUROC near and far, validation and
    test): the k-th nearest training photo (Sun et al. 2022) raw and centred, Mahalanobis
    distance to the nearest class mean with a shared covariance (Lee et al. 2018) and the
    relative one (minus that to the mean of all training photos; Ren et al. 2021)."""
    from landmarklib.calibration import detection_metrics

    trained, labels = memory.embeddings.astype(np.float64), memory.labels
    means = np.stack([trained[labels == c].mean(0) for c in range(len(memory.class_names))])

    def precision(rows):
        cov = rows.T @ rows / len(rows)
        return np.linalg.inv(cov + 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov)))

    shared, overall = precision(trained - means[labels]), precision(trained - trained.mean(0))

    def mahalanobis(x):  # (x - m) P (x - m) for every class mean m, the smallest
        xp = x @ shared
        return ((xp * x).sum(1)[:, None] - 2 * xp @ means.T
                + ((means @ shared) * means).sum(1)[None]).min(1)

    kinds = {f"knn, {k}th nearest{', centred' if c else ''}": (lambda x, k=k, c=c: -np.sort(
        -(memory.centred(x) @ memory.centred_embeddings.T if c else x @ trained.T), 1)[:, k - 1])
        for k in (1, 5, 10) for c in (False, True)}
    kinds["mahalanobis"] = lambda x: -mahalanobis(x)
    kinds["relative mahalanobis"] = lambda x: -mahalanobis(x) + np.einsum(
        "nf,fg,ng->n", x - trained.mean(0), overall, x - trained.mean(0))
    table = {}
    for name, score in kinds.items():
        of = {key: score(stacked(outputs[key][0], "embedding").astype(np.float64))
              for key in ("valid", "added_train", "far_valid", "test", "added_test", "far")}
        table[name] = {column: detection_metrics(of[known], of[other])["auroc"]
                       for column, known, other in (
                           ("near_valid", "valid", "added_train"),
                           ("far_valid", "valid", "far_valid"), ("near", "test", "added_test"),
                           ("far", "test", "far"))}
        print(f"  {name:28s} valid near {table[name]['near_valid']:.3f} far "
              f"{table[name]['far_valid']:.4f} | test near {table[name]['near']:.3f} far "
              f"{table[name]['far']:.4f}", flush=True)
    return table
