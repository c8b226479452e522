"""Where the networks run and in which number format: the device and the precision.

**Device.** :func:`pick_device`: CUDA if PyTorch sees a GPU, else Apple's MPS, else the CPU.

**Precision.** Every training and feature-extraction function takes a ``precision``:

* ``"float32"``: plain 32-bit floats everywhere. The same code gives the same numbers, up to
  floating-point rounding, on every processor.
* ``"bfloat16"``: matrix products and convolutions run in bfloat16 under
  :func:`torch.autocast` (8 bits of mantissa, float32's range: no loss scaling needed), while
  the weights and the optimiser stay float32 ("mixed precision", Micikevicius et al., 2018,
  "Mixed Precision Training", with bfloat16 as in Kalamkar et al., 2019). On a CPU without
  native bfloat16 instructions it is emulated: correct, but slower.
* ``"auto"``: bfloat16 where the hardware computes it natively (a CUDA GPU that supports it,
  or a CPU with AVX-512 BF16 or AMX), float16 with loss scaling on older CUDA GPUs, float32
  elsewhere.

``None`` means the default: ``$LANDMARKLIB_PRECISION`` when set (the tests use it to run the
whole suite in one precision), else :data:`DEFAULT_PRECISION`. :func:`resolve_precision` turns
a setting into the format actually used (``"float32"``, ``"bfloat16"`` or ``"float16"``),
which the recipes record in the model file and in the run's metrics. Why the default is what
it is: ``benchmarks/README.md``, "Precision".

torch is imported by the functions that need it, not by this module, so that the command line
can offer the settings without importing torch.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["PRECISIONS", "DEFAULT_PRECISION", "PRECISION_ENV", "pick_device",
           "native_bfloat16", "resolve_precision", "autocast", "grad_scaler"]

#: The settings a ``precision`` argument accepts.
PRECISIONS = ("float32", "bfloat16", "auto")

#: The precision used when none is given and ``$LANDMARKLIB_PRECISION`` is not set.
DEFAULT_PRECISION = "auto"

#: Environment variable that sets the default precision (``float32``, ``bfloat16`` or ``auto``).
PRECISION_ENV = "LANDMARKLIB_PRECISION"


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``prefer`` if given, else CUDA, else Apple's MPS, else the CPU.

    Args:
        prefer: a device such as ``"cpu"``, ``"cuda:1"`` or ``torch.device("mps")``.

    Returns:
        A :class:`torch.device`.

    Raises:
        RuntimeError: ``prefer`` names a CUDA or MPS device that this machine does not have.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Training'.
    """
    import torch

    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"asked for {device}, but PyTorch sees no CUDA GPU here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"asked for {device}, but Apple's MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bfloat16(device: torch.device | str) -> bool:
    """True where bfloat16 is computed natively, so faster than float32: a CUDA GPU that
    supports it, or a CPU that oneDNN reports as having AVX-512 BF16 or AMX."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str | None, device: torch.device | str = "cpu") -> str:
    """The number format a ``precision`` setting means on ``device``.

    Args:
        precision: ``"float32"``, ``"bfloat16"``, ``"auto"`` or ``None`` (the default: see
            the module's documentation).
        device: where the network runs.

    Returns:
        ``"float32"``, ``"bfloat16"`` or ``"float16"`` (only ``"auto"`` on a CUDA GPU without
        bfloat16 gives float16).

    Raises:
        ValueError: a setting (or ``$LANDMARKLIB_PRECISION``) that is not one of
            :data:`PRECISIONS`.
    """
    if precision is None:
        precision = os.environ.get(PRECISION_ENV, "").strip().lower() or DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"
                         f" (check ${PRECISION_ENV} too)")
    if precision != "auto":
        return precision
    import torch

    device = torch.device(device)
    if native_bfloat16(device):
        return "bfloat16"
    return "float16" if device.type == "cuda" else "float32"


def autocast(device: torch.device | str, precision: str):
    """The context to run a forward pass in: :func:`torch.autocast` to the resolved
    ``precision`` (``"bfloat16"`` or ``"float16"``), or nothing at all for ``"float32"``."""
    import torch

    if precision == "float32":
        return contextlib.nullcontext()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[precision]
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for float16 training on CUDA (float16 gradients would underflow to 0
    without scaling); ``None`` for every other case (bfloat16 has float32's range)."""
    import torch

    if precision == "float16" and torch.device(device).type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
