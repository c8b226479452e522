"""Check cells: after each exercise of a notebook, one of these says whether the work is right.

Each ``check_*`` function prints a line starting with ✓ when the work is right, and otherwise
raises :class:`ExerciseError` (an ``AssertionError``) saying in plain words what is wrong and
how to fix it. How the exercises are marked and handed out: :mod:`landmarklib.students` and
docs/teaching.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["ExerciseError", "check_split", "check_normalisation", "check_model_output",
           "check_training_step", "check_overfit", "check_frozen", "check_head_optimizer",
           "check_finetuning", "check_accuracy", "check_predictions", "check_gradcam",
           "check_knn_scores"]


class ExerciseError(AssertionError):
    """An exercise check failed; the message says what is wrong and how to fix it."""


def _fail(message: str) -> None:
    raise ExerciseError(message)


def _ok(message: str) -> None:
    print(f"✓ {message}")


def check_split(train_idx: Sequence[int], val_idx: Sequence[int], targets: Sequence[int],
                val_fraction: float = 0.2) -> None:
    """Check a stratified train/validation split: no photo in both, none left out, and about
    ``val_fraction`` of every class in validation.

    Taught in notebooks/01_data_exploration.ipynb, 'Training, validation and test'.
    """
    train, val = [int(i) for i in train_idx], [int(i) for i in val_idx]
    n = len(targets)
    if len(set(train)) != len(train) or len(set(val)) != len(val):
        _fail("A photo appears twice in the same split: each index must appear once.")
    both = set(train) & set(val)
    if both:
        _fail(f"{len(both)} photos are in both training and validation (e.g. index {min(both)}): "
              "the validation photos must be ones the network never trains on.")
    outside = [i for i in train + val if not 0 <= i < n]
    if outside:
        _fail(f"Index {outside[0]} is not a photo: there are {n} photos (indices 0 to {n - 1}).")
    if len(train) + len(val) != n:
        _fail(f"The split uses {len(train) + len(val)} of the {n} photos: every training photo "
              "must go to either training or validation.")
    per_class, in_val = Counter(int(t) for t in targets), Counter(int(targets[i]) for i in val)
    for label, count in sorted(per_class.items()):
        expected = round(count * val_fraction)
        if abs(in_val[label] - expected) > 1:
            _fail(f"Class {label} has {count} photos and {in_val[label]} of them are in "
                  f"validation, but a stratified {val_fraction:.0%} split puts about {expected} "
                  "there. Split every class the same way (data.stratified_split does).")
    _ok(f"split: {len(train)} training and {len(val)} validation photos, "
        f"{val_fraction:.0%} of every class in validation, none in both.")


def check_normalisation(before, after) -> None:
    """Check that ``before`` holds pixel values in [0, 1] and ``after`` the same photos
    normalised with the training split's statistics (mean about 0, std about 1).

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    if tuple(before.shape) != tuple(after.shape):
        _fail(f"The photos before {tuple(before.shape)} and after {tuple(after.shape)} have "
              "different shapes: use the same size for both transforms.")
    if before.ndim != 4 or before.shape[1] != 3:
        _fail(f"Expected a batch of RGB photos (N, 3, H, W), got shape {tuple(before.shape)}.")
    if float(before.min()) < 0 or float(before.max()) > 1:
        _fail(f"The photos before normalisation range from {float(before.min()):.2f} to "
              f"{float(before.max()):.2f}, not 0 to 1: build the first transform with "
              "mean=None and std=None.")
    if float(after.min()) >= 0 and float(after.max()) <= 1:
        _fail("The normalised photos still lie between 0 and 1: pass the training split's "
              "mean and std to the second transform.")
    mean, std = float(after.mean()), float(after.std())
    if abs(mean) > 0.5 or not 0.5 < std < 2:
        _fail(f"After normalisation the pixels have mean {mean:.2f} and std {std:.2f}; expected "
              "about 0 and 1. Use the mean and std computed on the training photos, "
              "in the order (mean, std).")
    _ok(f"normalisation: pixels went from [0, 1] to mean {mean:.2f}, std {std:.2f}.")


