"""Pieces shared by every estimator study: baselines and replicate summaries.

A score-function estimator ``1/K sum_k h_k (f_k - b_k)`` stays unbiased for any
baseline ``b_k`` independent of draw ``k`` (because ``E[h] = 0``). We use two:

- leave-one-out (K >= 2): ``b_k`` = mean of ``f`` over the other ``K - 1`` draws;
- a running mean (K = 1): an exponential moving average of ``f`` over previous
  steps. At fixed parameters its stationary law is that of an EMA-weighted
  average of independent draws, which is how the fixed-parameter studies emulate it.
"""
from __future__ import annotations

import hashlib
import math

import torch


def loo_baseline(f: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``b_k = (sum_j f_j - f_k) / (K - 1)`` along ``dim``; needs ``K >= 2``."""
    k = f.shape[dim]
    if k < 2:
        raise ValueError(f"loo_baseline needs at least 2 draws along dim {dim}, got {k}")
    return (f.sum(dim, keepdim=True) - f) / (k - 1)


def ema_weights(decay: float, horizon: int, dtype=torch.float64) -> torch.Tensor:
    """Weights ``(1 - d) d^j``, j < horizon, renormalised to sum 1: a running mean
    with decay ``d`` truncated after ``horizon`` past steps."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    w = (1 - decay) * decay ** torch.arange(horizon, dtype=dtype)
    return w / w.sum()


def summarize(estimates: torch.Tensor, exact: float | None = None) -> dict:
    """Mean, variance, standard error and (if ``exact`` is given) bias and its
    z-score of ``R`` replicate estimates of a scalar."""
    e = estimates.detach().double().flatten()
    r = e.numel()
    if r < 2:
        raise ValueError(f"summarize needs at least 2 replicate estimates, got {r}")
    mean, var = e.mean().item(), e.var().item()
    se = math.sqrt(var / r)
    out = {"replicates": r, "mean": mean, "var": var, "se": se}
    if exact is not None:
        out.update(exact=exact, bias=mean - exact, bias_z=(mean - exact) / se if se > 0 else float("nan"))
    return out


def unit_seed(seed: int, *salt) -> int:
    """A 63-bit seed from ``seed`` and a few values naming a unit of work, so each
    unit's draws are the same however the run is resumed or ordered."""
    digest = hashlib.sha256(repr((int(seed),) + salt).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *salt) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``unit_seed(seed, *salt)``."""
    g = torch.Generator()
    g.manual_seed(unit_seed(seed, *salt))
    return g
