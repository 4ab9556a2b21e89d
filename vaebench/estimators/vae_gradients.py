"""Gradient estimators for a VAE's encoder, on one fixed minibatch.

Every estimator targets the gradient, with respect to the encoder parameters phi,
of the batch-mean beta-VAE objective ``1/M sum_i (E_q[log p(x_i|z)] - beta KL_i)``
(REFERENCE.md §2-3). They differ only in how the expectation term is estimated:

- ``reparam`` (L^B): pathwise through ``z = mu + sigma eps`` from the fused
  ``reparam_kl`` op (Philox noise at ``[offset, offset + L*M*D)`` of ``seed``),
  analytic KL;
- ``reparam_la`` (L^A): the same draws, but ``beta (log p(z) - log q(z|x))`` also
  by Monte Carlo (``log q`` from the very ``eps``: ``sum log N(eps) - logvar/2``);
- ``score``: ``1/L sum_l d/dphi log q(z_l|x) log p(x|z_l)`` on the same draws
  (held fixed), analytic KL, so only the estimator of the expectation differs;
- ``score_baseline``: as ``score`` with ``log p(x|z_l) - b_l``; ``b_l`` is the
  leave-one-out mean over the other L draws of the same image (L >= 2) or, at
  L = 1, over the other images of the batch (independent draws, so unbiased).

The encoder runs once per minibatch; each replicate decodes ``L*M`` latents and
pulls each estimator's gradient with respect to ``(mu, logvar)`` back through
the encoder (a vector-Jacobian product on the retained encoder graph).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaebench.estimators.common import loo_baseline
from vaebench.models import VAE, bernoulli_log_likelihood
from vaebench.ops import philox_normal, reparam_kl

ESTIMATORS = ("score", "score_baseline", "reparam", "reparam_la")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _log_normal(v: torch.Tensor) -> torch.Tensor:
    """``sum_j log N(v_j; 0, 1)`` over the last dimension."""
    return (-0.5 * v.pow(2) - _HALF_LOG_2PI).sum(-1)


def latent_gradients(
    model: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, samples: int, *,
    beta: float, seed: int, offset: int,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, float]]:
    """One replicate. ``mu``, ``logvar`` ``[M, D]`` are leaves requiring grad.

    Returns ``({estimator: (d/dmu, d/dlogvar)}, {"elbo_lb": ..., "elbo_la": ...})``,
    the gradients and ELBO estimates of the batch-mean objective.
    """
    m, d = mu.shape
    L = samples
    mu_r = mu.expand(L, m, d).reshape(L * m, d)
    lv_r = logvar.expand(L, m, d).reshape(L * m, d)
    z, kl = reparam_kl(mu_r, lv_r, seed=seed, offset=offset)
    x_r = x.expand(L, *x.shape).reshape(L * m, *x.shape[1:])
    ll = bernoulli_log_likelihood(model.decode(z), x_r).view(L, m)
    kl = kl.view(L, m)
    eps = philox_normal((L * m, d), seed, offset, device=mu.device).to(mu.dtype)
    log_ratio = (_log_normal(z) - (_log_normal(eps) - 0.5 * lv_r.sum(-1))).view(L, m)  # log p(z) - log q(z|x)

    leaves = (mu, logvar)
    grad = lambda out: torch.autograd.grad(out, leaves, retain_graph=True)  # noqa: E731
    g_ll = grad(ll.mean())  # through the decoder: the only expensive backward
    g_kl = grad(kl.mean())
    g_ratio = grad(log_ratio.mean())

    # score function: z held fixed, d/d(mu, logvar) log q(z | mu, logvar)
    zd = z.detach()
    log_q = (_log_normal((zd - mu_r) * torch.exp(-0.5 * lv_r)) - 0.5 * lv_r.sum(-1)).view(L, m)
    f = ll.detach()
    b = loo_baseline(f, dim=0) if L >= 2 else loo_baseline(f, dim=1)
    g_sf = grad((log_q * f).mean())
    g_sfb = grad((log_q * (f - b)).mean())

    combine = lambda a, s, c: tuple(ai + s * ci for ai, ci in zip(a, c))  # noqa: E731
    grads = {
        "score": combine(g_sf, -beta, g_kl),
        "score_baseline": combine(g_sfb, -beta, g_kl),
        "reparam": combine(g_ll, -beta, g_kl),
        "reparam_la": combine(g_ll, beta, g_ratio),
    }
    values = {
        "elbo_lb": (ll.detach() - beta * kl.detach()).mean().item(),
        "elbo_la": (ll.detach() + beta * log_ratio.detach()).mean().item(),
    }
    return grads, values


@dataclass
class _Moments:
    """Running sum and sum of squares of flat gradients ``[E, P]`` over replicates (float64)."""

    total: torch.Tensor
    squares: torch.Tensor
    count: int = 0

    def add(self, g: torch.Tensor) -> None:
        g = g.double()
        self.total += g
        self.squares.addcmul_(g, g)
        self.count += 1

    def stats(self, index: int) -> dict:
        n = self.count
        mean = self.total[index] / n
        var = (self.squares[index] - n * mean * mean) / (n - 1)  # per coordinate, unbiased
        trace = var.clamp_min(0).sum().item()
        norm2 = mean.pow(2).sum().item()
        return {
            "replicates": n,
            "total_variance": trace,
            "mean_grad_norm": math.sqrt(norm2),
            # ||mean||^2 overestimates ||E g||^2 by trace / n; this removes that
            "mean_grad_norm_debiased": math.sqrt(max(norm2 - trace / n, 0.0)),
            # SNR = ||E g|| / sqrt(trace Cov); the raw one has a floor of ~1/sqrt(n) from noise alone
            "snr": math.sqrt(max(norm2 - trace / n, 0.0) / trace) if trace > 0 else float("inf"),
            "snr_raw": math.sqrt(norm2 / trace) if trace > 0 else float("inf"),
        }


def encoder_gradient_study(
    model: VAE, x: torch.Tensor, samples: int, replicates: int, *, beta: float, seed: int,
    offset: int = 0, progress=None,
) -> tuple[dict[str, dict], list[dict]]:
    """``replicates`` independent draws (Philox offsets advancing by ``L*M*D``) on
    minibatch ``x``: per estimator, the trace of the covariance of the encoder
    gradient, the norm of its mean and the SNR ``||E g|| / sqrt(trace)``; plus the
    per-replicate ELBO estimates (L^A and L^B).
    """
    if samples < 1 or replicates < 2:
        raise ValueError(f"need samples >= 1 and replicates >= 2, got samples={samples}, replicates={replicates}")
    if x.shape[0] < 2 and samples < 2:
        raise ValueError("the L = 1 baseline needs a minibatch of at least 2 images")
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    shape = (len(ESTIMATORS), n_params)
    moments = _Moments(torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64))
    mu_enc, lv_enc = model.encode(x)  # encoder graph, reused by every replicate
    mu, logvar = mu_enc.detach().requires_grad_(), lv_enc.detach().requires_grad_()
    values = []
    stride = samples * mu.numel()
    for r in range(replicates):
        grads, vals = latent_gradients(model, x, mu, logvar, samples, beta=beta, seed=seed, offset=offset + r * stride)
        cotangents = tuple(torch.stack([grads[e][i] for e in ESTIMATORS]) for i in (0, 1))
        # one batched vector-Jacobian product through the encoder for all estimators
        flat = torch.autograd.grad((mu_enc, lv_enc), params, grad_outputs=cotangents, retain_graph=True,
                                   is_grads_batched=True)
        moments.add(torch.cat([g.reshape(len(ESTIMATORS), -1) for g in flat], 1))
        values.append({"replicate": r, **vals})
        if progress is not None:
            progress.update(1)
    return {e: moments.stats(i) for i, e in enumerate(ESTIMATORS)}, values