def check_model_output(log_probs, n_classes: int, batch_size: int | None = None) -> None:
    """Check a classifier's output on one batch: shape ``(batch_size, n_classes)``, and
    log-probabilities (each row's probabilities add up to 1).

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Building the network'.
    """
    import torch

    if not isinstance(log_probs, torch.Tensor):
        _fail(f"Expected the model's output, a tensor, but got a {type(log_probs).__name__}: "
              "call the model on the batch of images, model(images).")
    shape = tuple(log_probs.shape)
    if len(shape) != 2:
        _fail(f"Your model outputs shape {shape}, but a classifier outputs (batch size, classes): "
              "flatten the features before the last Linear layer.")
    if batch_size is not None and shape[0] != batch_size:
        _fail(f"Your model outputs shape {shape} for a batch of {batch_size} photos: it must "
              "give one row per photo.")
    if shape[1] != n_classes:
        _fail(f"Your model outputs shape {shape} but there are {n_classes} classes: the last "
              "Linear layer should have n_classes outputs.")
    if not torch.isfinite(log_probs).all():
        _fail("Your model's output contains NaN or infinite values.")
    sums = log_probs.detach().float().exp().sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        _fail(f"The exponentials of a row of the output add up to {float(sums[0]):.3f}, not 1: "
              "the model must output log-probabilities (end with nn.LogSoftmax(dim=1)), "
              "which is what nn.NLLLoss expects.")
    _ok(f"model output: shape {shape}, log-probabilities over {n_classes} classes.")


def check_training_step(losses: Sequence[float]) -> None:
    """Check the losses of a few training steps on the same batch: finite, and going down.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'One training step'.
    """
    losses = [float(loss) for loss in losses]
    if len(losses) < 2:
        _fail(f"Got {len(losses)} loss(es); run the training step at least twice to see the "
              "loss change.")
    if not all(math.isfinite(loss) for loss in losses):
        _fail(f"The losses {losses} contain NaN or infinity: is the learning rate far too high?")
    if len(set(losses)) == 1:
        _fail(f"The loss is {losses[0]:.4f} at every step: the weights never change. Call "
              "loss.backward() and then optimizer.step().")
    if not losses[-1] < losses[0]:
        _fail(f"The loss went from {losses[0]:.3f} to {losses[-1]:.3f}: it should go down on the "
              "same batch. Did you call optimizer.zero_grad() before loss.backward()? Is the loss "
              "nn.NLLLoss() of the model's output and the labels?")
    _ok(f"training step: the loss went down from {losses[0]:.3f} to {losses[-1]:.3f} "
        f"in {len(losses)} steps.")


def check_overfit(result) -> None:
    """Check an overfit-one-batch result (:class:`landmarklib.training.OverfitResult`).

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Overfit one batch'.
    """
    losses = getattr(result, "losses", None)
    if not losses:
        _fail(f"Expected the result of training.overfit_one_batch(...), got "
              f"{type(result).__name__}.")
    if not result.passed:
        _fail(f"The network could not learn one batch by heart: the loss went from "
              f"{losses[0]:.3f} to {losses[-1]:.3f}, not below {result.threshold}. It is too weak "
              "or broken: check the model you passed (models.LandmarkCNN(n_classes)), and that "
              "images and labels come from the same batch.")
    _ok(f"overfit check: the loss went from {losses[0]:.3f} to {losses[-1]:.4f} in "
        f"{len(losses)} steps.")


