"""What does the network look at? First-layer filters, feature maps and Grad-CAM heatmaps.

Read top to bottom: :func:`first_layer_filters`; :func:`feature_maps` after each of the
:func:`stages`, kept with *forward hooks* (functions PyTorch calls with a layer's output);
Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391) written out with hooks,
:func:`grad_cam` at the :func:`target_layer`; the model randomisation test of Adebayo et al.
("Sanity Checks for Saliency Maps", NeurIPS 2018), :func:`sanity_check`: an explanation that
hardly changes when the weights are made random says nothing about what the network learnt,
however plausible it looks; :func:`overlay` (OpenCV). Figures: :mod:`landmarklib.plots`.

**The class score is the logit.** Our networks end with ``nn.LogSoftmax``; Grad-CAM
differentiates the score before it, the logit ``z_c``, as in the paper. The log-probability
``z_c - logsumexp(z)`` would also subtract the gradients of the other classes' logits
(weighted by their probabilities): evidence against the competitors, not for ``c``. A forward
hook on the network's last ``nn.LogSoftmax`` reads its input; a network without one (such as
:func:`landmarklib.backbones.load_lite0_imagenet`) is taken to output logits.

Taught in notebooks/02_cnn_from_scratch.ipynb, 'What does the network look at?'.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from landmarklib.models import LandmarkCNN
from landmarklib.transfer import FineTunedModel, FineTunedTop, TransferModel

__all__ = ["Explanation", "SanityCheck", "explain_predictions", "feature_maps",
           "first_layer_filters", "grad_cam", "overlay", "randomized_copy", "rank_correlation",
           "sanity_check", "stages", "target_layer"]

# ----------------------------------------------------------------------------- filters


def first_layer_filters(model: nn.Module, per_filter: bool = True) -> torch.Tensor:
    """The first convolution's filters as RGB pictures, ready for ``plt.imshow``.

    A first-layer filter has one ``kh x kw`` grid of weights per input colour: a tiny colour
    picture of the pattern that makes its channel respond most. Weights map to [0, 1] around
    mid-grey, ``0.5 + w / (2 * max|w|)``: grey is a zero weight, a colour a positive one.

    Args:
        model: any network; its first ``nn.Conv2d`` with 3 input channels is shown.
        per_filter: scale each filter by its own largest weight (shows every pattern);
            False: by the largest weight of the layer (shows which filters are strong).

    Returns:
        float32 ``(K, kh, kw, 3)`` in [0, 1], on the CPU (e.g. 32 x 3 x 3 x 3). ``ValueError``
        if the model has no convolution on RGB input.
    """
    conv = next((m for m in model.modules()
                 if isinstance(m, nn.Conv2d) and m.in_channels == 3), None)
    if conv is None:
        raise ValueError(f"{type(model).__name__} has no convolution with 3 input channels")
    weights = conv.weight.detach().float().cpu()  # (K, 3, kh, kw)
    dims = (1, 2, 3) if per_filter else (0, 1, 2, 3)
    largest = weights.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12)
    return (0.5 + weights / (2 * largest)).permute(0, 2, 3, 1).contiguous()


# ------------------------------------------------------------------------ feature maps


def _parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """A network's top-level parts (stage lists expanded), in running order, with their names."""
    if isinstance(model, FineTunedModel):
        return ([(f"trunk.{i}", m) for i, m in enumerate(model.trunk)]
                + [(f"members.0.top.{i}", m) for i, m in enumerate(model.members[0].top)])
    if isinstance(model, FineTunedTop):
        return [(f"top.{i}", m) for i, m in enumerate(model.top)]
    prefix = "backbone." if isinstance(model, TransferModel) else ""
    model = model.backbone if prefix else model
    parts = []
    for name, child in model.named_children():
        if name in ("blocks", "features") and isinstance(child, nn.Sequential):
            parts += [(f"{prefix}{name}.{i}", m) for i, m in enumerate(child)]
        else:
            parts.append((prefix + name, child))
    return parts


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers after which :func:`feature_maps` shows the maps, in the order they run:
    ``[(name in model.named_modules(), module), ...]``.

    * :class:`~landmarklib.models.LandmarkCNN`: each conv block (conv, BatchNorm, ReLU),
      before any max-pool: 7 for the default widths. VGG: each conv group after its max-pool.
    * Other networks (EfficientNet-Lite0, ResNet, torchvision's EfficientNet; bare, in a
      :class:`~landmarklib.transfer.TransferModel`, or as the trunk and first member of a
      :class:`~landmarklib.transfer.FineTunedModel`): each top-level part with weights up to
      the global pooling, bare convolutions excepted (their BatchNorm follows). Lite0: the
      stem, its 7 stages and the 1280-channel head.

    ``ValueError`` for a network without global average pooling (none of the above).
    """
    if isinstance(model, LandmarkCNN):
        return [(f"features.{i}", m) for i, m in enumerate(model.features)
                if isinstance(m, nn.Sequential)]
    parts = _parts(model)
    pools = [(name, m) for name, m in parts if isinstance(m, nn.MaxPool2d)]
    kept = []
    for name, module in parts:
        if type(module).__name__ in ("AdaptiveAvgPool2d", "SelectAdaptivePool2d"):
            return pools if len(pools) > 1 else kept  # several max-pools: VGG
        if any(True for _ in module.parameters()) and not isinstance(module, nn.Conv2d):
            kept.append((name, module))
    raise ValueError(f"{type(model).__name__}: no global average pooling, unknown stages")


def feature_maps(model: nn.Module, image: torch.Tensor,
                 layers: list[tuple[str, nn.Module]] | None = None
                 ) -> list[tuple[str, torch.Tensor]]:
    """The feature maps of one photo after each stage, kept with forward hooks.

    Args:
        model: the network (run in eval mode; its mode is restored afterwards).
        image: float32 ``(3, H, W)``, normalised as the model expects.
        layers: ``[(name, module), ...]`` to record; default :func:`stages`.

    Returns:
        ``[(name, maps), ...]`` in running order, maps float32 ``(C, h, w)`` on the CPU.
    """
    layers = stages(model) if layers is None else layers
    outputs: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(  # keeps the output of each layer
        lambda m, inputs, output, name=name: outputs.__setitem__(name, output.detach()[0]))
        for name, module in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(image[None].to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [(name, outputs[name].float().cpu()) for name, _ in layers if name in outputs]


# ---------------------------------------------------------------------------- Grad-CAM


def target_layer(model: nn.Module) -> nn.Module:
    """The layer whose maps Grad-CAM weighs: the last of :func:`stages`, just before the
    global pooling, where the maps still have positions and are closest to the class (the
    paper's choice, the last convolutional layer).

    * :class:`~landmarklib.models.LandmarkCNN`: ``features[-1]``, the last conv block after
      its ReLU, 256 maps of ``H/16 x W/16`` (8 x 8 at 128 px).
    * EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``): ``bn2``, BatchNorm + ReLU6 after
      the 1x1 head convolution, 1280 maps of 7 x 7 at 224 px. torchvision ResNet: ``layer4``.
      EfficientNet-B0: ``features[-1]`` (1280 x 7 x 7). VGG: ``features[-1]``, after the last
      max-pool (512 x 7 x 7, pytorch-grad-cam's choice; the paper took VGG-16's 14 x 14 map
      before it).
    * :class:`~landmarklib.transfer.TransferModel`: its backbone's. A member of a fine-tuned
      model (:class:`~landmarklib.transfer.FineTunedTop`): the last part of its top before the
      pooling (Lite0: ``bn2``). ``TypeError`` for a whole
      :class:`~landmarklib.transfer.FineTunedModel`: it has one per member. ``ValueError``:
      see :func:`stages`.
    """
    if isinstance(model, FineTunedModel):
        raise TypeError("a fine-tuned model has one target layer per member: use "
                        "target_layer(model.members[k])")
    return stages(model)[-1][1]


def _explained_parts(model: nn.Module) -> list[tuple[nn.Module, nn.Module | None]]:
    """``(target layer, last LogSoftmax or None)`` of the model, or of each ensemble member."""
    nets = list(model.members) if isinstance(model, FineTunedModel) else [model]
    return [(target_layer(net), next((m for m in reversed(list(net.modules()))
                                      if isinstance(m, nn.LogSoftmax)), None)) for net in nets]


def _keep_maps_and_gradients(record: dict):
    """A forward hook keeping a layer's output in ``record["activations"]`` and, via a tensor
    hook, its gradient in ``record["gradients"]``. The network goes on from a detached copy
    that requires a gradient, so the backward pass stops there: faster, and a frozen backbone's
    output (which requires none) works too."""
    def hook(module, inputs, output):
        activations = output.detach().requires_grad_(True)
        activations.register_hook(lambda grad: record.__setitem__("gradients", grad))
        record["activations"] = activations
        return activations.clone()  # an in-place operation after the layer must not change A
    return hook


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each ``(h, w)`` map of ``(N, h, w)`` shifted and scaled to [0, 1] (all zeros if flat)."""
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-30), torch.zeros_like(maps))


