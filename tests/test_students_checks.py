"""landmarklib.students.checks: every check cell gets a right and a wrong answer.

The solution notebooks, checks included, are run by nbval in CI (scripts/test.sh).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from landmarklib import students
from landmarklib.training import OverfitResult


def _fails(check, *args, match: str, **kwargs):
    with pytest.raises(students.ExerciseError, match=match):
        check(*args, **kwargs)


# ------------------------------------------------------------------------------ checks


def test_check_split(capsys):
    targets = [0] * 10 + [1] * 10
    students.check_split([i for i in range(20) if i % 5], [0, 5, 10, 15], targets)
    assert capsys.readouterr().out.startswith("✓ split")
    _fails(students.check_split, list(range(16)), list(range(16, 20)), targets,
           match="Class 0 has 10 photos and 0 of them are in validation")
    _fails(students.check_split, list(range(20)), [0, 10], targets, match="in both")
    _fails(students.check_split, list(range(1, 9)), [0, 10], targets, match="uses 10 of the 20")


def test_check_normalisation(capsys):
    torch.manual_seed(0)
    before = torch.rand(4, 3, 8, 8)
    students.check_normalisation(before, (before - 0.5) / 0.29)
    assert "✓ normalisation" in capsys.readouterr().out
    _fails(students.check_normalisation, before, before, match="still lie between 0 and 1")
    _fails(students.check_normalisation, before, (before - 0.5) * 10, match="std")
    _fails(students.check_normalisation, before * 255, before, match="not 0 to 1")


def test_check_model_output(capsys):
    log_probs = torch.log_softmax(torch.randn(32, 7), dim=1)
    students.check_model_output(log_probs, 7, batch_size=32)
    assert "✓ model output: shape (32, 7)" in capsys.readouterr().out
    _fails(students.check_model_output, torch.log_softmax(torch.randn(32, 10), dim=1), 7,
           match=r"outputs shape \(32, 10\) but there are 7 classes: the last Linear")
    _fails(students.check_model_output, torch.randn(32, 7), 7, match="LogSoftmax")
    _fails(students.check_model_output, torch.randn(32, 7, 2, 2), 7, match="flatten")
    _fails(students.check_model_output, "model", 7, match="tensor")


def test_check_training_step(capsys):
    students.check_training_step([1.9, 1.2, 0.8])
    assert "✓ training step" in capsys.readouterr().out
    _fails(students.check_training_step, [1.9, 1.9, 1.9], match="never change")
    _fails(students.check_training_step, [1.9, 2.5], match="zero_grad")
    _fails(students.check_training_step, [1.9, float("nan")], match="NaN")


def test_check_overfit(capsys):
    students.check_overfit(OverfitResult(losses=[2.0, 0.01], threshold=0.05, passed=True))
    assert "✓ overfit check" in capsys.readouterr().out
    _fails(students.check_overfit, OverfitResult(losses=[2.0, 1.5], threshold=0.05, passed=False),
           match="could not learn one batch")
    _fails(students.check_overfit, 0.01, match="overfit_one_batch")


def _transfer_like(n_classes=5, frozen=True):
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    model.head = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, n_classes),
                               nn.LogSoftmax(dim=1))
    for p in model.backbone.parameters():
        p.requires_grad = not frozen
    return model


def test_check_frozen(capsys):
    students.check_frozen(_transfer_like(), 5)
    assert "✓ frozen" in capsys.readouterr().out
    _fails(students.check_frozen, _transfer_like(frozen=False), 5, match="requires_grad = False")
    model = _transfer_like()
    for p in model.backbone.parameters():
        p.require_grad = False  # the classic typo: freezes nothing
        p.requires_grad = True
    _fails(students.check_frozen, model, match="still require gradients")
    _fails(students.check_frozen, _transfer_like(n_classes=3), 5, match="3 outputs but there are 5")


def test_check_head_optimizer(capsys):
    model = _transfer_like()
    students.check_head_optimizer(torch.optim.Adam(model.head.parameters()), model)
    assert "✓ optimiser" in capsys.readouterr().out
    _fails(students.check_head_optimizer, torch.optim.Adam(model.parameters()), model,
           match="backbone parameters")
    _fails(students.check_head_optimizer, torch.optim.Adam(model.head[0].parameters()), model,
           match="not in the optimiser")


def test_check_finetuning(capsys):
    import copy

    from landmarklib.fitting import History

    original = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    member = SimpleNamespace(top=copy.deepcopy(original))
    history = History()
    history.append(epoch=0, train_loss=float("nan"), train_acc=float("nan"), valid_loss=1.3,
                   valid_acc=0.3, lr=1e-3, seconds=0.5)
    for epoch in range(8):
        history.append(epoch=epoch + 1, train_loss=1.0 / (epoch + 1), valid_loss=1.2,
                       train_acc=0.5, valid_acc=0.4 + epoch / 100, lr=1e-3, seconds=1.0)
    optimizer = torch.optim.AdamW(member.top.parameters())
    _fails(students.check_finetuning, history, member, original, optimizer,
           match="never updated the member's top")
    member.top(torch.ones(1, 4)).sum().backward()
    optimizer.step()  # one step, then the weights are put back: trained, yet not moved
    member.top.load_state_dict(original.state_dict())
    _fails(students.check_finetuning, history, member, original, optimizer,
           match="has not changed")
    with torch.no_grad():
        member.top[1].weight.add_(0.1)
    students.check_finetuning(history, member, original, optimizer)
    assert "✓ fine-tuning: 8 epochs, 1 of the top's 4 weight tensors moved; best validation " \
           "accuracy 47.0% (epoch 1)" in capsys.readouterr().out
    _fails(students.check_finetuning, history, member, original, optimizer, 10,
           match="asks for 10")
    history.valid_loss[0] = 1.0  # no epoch beat the start: fit kept the starting weights
    students.check_finetuning(history, member, original, optimizer)
    assert "kept them" in capsys.readouterr().out
    history.valid_loss[3] = float("nan")
    _fails(students.check_finetuning, history, member, original, optimizer, match="not finite")
    _fails(students.check_finetuning, None, member, original, optimizer,
           match="Expected the History")


def test_check_accuracy(capsys, monkeypatch):
    students.check_accuracy(SimpleNamespace(accuracy=0.4), 0.3)
    assert "✓ test accuracy 40.0%" in capsys.readouterr().out
    _fails(students.check_accuracy, SimpleNamespace(accuracy=0.2), 0.3, match="below the minimum")
    monkeypatch.setenv("LANDMARKLIB_TINY", "1")
    students.check_accuracy(SimpleNamespace(accuracy=0.2), 0.3)
    assert "not checked" in capsys.readouterr().out


def test_check_predictions(capsys):
    known = ["Eiffel Tower", "Trevi Fountain", "Terminal Tower", "Forth Bridge"]
    students.check_predictions([known[:3], known[1:]], k=3, known_names=known)
    assert "✓ predictions: 2 photo(s)" in capsys.readouterr().out
    students.check_predictions(known[:2], k=2)
    _fails(students.check_predictions, [known[:2]], k=3, match="2 names, but k = 3")
    _fails(students.check_predictions, [[("Eiffel Tower", 0.9)]], k=1, match="strings")
    _fails(students.check_predictions, [["Eiffel Tower", "Big Ben"]], k=2, known_names=known,
           match="'Big Ben' is not one of")
    _fails(students.check_predictions, "Eiffel Tower", k=1, match="list of landmark names")


def test_check_gradcam_accepts_the_answer_and_names_mistakes(capsys):
    from landmarklib import explain
    from landmarklib.students import ExerciseError, check_gradcam

    generator = torch.Generator().manual_seed(0)
    activations = torch.rand(2, 16, 4, 4, generator=generator)
    gradients = torch.randn(2, 16, 4, 4, generator=generator)
    alpha = gradients.mean(dim=(2, 3))
    cam = torch.relu((alpha[..., None, None] * activations).sum(1))
    check_gradcam(cam, activations, gradients)
    check_gradcam(explain._scaled(cam), activations, gradients)  # scaled to [0, 1]: fine too
    assert capsys.readouterr().out.count("✓") == 2
    mistakes = {
        "torch.relu": (alpha[..., None, None] * activations).sum(1),
        "ignores the gradients": torch.relu(activations.sum(1)),
        "its own gradient": torch.relu((gradients * activations).sum(1)),
        "one map per channel": torch.relu(alpha[..., None, None] * activations),
        "shape": cam[0],
        "differs": torch.relu((alpha[..., None, None] * activations).sum(1) + 1.0),
    }
    for words, wrong in mistakes.items():
        with pytest.raises(ExerciseError, match=words):
            check_gradcam(wrong, activations, gradients)


def test_check_knn_scores(capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    queries, training = (rng.normal(size=(n, 8)) for n in (5, 12))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    training /= np.linalg.norm(training, axis=1, keepdims=True)
    similarity = queries @ training.T
    students.check_knn_scores(similarity.max(axis=1), queries, training)
    assert capsys.readouterr().out.startswith("✓ kNN scores of 5 photos")
    with pytest.raises(students.ExerciseError, match="one score per photo"):
        students.check_knn_scores(similarity.max(axis=0), queries, training)
    with pytest.raises(students.ExerciseError, match="positions of the nearest photos"):
        students.check_knn_scores(similarity.argmax(axis=1), queries, training)
    with pytest.raises(students.ExerciseError, match="Not the largest cosine similarity"):
        students.check_knn_scores(similarity.min(axis=1), queries, training)
