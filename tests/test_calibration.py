"""landmarklib.calibration: temperature scaling, ECE, known-landmark scores, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from landmarklib import calibration


def calibrated_logits(n: int = 4000, classes: int = 10, seed: int = 0):
    """Logits and labels drawn from softmax(logits): calibrated at temperature 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, classes))
    probabilities = np.exp(calibration.log_softmax(logits, np.float64))
    labels = (rng.random((n, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    return logits, labels


def test_temperature_fitting_recovers_a_known_temperature():
    logits, labels = calibrated_logits()
    assert calibration.fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)
    assert calibration.fit_temperature(3 * logits, labels) == pytest.approx(3.0, rel=0.08)
    assert calibration.fit_temperature(logits / 2, labels) == pytest.approx(0.5, rel=0.08)
    # Log-probabilities give the same temperature as the logits they come from.
    log_probs = calibration.log_softmax(3 * logits)
    assert calibration.fit_temperature(log_probs, labels) == pytest.approx(
        calibration.fit_temperature(3 * logits, labels), rel=1e-4)


def test_calibration_lowers_the_expected_calibration_error():
    logits, labels = calibrated_logits()
    over = calibration.calibrate(3 * logits)  # over-confident
    temperature = calibration.fit_temperature(3 * logits, labels)
    after = calibration.calibrate(3 * logits, temperature)
    before_ece = calibration.calibration_error(over, labels)
    after_ece = calibration.calibration_error(after, labels)
    assert before_ece > 0.1 and after_ece < 0.03
    # The ranking of the classes never changes.
    assert (over.argmax(axis=1) == after.argmax(axis=1)).all()
    assert after.sum(axis=1) == pytest.approx(np.ones(len(after)), abs=1e-5)


def test_calibrate_refuses_a_non_positive_temperature():
    with pytest.raises(ValueError, match="positive"):
        calibration.calibrate(np.zeros((1, 3)), 0.0)


def test_reliability_bins_count_every_photo_and_match_the_ece():
    logits, labels = calibrated_logits()
    probabilities = calibration.calibrate(3 * logits)
    bins = calibration.reliability(probabilities, labels)
    assert bins["count"].sum() == len(labels) and len(bins["edges"]) == 16
    filled = bins["count"] > 0
    gaps = np.abs(bins["confidence"] - bins["accuracy"])[filled]
    ece = (gaps * bins["count"][filled]).sum() / len(labels)
    assert ece == pytest.approx(calibration.calibration_error(probabilities, labels), abs=0.01)


def test_known_scores():
    logits = np.array([[3.0, 1.0, 0.0], [0.5, 0.4, 0.3]])
    probabilities = calibration.calibrate(logits)
    assert calibration.known_score("msp", probabilities) == pytest.approx(probabilities.max(1))
    assert calibration.known_score("max_logit", logits=logits) == pytest.approx([3.0, 0.5])
    energy = np.log(np.exp(logits).sum(axis=1))
    assert calibration.known_score("energy", logits=logits) == pytest.approx(energy)
    assert calibration.known_score("knn", similarity=np.array([0.9, 0.2])) == pytest.approx(
        [0.9, 0.2])
    with pytest.raises(ValueError, match="needs the logits"):
        calibration.known_score("energy", probabilities=probabilities)
    with pytest.raises(ValueError, match="unknown score 'mahalanobis'"):
        calibration.known_score("mahalanobis", probabilities)


def test_the_combined_score_sums_the_logs_of_the_validation_ranks():
    reference = {"msp": np.array([0.2, 0.4, 0.6, 0.8]), "knn": np.array([0.5, 0.6, 0.7, 0.9])}
    probabilities = np.array([[0.7, 0.3], [0.9, 0.1], [0.55, 0.45]])
    similarity = np.array([0.95, 0.4, 0.6])
    # msp ranks (validation scores at or below): 3, 4, 2; knn ranks: 4, 0, 2; out of 4 + 1
    expected = np.log(np.array([4, 5, 3]) / 5) + np.log(np.array([5, 1, 3]) / 5)
    assert calibration.known_score("msp+knn", probabilities, similarity=similarity,
                                   reference=reference) == pytest.approx(expected)
    assert calibration.combine_scores({"knn": similarity}, reference) == pytest.approx(
        np.log(np.array([5, 1, 3]) / 5))
    with pytest.raises(ValueError, match="needs the validation photos' scores"):
        calibration.known_score("msp+knn", probabilities, similarity=similarity)
    # and the ImageNet embeddings' similarity: ranks 0, 4, 1 among 0.3, 0.5, 0.6, 0.8
    reference["imagenet_knn"] = np.array([0.3, 0.5, 0.6, 0.8])
    imagenet = np.array([0.1, 0.85, 0.4])
    assert calibration.known_score("msp+knn+imagenet_knn", probabilities, similarity=similarity,
                                   reference=reference, imagenet_similarity=imagenet
                                   ) == pytest.approx(expected + np.log(np.array([1, 5, 2]) / 5))
    with pytest.raises(ValueError, match="'imagenet_knn' score needs the ImageNet"):
        calibration.known_score("msp+knn+imagenet_knn", probabilities, similarity=similarity,
                                reference=reference)
    # as a veto, the ImageNet share (1/5, 5/5, 2/5) counts only below IMAGENET_VETO
    veto = calibration.IMAGENET_VETO
    vetoed = calibration.known_score("msp+knn+imagenet_veto", probabilities,
                                     similarity=similarity, reference=reference,
                                     imagenet_similarity=imagenet)
    shares = np.array([1, 5, 2]) / 5
    assert vetoed == pytest.approx(expected + np.minimum(np.log(shares / veto), 0))
    assert calibration.combine_scores({"knn": similarity}, reference, {"knn": 0.5}) == \
        pytest.approx([0.0, np.log(0.2 / 0.5), 0.0])  # shares 1, 0.2, 0.6
    many = {"imagenet_knn": np.linspace(0.3, 0.9, 199)}  # 199 validation photos: shares of 200
    lowest = calibration.combine_scores({"imagenet_knn": np.array([0.1, 0.3, 0.9])}, many,
                                        calibration.VETOES["msp+knn+imagenet_veto"])
    assert lowest == pytest.approx([np.log(1 / 200 / veto), np.log(2 / 200 / veto), 0.0])


def test_detection_metrics_of_perfect_inverted_and_useless_scores():
    known, unknown = np.linspace(10, 20, 50), np.linspace(-5, 5, 40)
    assert calibration.detection_metrics(known, unknown) == {"auroc": 1.0, "fpr_at_95_tpr": 0.0}
    inverted = calibration.detection_metrics(-known, -unknown)
    assert inverted["auroc"] == 0.0 and inverted["fpr_at_95_tpr"] == 1.0
    same = calibration.detection_metrics(np.zeros(30), np.zeros(30))
    assert same["auroc"] == pytest.approx(0.5)
    # Large scores are not squashed into ties (a sigmoid would round them all to 1).
    assert calibration.detection_metrics(known + 100, unknown + 90)["auroc"] == 1.0


def test_fpr_at_95_tpr_counts_the_unknown_photos_above_the_threshold():
    known = np.arange(100, dtype=float)  # the threshold accepting 95 of them is 5
    unknown = np.array([0.0, 1.0, 2.0, 6.0, 50.0, 99.5])  # 3 of 6 score 5 or more
    metrics = calibration.detection_metrics(known, unknown)
    assert metrics["fpr_at_95_tpr"] == pytest.approx(0.5)
    fpr, tpr = calibration.roc_curve(known, unknown)
    assert fpr[0] == 0 and tpr[-1] == 1 and (np.diff(tpr) >= 0).all()


def test_threshold_for_95_percent_acceptance():
    scores = np.random.default_rng(1).normal(size=1000)
    threshold = calibration.choose_threshold(scores, accept=0.95)
    accepted = (scores >= threshold).mean()
    assert 0.95 <= accepted <= 0.951
    assert calibration.choose_threshold(scores, 1.0) == scores.min()
    with pytest.raises(ValueError, match="share"):
        calibration.choose_threshold(scores, 0.0)