def _cam(activations: torch.Tensor, gradients: torch.Tensor, size) -> torch.Tensor:
    """Grad-CAM from ``A`` and ``dscore/dA`` ``(N, K, h, w)``: float32 ``(N, *size)`` in [0, 1]."""
    alpha = gradients.mean(dim=(2, 3))                                  # (N, K)
    cam = torch.relu((alpha[:, :, None, None] * activations).sum(dim=1))  # (N, h, w)
    cam = F.interpolate(cam[:, None].float(), size=tuple(size), mode="bilinear",
                        align_corners=False)[:, 0]
    return _scaled(cam)


def _classes(log_probs: torch.Tensor, class_index) -> torch.Tensor:
    """The class to explain for each photo: int64 ``(N,)``."""
    n, n_classes = log_probs.shape
    if class_index is None:
        return log_probs.argmax(dim=1)
    classes = torch.as_tensor(class_index, dtype=torch.long, device=log_probs.device)
    classes = classes.expand(n) if classes.dim() == 0 else classes
    if classes.shape != (n,) or not bool(((classes >= 0) & (classes < n_classes)).all()):
        raise ValueError(f"class_index must be one class or one per photo ({n}), each in "
                         f"0..{n_classes - 1}; got {class_index!r}")
    return classes


@dataclass
class Explanation:
    """Grad-CAM heatmaps, float32 ``(N, H, W)`` in [0, 1]; the class each explains, int64
    ``(N,)``; the model's probability of that class, float32 ``(N,)``. All on the CPU."""

    heatmaps: torch.Tensor
    classes: torch.Tensor
    probabilities: torch.Tensor


