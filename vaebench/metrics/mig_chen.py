"""MIG as Chen et al. compute it (beta-TCVAE, "Isolating Sources of Disentanglement in VAEs", 2018).

Unlike disentanglement_lib's MIG (``vaebench.metrics.mig``: binned posterior means, plug-in
histogram MI), this estimator works with the encoder's full posteriors ``q(z | x_n) =
N(mu_n, diag exp(logvar_n))`` over every image ``x_n`` of a full factor grid:

- one code is drawn per image, ``z_n ~ q(z | x_n)``;
- ``H(z_j) = -E[log q(z_j)]`` with ``q(z_j) = 1/N sum_n q(z_j | x_n)``, the expectation a Monte
  Carlo mean over ``samples`` of the N codes drawn without replacement (all of them if fewer);
- ``H(z_j | v_k) = sum_v p(v) H(z_j | v_k = v)``, each term the same estimate restricted to the
  images with ``v_k = v`` (their codes, and the mixture of their posteriors only);
- ``I(z_j; v_k) = H(z_j) - H(z_j | v_k)``, sorted over j, clamped at 0 and divided by
  ``log |V_k|`` (the entropy of a uniform factor on a full grid);
- MIG is the mean over factors of the gap between the two largest normalised MIs.

Chen et al. leave dSprites' shape out (pass ``leave_out=(0,)`` for the project's dSprites factor
columns). Every ``log q(z_j)`` is the ``marginal`` output of the fused
``gaussian_logdensity_lse`` op, which never forms the [samples, N, D] terms (about 10^11 of them
for dSprites at 10,000 samples).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vaebench.ops import gaussian_logdensity_lse


@dataclass(frozen=True)
class ChenMIGResult:
    score: float  # mean over the factors used of the gaps
    gaps: np.ndarray  # [K'] per factor used
    normalized_mi: np.ndarray  # [K', D] I(z_j; v_k) / log |V_k|, clamped at 0 (unsorted)
    marginal_entropies: np.ndarray  # [D] H(z_j), nats
    conditional_entropies: np.ndarray  # [K', D] H(z_j | v_k), nats
    factors: tuple  # the factor columns used


def _as_tensor(name: str, a, dtype=None) -> torch.Tensor:
    t = a.detach() if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    if t.dim() != 2:
        raise ValueError(f"mig_chen: {name} must be 2-D, got shape {tuple(t.shape)}")
    return t.cpu() if dtype is None else t.cpu().to(dtype)


def draw_codes(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One code per image, z_n = mu_n + exp(logvar_n / 2) * eps_n (float64 noise, in mu's dtype)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float64)
    return (mu.double() + torch.exp(0.5 * logvar.double()) * eps).to(mu.dtype)


def _entropy(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, samples: int, generator: torch.Generator,
             chunk: int) -> np.ndarray:
    """Monte Carlo H(z_j) [D] of the mixture of the rows' posteriors, from their own codes z."""
    n = mu.shape[0]
    idx = torch.randperm(n, generator=generator)[:samples] if samples < n else torch.arange(n)
    total = torch.zeros(mu.shape[1], dtype=torch.float64)
    for s in range(0, len(idx), chunk):
        _, marg = gaussian_logdensity_lse(z[idx[s:s + chunk]], mu, logvar)
        total += marg.double().sum(0)
    return (-(total / len(idx)) + math.log(n)).numpy()


def mig_chen(mu, logvar, factors, *, samples: int = 10_000, seed: int = 0, leave_out: Sequence[int] = (),
             codes=None, chunk: int = 4096) -> ChenMIGResult:
    """Chen et al.'s MIG (module doc) from the posteriors ``mu, logvar [N, D]`` of every image of a
    full grid with class ids ``factors [N, K]``. ``samples``: codes per entropy estimate; ``seed``:
    the codes (unless ``codes [N, D]`` are given: one per image) and the subsets drawn;
    ``leave_out``: factor columns not scored."""
    mu = _as_tensor("mu", mu)
    logvar = _as_tensor("logvar", logvar, mu.dtype)
    fac = _as_tensor("factors", factors, torch.int64)
    if not mu.is_floating_point():
        raise TypeError(f"mig_chen: mu must be floating, got {mu.dtype}")
    if logvar.shape != mu.shape or fac.shape[0] != mu.shape[0]:
        raise ValueError(f"mig_chen: mu {tuple(mu.shape)}, logvar {tuple(logvar.shape)} and factors "
                         f"{tuple(fac.shape)} must share N (and mu and logvar their shape)")
    if samples < 1:
        raise ValueError(f"mig_chen: samples must be >= 1, got {samples}")
    used = tuple(k for k in range(fac.shape[1]) if k not in set(leave_out))
    if not used:
        raise ValueError("mig_chen: no factor left to score")
    mu, logvar = mu.contiguous(), logvar.contiguous()
    g = torch.Generator().manual_seed(int(seed))
    z = draw_codes(mu, logvar, g)  # drawn even when codes are given: the subsets stay the same
    if codes is not None:
        z = _as_tensor("codes", codes, mu.dtype).contiguous()
        if z.shape != mu.shape:
            raise ValueError(f"mig_chen: codes must have mu's shape {tuple(mu.shape)}, got {tuple(z.shape)}")
    h = _entropy(z, mu, logvar, samples, g, chunk)
    n, d = mu.shape
    cond = np.zeros((len(used), d))
    norm_mi = np.zeros((len(used), d))
    gaps = np.zeros(len(used))
    for r, k in enumerate(used):
        values, counts = torch.unique(fac[:, k], return_counts=True)
        if len(values) < 2:
            raise ValueError(f"mig_chen: factor {k} takes a single value: its MI is undefined")
        for v, c in zip(values.tolist(), counts.tolist()):
            rows = torch.nonzero(fac[:, k] == v).squeeze(1)
            cond[r] += (c / n) * _entropy(z[rows], mu[rows], logvar[rows], samples, g, chunk)
        mi = np.clip(h - cond[r], 0.0, None) / math.log(len(values))
        norm_mi[r] = mi
        top = np.sort(mi)[::-1]
        gaps[r] = top[0] - (top[1] if d > 1 else 0.0)
    return ChenMIGResult(float(gaps.mean()), gaps, norm_mi, h, cond, used)