def check_frozen(model, n_classes: int | None = None) -> None:
    """Check a transfer model: the backbone frozen, the head the only trainable part, and (if
    given) ``n_classes`` outputs.

    Taught in notebooks/03_transfer_learning.ipynb, 'A frozen backbone and a new head'.
    """
    from torch import nn

    if not (hasattr(model, "backbone") and hasattr(model, "head")):
        _fail(f"Expected a model with a .backbone and a .head (transfer.build_transfer_model), "
              f"got {type(model).__name__}.")
    still = [name for name, p in model.backbone.named_parameters() if p.requires_grad]
    if still:
        _fail(f"{len(still)} backbone parameters still require gradients (e.g. {still[0]}): "
              "freeze the backbone with requires_grad = False (with an s) on every parameter.")
    head = [p for p in model.head.parameters()]
    if not head or not all(p.requires_grad for p in head):
        _fail("The head must be trainable: every parameter of model.head needs "
              "requires_grad = True.")
    if n_classes is not None:
        linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
        if not linears or linears[-1].out_features != n_classes:
            got = linears[-1].out_features if linears else "no"
            _fail(f"The head's last Linear layer has {got} outputs but there are {n_classes} "
                  "classes.")
    trainable = sum(p.numel() for p in head)
    frozen = sum(p.numel() for p in model.backbone.parameters())
    _ok(f"frozen: the backbone's {frozen:,} weights are frozen; only the head's {trainable:,} "
        "train.")


def check_head_optimizer(optimizer, model) -> None:
    """Check that ``optimizer`` updates exactly the head's parameters of a transfer model.

    Taught in notebooks/03_transfer_learning.ipynb, 'Train the head'.
    """
    import torch

    if not isinstance(optimizer, torch.optim.Optimizer):
        _fail(f"Expected an optimiser, got {type(optimizer).__name__}: "
              "use training.make_optimizer(model.head, lr=...).")
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    backbone = sum(id(p) in given for p in model.backbone.parameters())
    if backbone:
        _fail(f"The optimiser holds {backbone} backbone parameters: give it only the head's "
              "(model.head), so that the pre-trained backbone stays as it is.")
    missing = sum(id(p) not in given for p in model.head.parameters())
    if missing:
        _fail(f"{missing} of the head's parameters are not in the optimiser: they would never "
              "be trained. Give it all of model.head's parameters.")
    _ok("optimiser: it trains the head's parameters and nothing else.")


def check_finetuning(history, member, original_top, optimizer, epochs: int = 8) -> None:
    """Check a fine-tuning run: ``epochs`` epochs recorded, finite losses, the optimiser
    trained the member's top, and the top moved away from the ImageNet weights it started from
    (``original_top``, the frozen top it was copied from), unless no epoch beat the starting
    weights on validation loss (then fit rightly kept them).

    Taught in notebooks/03_transfer_learning.ipynb, 'Fine-tuning the top'.
    """
    import torch

    if history is None or not hasattr(history, "valid_loss"):
        _fail("Expected the History that fitting.fit returns: "
              "history_finetuned = fitting.fit(member, ...).")
    if history.epochs_trained != epochs:
        _fail(f"The run has {history.epochs_trained} epochs, the exercise asks for {epochs}.")
    if not all(math.isfinite(x) for x in history.train_loss[1:] + history.valid_loss):
        _fail("A loss is not finite: the learning rate is probably too high.")
    steps = [optimizer.state.get(p, {}).get("step", 0) for p in member.top.parameters()]
    if not all(float(step) > 0 for step in steps):
        _fail("The optimiser never updated the member's top: give fitting.fit the member and "
              "the optimiser made for it (recipes.finetuning_optimizer(member, ...)).")
    pairs = list(zip(member.top.parameters(), original_top.parameters()))
    moved = sum(not torch.equal(a, b) for a, b in pairs)
    if history.best_epoch == 0:
        _ok(f"fine-tuning: {epochs} epochs trained, but none beat the starting weights on "
            "validation loss, so fit kept them (it happens with few validation photos).")
        return
    if not moved:
        _fail("The member's top has not changed: did fitting.fit train `member`?")
    _ok(f"fine-tuning: {epochs} epochs, {moved} of the top's {len(pairs)} weight tensors "
        f"moved; best validation accuracy {max(history.valid_acc):.1%} "
        f"(epoch {history.best_epoch}).")