def explain_predictions(model: nn.Module, images: torch.Tensor,
                        class_index=None) -> Explanation:
    """:func:`grad_cam`'s heatmaps with the class each explains and its probability.

    A :class:`~landmarklib.transfer.FineTunedModel` averages its members' probabilities; its
    heatmap is likewise the mean of its members' heatmaps (each from the logit of the member's
    own head at its own target layer, scaled to [0, 1] so that each has an equal say), scaled
    to [0, 1] again. The class explained is the ensemble's. Args, raises: see :func:`grad_cam`.
    """
    images = images[None] if images.dim() == 3 else images
    parts = _explained_parts(model)
    records: list[dict] = [{} for _ in parts]
    handles = []
    was_training = model.training
    try:
        model.eval()
        for (layer, log_softmax), record in zip(parts, records):
            handles.append(layer.register_forward_hook(_keep_maps_and_gradients(record)))
            if log_softmax is not None:  # keep its input, the logits
                handles.append(log_softmax.register_forward_hook(
                    lambda module, inputs, output, r=record: r.__setitem__("logits", inputs[0])))
        with torch.inference_mode(False), torch.enable_grad():
            output = model(images.clone())
            log_probs = output if parts[0][1] is not None else output.log_softmax(dim=1)
            classes = _classes(log_probs.detach(), class_index)
            rows = torch.arange(len(images), device=output.device)
            # Photos do not interact in eval mode: the gradient of the sum is each photo's own.
            score = sum(record.get("logits", output)[rows, classes].sum() for record in records)
            # Gradients for the maps only: none accumulate in the model's parameters.
            torch.autograd.backward(score, inputs=[r["activations"] for r in records])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    with torch.no_grad():
        cams = [_cam(r["activations"], r["gradients"], images.shape[-2:]) for r in records]
        heatmaps = _scaled(torch.stack(cams).mean(dim=0))
        probabilities = log_probs.detach().float().exp()[rows, classes]
    return Explanation(heatmaps.cpu(), classes.cpu(), probabilities.cpu())


def grad_cam(model: nn.Module, images: torch.Tensor, class_index=None) -> torch.Tensor:
    """Grad-CAM heatmaps: where in each photo lies the evidence for a class.

    Selvaraju et al., 2017 (arXiv:1610.02391), by hand: forward hooks keep the feature maps
    ``A`` ``(N, K, h, w)`` of :func:`target_layer` and the logits; the backward pass of the
    class's logit ``z_c`` (not its log-probability: see the module's docstring) gives
    ``dz_c/dA``, kept by a tensor hook; ``alpha_k`` is its mean over the ``h x w`` positions,
    and the heatmap is ``ReLU(sum_k alpha_k A_k)``, upsampled bilinearly to ``H x W`` and
    scaled to [0, 1] (all zeros where nothing speaks for the class). Hooks are always removed
    and the model's train/eval mode restored; no gradient is left in its parameters.

    For :class:`~landmarklib.models.LandmarkCNN`, transfer models with any backbone of
    :data:`landmarklib.backbones.BACKBONES`, fine-tuned ensembles (:func:`explain_predictions`).

    Args:
        model: the network (run in eval mode).
        images: float32 ``(N, 3, H, W)`` or ``(3, H, W)``, normalised, on the model's device.
        class_index: the class to explain: ``None`` (each photo's predicted class), one class
            for every photo, or a sequence of ``N`` classes.

    Returns:
        float32 ``(N, H, W)`` in [0, 1], on the CPU. ``ValueError`` for a class out of range
        or of the wrong length, or an unknown architecture.
    """
    return explain_predictions(model, images, class_index).heatmaps


