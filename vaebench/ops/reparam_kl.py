"""The fused reparameterized sample + analytic Gaussian KL, as a torch custom op.

``reparam_kl(mu, logvar)`` returns ``z = mu + exp(logvar / 2) * eps`` and the
per-row ``KL(N(mu, diag exp(logvar)) || N(0, I))`` in one pass. ``eps`` is never
materialised: it is the Philox4x32-10 normal stream at positions
``[offset, offset + B * D)`` (row-major) of ``seed``, regenerated in backward.
"""
from __future__ import annotations

import torch

from vaebench._extension import load_extension

load_extension()

_INT64_MAX = 2**63 - 1


def _check_inputs(mu: torch.Tensor, logvar: torch.Tensor, op: str = "reparam_kl") -> None:
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"{op}: {name} must be 2-D [B, D], got shape {tuple(t.shape)}")
    if mu.shape != logvar.shape:
        raise ValueError(f"{op}: mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    if mu.dtype != logvar.dtype:
        raise TypeError(f"{op}: mu and logvar must have the same dtype, got {mu.dtype} and {logvar.dtype}")
    if mu.device != logvar.device:
        raise ValueError(f"{op}: mu and logvar must be on the same device, got {mu.device} and {logvar.device}")


def _check_stream(seed: int, offset: int) -> None:
    if not -(2**63) <= int(seed) <= _INT64_MAX:
        raise ValueError(f"seed must fit in int64, got {seed}")
    if int(offset) < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 63-bit seed from ``generator`` (torch's default CPU generator if None),
    so that ``torch.manual_seed`` makes the fused op repeatable."""
    return int(torch.randint(0, _INT64_MAX, (), generator=generator, dtype=torch.int64))


def reparam_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    seed: int | None = None,
    offset: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``z = mu + exp(logvar/2) * eps`` and ``kl[b]`` (see module doc).

    Args:
        mu, logvar: ``[B, D]`` floating tensors of one dtype on one device.
        seed: Philox key; drawn from ``generator`` (default: torch's) when None.
        offset: normals of the seed's stream already used; this call uses
            positions ``[offset, offset + B*D)``.
    Returns:
        ``z`` ``[B, D]`` and ``kl`` ``[B]``, both of mu's dtype (accumulated in
        float32, or float64 for float64 inputs).
    """
    _check_inputs(mu, logvar)
    if seed is None:
        seed = draw_seed(generator)
    _check_stream(seed, offset)
    return torch.ops.vaebench.reparam_kl(mu, logvar, int(seed), int(offset))


def philox_normal(
    shape: int | tuple[int, ...] | torch.Size,
    seed: int,
    offset: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The float32 normals of ``seed``'s stream at positions ``[offset, offset + numel)``,
    row-major in ``shape``: exactly the ``eps`` that ``reparam_kl`` uses."""
    _check_stream(seed, offset)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    out = torch.empty(shape, dtype=torch.float32, device=device)
    torch.ops.vaebench.philox_normal_(out, int(seed), int(offset))
    return out


def reparam_kl_eager(
    mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch reference: the same formulas given an explicit ``eps``."""
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps
    return z, kl_normal(mu, logvar)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, in plain PyTorch (the op's closed form)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


# ---- torch.library registration: shapes for tracing, and autograd -----------


@torch.library.register_fake("vaebench::reparam_kl")
def _reparam_kl_fake(mu, logvar, seed, offset):
    return torch.empty_like(mu), mu.new_empty(mu.shape[:1])


@torch.library.register_fake("vaebench::reparam_kl_backward")
def _reparam_kl_backward_fake(grad_z, grad_kl, mu, logvar, seed, offset):
    return torch.empty_like(mu), torch.empty_like(mu)


def _setup_context(ctx, inputs, output):
    mu, logvar, seed, offset = inputs
    ctx.save_for_backward(mu, logvar)
    ctx.seed, ctx.offset = seed, offset


def _backward(ctx, grad_z, grad_kl):
    mu, logvar = ctx.saved_tensors
    if grad_z is None:
        grad_z = torch.zeros_like(mu)
    if grad_kl is None:
        grad_kl = mu.new_zeros(mu.shape[:1])
    dmu, dlogvar = torch.ops.vaebench.reparam_kl_backward(
        grad_z.contiguous(), grad_kl.contiguous(), mu, logvar, ctx.seed, ctx.offset
    )
    return dmu, dlogvar, None, None


torch.library.register_autograd("vaebench::reparam_kl", _backward, setup_context=_setup_context)
