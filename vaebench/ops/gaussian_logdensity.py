"""Pairwise Gaussian log-densities with log-sum-exp over the mixture, as a torch custom op.

``gaussian_logdensity_lse(z, mu, logvar)`` evaluates every code ``z[j]`` (``[B, D]``) under every
diagonal Gaussian ``N(mu[i], diag exp(logvar[i]))`` (``[M, D]``) and reduces over the components
``i`` with a log-sum-exp, without forming the ``[B, M, D]`` tensor of terms:

- ``joint[j] = logsumexp_i sum_d log N(z[j, d]; mu[i, d], exp(logvar[i, d]))`` (``[B]``),
- ``marginal[j, d] = logsumexp_i log N(z[j, d]; mu[i, d], exp(logvar[i, d]))`` (``[B, D]``).

Each ``log N`` is a true log-density: it includes the Gaussian's ``-log(2 pi) / 2`` per dimension
(so ``joint`` includes ``-D log(2 pi) / 2``). The mixture gets no normalising constant: for
``log q(z) = log (1/M) sum_i q(z | x_i)`` subtract ``log M`` (``log(N M)`` for beta-TCVAE's
minibatch-weighted estimator) yourself. That is what beta-TCVAE's total correlation, the VampPrior
and Chen et al.'s MIG need.

The kernels stream over the components in tiles with an online log-sum-exp; backward saves only
the inputs and the two outputs and recomputes the softmax weights ``exp(term - output)`` from them.
float32, bfloat16 and float16 inputs are accumulated in float32, float64 in float64.
"""
from __future__ import annotations

import math

import torch

from vaebench._extension import load_extension

load_extension()

_OP = "gaussian_logdensity_lse"


def _check_inputs(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    for name, t, rows in (("z", z, "B"), ("mu", mu, "M"), ("logvar", logvar, "M")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{_OP}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{_OP}: {name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"{_OP}: {name} must be 2-D [{rows}, D], got shape {tuple(t.shape)}")
    if logvar.shape != mu.shape:
        raise ValueError(f"{_OP}: logvar must have mu's shape {tuple(mu.shape)}, got {tuple(logvar.shape)}")
    if mu.shape[1] != z.shape[1]:
        raise ValueError(f"{_OP}: mu must have z's D = {z.shape[1]} columns, got shape {tuple(mu.shape)}")
    for name, t in (("mu", mu), ("logvar", logvar)):
        if t.dtype != z.dtype:
            raise TypeError(f"{_OP}: {name} must have z's dtype {z.dtype}, got {t.dtype}")
        if t.device != z.device:
            raise ValueError(f"{_OP}: {name} must be on z's device {z.device}, got {t.device}")


def gaussian_logdensity_lse(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(joint [B], marginal [B, D])`` of codes ``z [B, D]`` under the Gaussians ``mu, logvar [M, D]``
    (see the module doc: Gaussian constants included, none for the mixture). Differentiable in all
    three inputs; outputs have z's dtype."""
    _check_inputs(z, mu, logvar)
    return torch.ops.vaebench.gaussian_logdensity_lse(z, mu, logvar)


def gaussian_logdensity_lse_eager(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch reference with the same signature: forms the ``[B, M, D]`` terms."""
    diff = z[:, None, :] - mu[None]
    logp = -0.5 * (math.log(2 * math.pi) + logvar[None] + diff.pow(2) * torch.exp(-logvar[None]))
    return torch.logsumexp(logp.sum(-1), dim=1), torch.logsumexp(logp, dim=1)


# ---- torch.library registration: shapes for tracing, and autograd -----------


@torch.library.register_fake("vaebench::gaussian_logdensity_lse")
def _fake(z, mu, logvar):
    return z.new_empty(z.shape[:1]), z.new_empty(z.shape)


@torch.library.register_fake("vaebench::gaussian_logdensity_lse_backward")
def _backward_fake(grad_joint, grad_marginal, z, mu, logvar, joint, marginal):
    return torch.empty_like(z), torch.empty_like(mu), torch.empty_like(logvar)


def _setup_context(ctx, inputs, output):
    z, mu, logvar = inputs
    joint, marginal = output
    ctx.save_for_backward(z, mu, logvar, joint, marginal)


def _backward(ctx, grad_joint, grad_marginal):
    z, mu, logvar, joint, marginal = ctx.saved_tensors
    if grad_joint is None:
        grad_joint = joint.new_zeros(joint.shape)
    if grad_marginal is None:
        grad_marginal = marginal.new_zeros(marginal.shape)
    gz, gmu, glv = torch.ops.vaebench.gaussian_logdensity_lse_backward(
        grad_joint.contiguous(), grad_marginal.contiguous(), z, mu, logvar, joint, marginal
    )
    return gz, gmu, glv


torch.library.register_autograd("vaebench::gaussian_logdensity_lse", _backward, setup_context=_setup_context)
