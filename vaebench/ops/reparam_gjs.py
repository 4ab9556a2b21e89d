"""The fused reparameterized sample + skew-geometric Jensen-Shannon divergence, as a torch custom op.

``reparam_gjs(mu, logvar, alpha)`` returns reparam_kl's sample ``z = mu + exp(logvar / 2) * eps``
(the same bits for the same seed and offset) and, per row, the skew-geometric Jensen-Shannon
divergence of Deasy et al. (2020) between ``q = N(mu, diag exp(logvar))`` and the prior
``p = N(0, I)``, summed over dimensions::

    M_a  proportional to q^a p^(1-a)      (a Gaussian: precision a / v + 1 - a)
    GJS  = (1 - a) KL(q || M_a) + a KL(p || M_a)        (dual=False)
    dual = (1 - a) KL(M_a || q) + a KL(M_a || p)        (dual=True)

in closed form (derivation, limits and gradients: ``docs/gjs.md``). At ``a = 0`` GJS is
``KL(q || p)``, reparam_kl's ``kl`` (the same bits on the same device), and the dual is
``KL(p || q)``; at ``a = 1`` they swap: GJS is ``KL(p || q)``, the dual ``KL(q || p)``.
"""
from __future__ import annotations

import numbers

import torch

from vaebench.ops.reparam_kl import _check_inputs, _check_stream, draw_seed


def _alpha_tensor(alpha: torch.Tensor | float, mu: torch.Tensor) -> torch.Tensor:
    """``alpha`` checked (a float becomes a 0-dim tensor of mu's accumulation dtype). A tensor's
    value is checked by the op itself, so that this stays traceable by torch.compile."""
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        a = float(alpha)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"reparam_gjs: alpha must be in [0, 1], got {a}")
        return torch.tensor(a, dtype=torch.float64 if mu.dtype == torch.float64 else torch.float32, device=mu.device)
    if not isinstance(alpha, torch.Tensor):
        raise TypeError(f"reparam_gjs: alpha must be a 0-dim tensor or a float, got {type(alpha).__name__}")
    if alpha.dim() != 0:
        raise ValueError(f"reparam_gjs: alpha must be a 0-dim (scalar) tensor, got shape {tuple(alpha.shape)}")
    if not alpha.is_floating_point():
        raise TypeError(f"reparam_gjs: alpha must be a floating-point tensor, got dtype {alpha.dtype}")
    if alpha.device != mu.device:
        raise ValueError(f"reparam_gjs: alpha must be on mu's device {mu.device}, got {alpha.device}")
    return alpha


def reparam_gjs(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    alpha: torch.Tensor | float,
    *,
    dual: bool = False,
    seed: int | None = None,
    offset: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``z = mu + exp(logvar/2) * eps`` and ``div[b]`` (see module doc).

    Args:
        mu, logvar, seed, offset, generator: as for ``reparam_kl`` (the same noise).
        alpha: the skew, a 0-dim floating tensor on mu's device (gradients flow to it) or a
            float, in ``[0, 1]`` (the ends are the two KL divergences; outside, or NaN, raises
            ValueError). On CUDA the check reads the value back to the host.
        dual: the dual divergence (KLs from ``M_a``) instead of the plain one (KLs to it).
    Returns:
        ``z`` ``[B, D]`` and ``div`` ``[B]``, both of mu's dtype (accumulated in float32, or
        float64 for float64 inputs). Backward gives ``mu``, ``logvar`` and ``alpha`` their
        gradients (alpha's: a sum over every element, in float64, returned in alpha's dtype).
    """
    _check_inputs(mu, logvar, "reparam_gjs")
    alpha = _alpha_tensor(alpha, mu)
    if seed is None:
        seed = draw_seed(generator)
    _check_stream(seed, offset)
    return torch.ops.vaebench.reparam_gjs(mu, logvar, alpha, bool(dual), int(seed), int(offset))


def _gaussian_kl(m1, v1, logv1, m2, v2, logv2):
    """KL(N(m1, v1) || N(m2, v2)), elementwise, given the log-variances too."""
    return 0.5 * (v1 / v2 + (m1 - m2) ** 2 / v2 - 1 + logv2 - logv1)


def reparam_gjs_eager(
    mu: torch.Tensor, logvar: torch.Tensor, alpha: torch.Tensor | float, eps: torch.Tensor, dual: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch reference (any float dtype, float64 included): the textbook route, M_a's
    mean and variance then the two Gaussian KLs, given an explicit ``eps``; autograd gives its
    gradients."""
    z = mu + torch.exp(0.5 * logvar) * eps
    v = logvar.exp()
    precision = alpha / v + (1 - alpha)
    var_m = 1 / precision
    mean_m = alpha * mu / v * var_m
    logvar_m = -torch.log(precision)
    zero, one = torch.zeros_like(mu), torch.ones_like(mu)
    if dual:
        div = (1 - alpha) * _gaussian_kl(mean_m, var_m, logvar_m, mu, v, logvar) + alpha * _gaussian_kl(
            mean_m, var_m, logvar_m, zero, one, zero)
    else:
        div = (1 - alpha) * _gaussian_kl(mu, v, logvar, mean_m, var_m, logvar_m) + alpha * _gaussian_kl(
            zero, one, zero, mean_m, var_m, logvar_m)
    return z, div.sum(-1)


# ---- torch.library registration: shapes for tracing, and autograd -----------


@torch.library.register_fake("vaebench::reparam_gjs")
def _reparam_gjs_fake(mu, logvar, alpha, dual, seed, offset):
    return torch.empty_like(mu), mu.new_empty(mu.shape[:1])


@torch.library.register_fake("vaebench::reparam_gjs_backward")
def _reparam_gjs_backward_fake(grad_z, grad_div, mu, logvar, alpha, dual, seed, offset):
    return torch.empty_like(mu), torch.empty_like(mu), torch.empty_like(alpha)


def _setup_context(ctx, inputs, output):
    mu, logvar, alpha, dual, seed, offset = inputs
    ctx.save_for_backward(mu, logvar, alpha)
    ctx.dual, ctx.seed, ctx.offset = dual, seed, offset


def _backward(ctx, grad_z, grad_div):
    mu, logvar, alpha = ctx.saved_tensors
    if grad_z is None:
        grad_z = torch.zeros_like(mu)
    if grad_div is None:
        grad_div = mu.new_zeros(mu.shape[:1])
    dmu, dlogvar, dalpha = torch.ops.vaebench.reparam_gjs_backward(
        grad_z.contiguous(), grad_div.contiguous(), mu, logvar, alpha, ctx.dual, ctx.seed, ctx.offset
    )
    return dmu, dlogvar, dalpha, None, None, None


torch.library.register_autograd("vaebench::reparam_gjs", _backward, setup_context=_setup_context)
