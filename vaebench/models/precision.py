"""What makes a model's arithmetic fast on a CPU (and a GPU): the precision and the memory
format of the model and its inputs (training, evaluation and scoring share these).

- Precision: ``"bf16"`` runs the model's matrix products and convolutions under bfloat16
  autocast (float32 weights, optimiser state and loss terms; the encoder's outputs and the
  decoder's logits are widened to float32 before the KL and the BCE). On a CPU with
  AVX512-BF16 or AMX this halves a conv training step; on one without, oneDNN emulates
  bfloat16 slowly, so ``"auto"`` picks it only where the hardware has it.
- Memory format: channels_last for the conv model, the layout oneDNN's CPU convolutions and
  the GPU's tensor cores prefer (no-op for fully connected models).
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """True where bfloat16 matrix arithmetic runs natively: a GPU that supports it, or a CPU
    with AVX512-BF16 / AMX (what oneDNN checks)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``"fp32"`` or ``"bf16"`` for a requested ``precision`` in ``PRECISIONS``: ``"auto"`` is bf16
    where ``bf16_supported(device)``, else fp32; an explicit ``"bf16"`` where it is not supported
    raises, since emulated bfloat16 would be both slower and not what was asked for."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"precision='bf16' needs native bfloat16 on device {device} (a CPU with AVX512-BF16 or "
                         "AMX, or a GPU that supports it); this one has none: use precision='fp32' or 'auto'")
    return precision


def autocast(precision: str, device: str | torch.device = "cpu"):
    """The autocast context for a resolved precision (a no-op context for ``"fp32"``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"autocast: precision must be resolved to 'fp32' or 'bf16', got {precision!r}")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def use_exact_fp32(precision: str, device: str | torch.device = "cpu") -> None:
    """On a GPU, makes a resolved ``"fp32"`` mean float32 math: cuDNN convolutions default to
    TF32 (10-bit mantissa), which would blur the fp32 side of a bf16-vs-fp32 comparison. Process-wide,
    as torch's switches are; a no-op on the CPU and for bf16."""
    if precision == "fp32" and torch.device(device).type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def prepare_model(model: torch.nn.Module, arch: str, channels_last: bool) -> torch.nn.Module:
    """Puts a conv model in channels_last memory format when asked (weights keep their values)."""
    if channels_last and arch == "conv":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, arch: str, channels_last: bool) -> torch.Tensor:
    if channels_last and arch == "conv":
        return x.contiguous(memory_format=torch.channels_last)
    return x
