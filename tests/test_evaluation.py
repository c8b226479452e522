"""landmarklib.evaluation: predictions, accuracy, top-k, per-class, confusion, mistakes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landmarklib.evaluation import (
    EvaluationResult,
    evaluate_model,
    most_confident_mistakes,
    predict,
    summarize,
)

# Six photos, six classes (class 5 has no photo). Probabilities chosen by hand; each row's
# ranking is written next to it (most probable first).
PROBS = torch.tensor([
    [0.70, 0.10, 0.05, 0.05, 0.05, 0.05],  # true 0: rank 1                  -> correct
    [0.30, 0.40, 0.20, 0.04, 0.03, 0.03],  # true 0: rank 2 (predicted 1)
    [0.05, 0.05, 0.60, 0.20, 0.06, 0.04],  # true 2: rank 1                  -> correct
    [0.10, 0.50, 0.20, 0.12, 0.05, 0.03],  # true 3: rank 3 (predicted 1)
    [0.90, 0.02, 0.02, 0.02, 0.03, 0.01],  # true 4: rank 2 (predicted 0)
    [0.25, 0.05, 0.30, 0.15, 0.10, 0.15],  # true 1: rank 6 (predicted 2)
])
LABELS = torch.tensor([0, 0, 2, 3, 4, 1])
NAMES = ["Eiffel Tower", "Golden Gate Bridge", "Taj Mahal", "Machu Picchu", "Trevi Fountain",
         "Sydney Harbour Bridge"]


def test_summarize_hand_made_example():
    result = summarize(PROBS.log(), LABELS, NAMES)
    assert isinstance(result, EvaluationResult)
    assert (result.correct, result.total) == (2, 6)
    assert result.accuracy == pytest.approx(2 / 6)
    assert result.top3 == pytest.approx(5 / 6)  # all but the last photo
    assert result.top5 == pytest.approx(5 / 6)  # the last photo's class is ranked 6th
    expected_loss = -np.mean(np.log([0.70, 0.30, 0.60, 0.12, 0.03, 0.05]))
    assert result.loss == pytest.approx(expected_loss, rel=1e-6)
    assert result.metrics() == {"test_accuracy": result.accuracy, "test_correct": 2,
                                "test_total": 6, "test_top3": result.top3,
                                "test_top5": result.top5}

    expected_confusion = np.zeros((6, 6), dtype=np.int64)
    for truth, predicted in [(0, 0), (0, 1), (2, 2), (3, 1), (4, 0), (1, 2)]:
        expected_confusion[truth, predicted] += 1
    assert result.confusion.dtype == np.int64
    np.testing.assert_array_equal(result.confusion, expected_confusion)

    assert result.per_class_accuracy.shape == (6,)
    np.testing.assert_allclose(result.per_class_accuracy[:5], [0.5, 0.0, 1.0, 0.0, 0.0])
    assert math.isnan(result.per_class_accuracy[5])  # no photo of class 5: unknown, not 0


def test_result_prints_like_the_original_project():
    result = summarize(PROBS.log(), LABELS, NAMES)
    assert str(result) == (
        f"Test loss {result.loss:.3f}, accuracy 33.3% (2/6), top-3 83.3%, top-5 83.3%")
    assert str(summarize(PROBS.log(), LABELS, split="validation")).startswith("Validation loss")


def test_by_class_and_most_confused():
    result = summarize(PROBS.log(), LABELS, NAMES)
    ranking = result.by_class()
    assert ranking[0][1] == 0.0 and ranking[-2] == ("Taj Mahal", 1.0)
    assert ranking[-1][0] == "Sydney Harbour Bridge"  # NaN last
    pairs = result.most_confused(k=10)
    assert len(pairs) == 4 and all(count == 1 for _, _, count in pairs)
    assert ("Machu Picchu", "Golden Gate Bridge", 1) in pairs
    assert result.to_dict()["confusion"][3][1] == 1


def test_top_k_with_fewer_classes_than_k():
    log_probs = torch.tensor([[0.9, 0.1], [0.8, 0.2]]).log()
    result = summarize(log_probs, torch.tensor([1, 0]))
    assert result.accuracy == 0.5 and result.top3 == 1.0 and result.top5 == 1.0
    assert result.class_names == ["0", "1"]


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="class names"):
        summarize(PROBS.log(), LABELS, NAMES[:3])
    with pytest.raises(ValueError, match="expected"):
        summarize(PROBS.log(), LABELS[:3])
    with pytest.raises(ValueError, match="expected"):
        summarize(torch.zeros(0, 6), torch.zeros(0, dtype=torch.int64))


def test_most_confident_mistakes():
    indices = most_confident_mistakes(PROBS.log(), LABELS, k=12)
    # The wrong ones, by the probability of their (wrong) prediction: 0.90, 0.50, 0.40, 0.30.
    assert indices.tolist() == [4, 3, 1, 5]
    assert indices.dtype == torch.int64
    assert most_confident_mistakes(PROBS.log(), LABELS, k=2).tolist() == [4, 3]
    all_right = most_confident_mistakes(PROBS.log(), PROBS.argmax(1))
    assert all_right.numel() == 0


class FixedOutputs(nn.Module):
    """A 'model' that returns the hand-made log-probabilities of the photos it is given:
    each photo is a 1-pixel image holding its own index."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        return PROBS.log()[images.flatten(1)[:, 0].long()] * self.scale


def test_predict_and_evaluate_model_keep_the_loader_order():
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    loader = DataLoader(TensorDataset(images, LABELS), batch_size=4)
    model = FixedOutputs().train()
    log_probs, labels = predict(model, loader, progress=False)
    assert not model.training
    assert log_probs.dtype == torch.float32 and log_probs.shape == (6, 6)
    assert labels.dtype == torch.int64 and labels.tolist() == LABELS.tolist()
    torch.testing.assert_close(log_probs, PROBS.log())
    assert not log_probs.requires_grad

    result = evaluate_model(model, loader, NAMES, progress=False)
    assert (result.correct, result.total, result.class_names) == (2, 6, NAMES)
    assert result.labels.tolist() == LABELS.tolist()
    with pytest.raises(ValueError, match="no photo"):
        predict(model, [], progress=False)


def test_predict_runs_methods_stores_dtypes_and_skips_empty_batches():
    layer = nn.Linear(4, 2)
    batches = [(torch.randn(3, 4), torch.tensor([0, 1, 0])),
               (torch.empty(0), torch.empty(0, dtype=torch.int64)),  # no photo decoded
               (torch.randn(2, 4), torch.tensor([1, 1]))]
    outputs, labels = predict(layer.forward, batches, progress=False, dtype=torch.bfloat16)
    assert outputs.shape == (5, 2) and outputs.dtype == torch.bfloat16
    assert labels.tolist() == [0, 1, 0, 1, 1] and not layer.training
    exact, _ = predict(layer, batches, progress=False)
    with torch.inference_mode():
        expected = layer(torch.cat([batches[0][0], batches[2][0]]))
    torch.testing.assert_close(exact, expected)
    # bfloat16 keeps about 3 significant digits
    torch.testing.assert_close(outputs.float(), expected, atol=0.05, rtol=0.02)