def check_accuracy(result, minimum: float) -> None:
    """Check a test result's accuracy against ``minimum`` (0-1), on the full data only.

    In tiny mode (``LANDMARKLIB_TINY=1``) the accuracy means little and is only reported.
    """
    from landmarklib.data import tiny_mode

    accuracy = float(result.accuracy)
    if tiny_mode():
        print(f"tiny mode: test accuracy {accuracy:.0%} not checked "
              f"(the minimum {minimum:.0%} applies to the full dataset)")
        return
    if accuracy < minimum:
        _fail(f"Test accuracy {accuracy:.1%} is below the minimum {minimum:.0%}: train longer, "
              "check the learning rate, or revisit the exercises above.")
    _ok(f"test accuracy {accuracy:.1%} reaches the minimum {minimum:.0%}.")


def check_predictions(predictions, k: int, known_names: Sequence[str] | None = None) -> None:
    """Check ``predict_landmarks`` answers: for each photo (one list of names, or a list of
    such lists), ``k`` different landmark names.

    Taught in notebooks/04_inference_and_app.ipynb, 'Predicting landmarks'.
    """
    if isinstance(predictions, str) or not isinstance(predictions, (list, tuple)):
        _fail(f"Expected a list of landmark names, got {type(predictions).__name__}: "
              "inference.predict_landmarks(path, k=...) returns one.")
    answers = list(predictions) if predictions and not isinstance(predictions[0], str) \
        else [predictions]
    if not answers:
        _fail("There are no predictions: predict the landmarks of every photo.")
    for names in answers:
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            _fail(f"Each answer must be a list of names (strings), got {names!r}. "
                  "predict_landmarks returns the names; predict_with_probabilities adds numbers.")
        if len(names) != k:
            _fail(f"An answer has {len(names)} names, but k = {k} were asked for: "
                  "pass k to predict_landmarks.")
        if len(set(names)) != len(names):
            _fail(f"An answer names a landmark twice: {list(names)}.")
        unknown = [n for n in names if known_names is not None and n not in known_names]
        if unknown:
            _fail(f"{unknown[0]!r} is not one of the landmarks the model knows.")
    _ok(f"predictions: {len(answers)} photo(s), {k} different landmark names each.")


def _same(a, b) -> bool:
    """``a`` and ``b`` equal up to float32 rounding (relative to the larger of the two)."""
    import torch

    if a.shape != b.shape:
        return False
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale))


