"""Draft: the check cell of notebook 02's Grad-CAM exercise (to move into the students package).

The exercise: given the target layer's feature maps ``activations`` ``(N, K, h, w)`` and the
gradient of the class's logit with respect to them, ``gradients`` (same shape), both kept by
hooks, compute the Grad-CAM map::

    alpha = gradients.mean(dim=(2, 3))                                  # (N, K)
    cam = torch.relu((alpha[:, :, None, None] * activations).sum(dim=1))  # (N, h, w)

:func:`check_gradcam` prints a line starting with ✓ when ``cam`` is right, and otherwise raises
:class:`~landmarklib.students.ExerciseError` saying in plain words what went wrong.
"""

from __future__ import annotations

from landmarklib.students import _fail, _ok


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