# ---------------------------------------------------------------- randomisation check


def randomized_copy(model: nn.Module, layers: int | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose last ``layers`` layers have fresh random weights.

    Adebayo et al. (2018) randomise a trained network *cascading* from the top (the classifier,
    then one layer more at a time) and check that the explanation changes. A layer here is a
    module holding weights (convolution, BatchNorm, linear), in the order the model registers
    them, the order they run in for this project's networks (ensembles: the last member's head
    first); each gets its ``reset_parameters()`` (PyTorch's default initialisation; BatchNorm
    also forgets its statistics). ``layers=None``: all at once; ``1``: only the classifier.

    Returns the copy in eval mode (``model`` is left as it was, and so is the global random
    state: ``seed`` seeds the new weights). ``ValueError`` if ``layers`` is out of range.
    """
    randomized = copy.deepcopy(model)
    units = [m for m in randomized.modules() if any(True for _ in m.parameters(recurse=False))]
    if layers is not None and not 0 <= layers <= len(units):
        raise ValueError(f"layers must be between 0 and {len(units)}, not {layers}")
    chosen = units if layers is None else units[len(units) - layers:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in chosen:
            module.reset_parameters()
    return randomized.eval()


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based float64 ranks of a 1-D tensor; tied values share their average rank."""
    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    return (counts.cumsum(0).double() - (counts.double() - 1) / 2)[inverse]


def rank_correlation(a, b) -> torch.Tensor:
    """Spearman's rank correlation of heatmaps, map by map: the Pearson correlation of the
    pixels' ranks (ties share their average rank, as in ``scipy.stats.spearmanr``); 1 when
    both order the pixels alike, about 0 when unrelated, whatever their scales.

    ``a``, ``b``: ``(H, W)`` or ``(N, H, W)`` maps (tensors or arrays) of the same shape.
    Returns float64 ``(N,)`` (``()`` for two single maps), NaN where a map is flat.
    """
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    pixels = a.shape[-2] * a.shape[-1]
    result = [torch.corrcoef(torch.stack([_ranks(x), _ranks(y)]))[0, 1]
              for x, y in zip(a.reshape(-1, pixels), b.reshape(-1, pixels))]
    return torch.stack(result).reshape(a.shape[:-2])


@dataclass
class SanityCheck:
    """Heatmaps of the trained network and of its randomised copy, float32 ``(N, H, W)``; their
    rank correlations, float64 ``(N,)``; the classes explained (the same), int64 ``(N,)``."""

    trained: torch.Tensor
    randomized: torch.Tensor
    correlations: torch.Tensor
    classes: torch.Tensor


def sanity_check(model: nn.Module, images: torch.Tensor, layers: int | None = None,
                 class_index=None, seed: int = 0) -> SanityCheck:
    """The model randomisation test (Adebayo et al., 2018): Grad-CAM of the trained network and
    of :func:`randomized_copy` (``layers``, ``seed``) for the same class, and their rank
    correlation. Near 1, the heatmap does not depend on what the network learnt."""
    trained = explain_predictions(model, images, class_index)
    randomized = grad_cam(randomized_copy(model, layers, seed), images, trained.classes)
    return SanityCheck(trained.heatmaps, randomized,
                       rank_correlation(trained.heatmaps, randomized), trained.classes)


# ----------------------------------------------------------------------------- overlay


def overlay(photo, heatmap, alpha: float = 0.45) -> np.ndarray:
    """A heatmap over a photo: OpenCV's "jet" colour map (blue: nothing, red: the strongest
    evidence), blended as ``(1 - alpha) * photo + alpha * colours``. OpenCV is imported here
    only (``opencv-python-headless``, the wheel pytorch-grad-cam needs: two OpenCV wheels in
    one environment overwrite each other's ``cv2``).

    Args:
        photo: RGB PIL image or uint8 array ``(H, W, 3)``, as the network saw it (same crop).
        heatmap: ``(h, w)`` floats in [0, 1] (tensor or array); resized to the photo if needed.
        alpha: weight of the colours.

    Returns:
        uint8 ``(H, W, 3)`` RGB array (``PIL.Image.fromarray`` makes it an image).
    """
    import cv2

    pixels = np.ascontiguousarray(np.asarray(photo.convert("RGB") if hasattr(photo, "convert")
                                             else photo, dtype=np.uint8))
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != pixels.shape[:2]:
        heat = cv2.resize(heat, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = np.uint8(np.round(255 * np.clip(heat, 0, 1)))
    colours = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(colours, alpha, pixels, 1 - alpha, 0)