def _scaled(maps):
    """Each map shifted and scaled to [0, 1] (a flat map stays as it is)."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = (maps.amax(dim=(-2, -1), keepdim=True) - low).clamp_min(1e-12)
    return (maps - low) / span


def _likely_mistake(cam, A, G, alpha) -> str | None:
    """What a wrong ``cam`` most likely did, from the usual mistakes; None if none fits."""
    import torch

    mistakes = [
        ((alpha[:, :, None, None] * A).sum(dim=1),
         "cam has negative values: keep only the evidence *for* the class with torch.relu."),
        (torch.relu(A.sum(dim=1)),
         ("cam ignores the gradients: every feature map got the same weight. Weigh map k by "
          "alpha_k, the mean of its gradient.")),
        (torch.relu((G * A).sum(dim=1)),
         ("cam multiplies each position by its own gradient; Grad-CAM weighs a whole map by "
          "one number, the mean of its gradient over the positions: gradients.mean(dim=(2, 3)).")),
        (torch.relu((G.amax(dim=(2, 3))[:, :, None, None] * A).sum(dim=1)),
         ("alpha is the largest gradient of each map; Grad-CAM takes the mean: "
          ".mean(dim=(2, 3)).")),
    ]
    return next((message for wrong, message in mistakes
                 if _same(cam, wrong) or _same(cam, _scaled(wrong))), None)


def check_gradcam(cam, activations, gradients) -> None:
    """Check the student's Grad-CAM map against ``ReLU(sum_k alpha_k A_k)``, ``alpha_k`` the
    mean over positions of the gradient of map ``k`` (Selvaraju et al., 2017).

    Args:
        cam: the student's maps, ``(N, h, w)`` (already scaled to [0, 1] is accepted too).
        activations: the target layer's feature maps ``A``, float ``(N, K, h, w)``.
        gradients: the gradient of the class's logit with respect to them, same shape.

    Raises:
        ExerciseError: the maps are wrong; the message names the likely mistake.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Where does the evidence lie? Grad-CAM'.
    """
    import torch

    if not isinstance(cam, torch.Tensor):
        _fail(f"Expected a tensor of heatmaps, got a {type(cam).__name__}: compute cam with "
              "torch operations on `activations` and `gradients`.")
    if tuple(activations.shape) != tuple(gradients.shape) or activations.dim() != 4:
        _fail(f"activations {tuple(activations.shape)} and gradients "
              f"{tuple(gradients.shape)} should both be (N, K, h, w), from the same layer: "
              "keep the layer's output in the forward hook and its gradient in the tensor hook.")
    A, G = activations.detach().float(), gradients.detach().float()
    cam = cam.detach().float()
    n, k, h, w = A.shape
    alpha = G.mean(dim=(2, 3))
    expected = torch.relu((alpha[:, :, None, None] * A).sum(dim=1))
    if tuple(cam.shape) == (n, k, h, w):
        _fail(f"cam has shape {tuple(cam.shape)}: one map per channel. Weigh each of the {k} "
              "feature maps by its alpha, then add them up over the channels: .sum(dim=1).")
    if tuple(cam.shape) != (n, h, w):
        _fail(f"cam has shape {tuple(cam.shape)}, expected (N, h, w) = {(n, h, w)}: one map "
              "per photo, as large as the feature maps. Take alpha as the mean over the "
              "positions, dims (2, 3), and sum the weighted maps over dim 1.")
    if _same(cam, expected) or _same(cam, _scaled(expected)):
        _ok(f"Grad-CAM: {n} map(s) of {h} x {w}, each the weighted sum of {k} feature maps, "
            "positive evidence only.")
        return
    mistake = _likely_mistake(cam, A, G, alpha)
    if mistake:
        _fail(mistake)
    worst = float((_scaled(cam) - _scaled(expected)).abs().max())
    _fail(f"cam differs from ReLU(sum over k of alpha_k * A_k) (scaled to [0, 1], by up to "
          f"{worst:.2f}). alpha = gradients.mean(dim=(2, 3)) has shape (N, K); multiply it, as "
          "alpha[:, :, None, None], with activations, sum over dim 1, then apply torch.relu.")


def check_knn_scores(scores, queries, training) -> None:
    """Check the kNN score: each query's largest cosine similarity to a training embedding
    (``queries`` ``(N, F)``, ``training`` ``(M, F)``, unit rows).

    Taught in notebooks/05_beyond_the_landmarks.ipynb, 'Nearest photos'.
    """
    import numpy as np

    scores, similarity = np.asarray(scores, dtype=np.float64), queries @ training.T
    if scores.shape != (len(queries),):
        _fail(f"Expected one score per photo, shape ({len(queries)},), got {scores.shape}: "
              "take the maximum of each row (axis=1), one row per photo.")
    if np.allclose(scores, similarity.argmax(axis=1)):
        _fail("These are the positions of the nearest photos (argmax); the score is the "
              "similarity itself (max).")
    if not np.allclose(scores, similarity.max(axis=1), atol=1e-4):
        _fail("Not the largest cosine similarity of each photo: multiply the embeddings "
              "(queries @ training.T), then take each row's maximum.")
    _ok(f"kNN scores of {len(scores)} photos, from {scores.min():.2f} to {scores.max():.2f}.")
