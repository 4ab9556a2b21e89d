"""Gradients of ``E_{N(mu, sigma^2)}[f(z)]`` with respect to ``(mu, sigma)`` for the
three test functions of Mohamed et al. (JMLR 2020, §3 / fig. 2):
``(z - k)^2``, ``exp(-k z^2)`` and ``cos(k z)``.

All three expectations have closed forms, so the exact gradient is autograd of a
Monte Carlo-free expression, and the exact single-draw variance of the plain
score-function and pathwise estimators is a one-dimensional Gaussian integral,
computed here by Gauss-Hermite quadrature (that of the coupled measure-valued
estimator, a two-dimensional one, by ``gaussian_exact``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vaebench.estimators import gaussian_exact, measure_valued
from vaebench.estimators.common import ema_weights, loo_baseline
from vaebench.estimators.gaussian_costs import FUNCTIONS, f

ESTIMATORS = ("score", "score_baseline", "reparam", "measure_valued")
PARAMS = ("mu", "sigma")


def expectation(name: str, mu, sigma, k: float):
    """Closed-form ``E[f(z)]``, ``z ~ N(mu, sigma^2)`` (differentiable in mu, sigma)."""
    mu, sigma = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
    if name == "square":
        return (mu - k) ** 2 + sigma**2
    if name == "gauss":
        s = 1 + 2 * k * sigma**2
        return torch.exp(-k * mu**2 / s) / torch.sqrt(s)
    if name == "cos":
        return torch.cos(k * mu) * torch.exp(-0.5 * (k * sigma) ** 2)
    raise ValueError(f"function must be one of {FUNCTIONS}, got {name!r}")


def exact_grad(name: str, mu: float, sigma: float, k: float) -> tuple[float, float]:
    """``(d/dmu, d/dsigma)`` of the closed-form expectation, by autograd."""
    _check_sigma(sigma)
    m = torch.tensor(float(mu), dtype=torch.float64, requires_grad=True)
    s = torch.tensor(float(sigma), dtype=torch.float64, requires_grad=True)
    gm, gs = torch.autograd.grad(expectation(name, m, s, k), (m, s))
    return gm.item(), gs.item()


def _check_sigma(sigma) -> None:
    if not float(sigma) > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")


# ---- Monte Carlo estimators (each returns [R, 2]: d/dmu, d/dsigma) --------------


def _score(mu, sigma, eps):
    """``d/d(mu, sigma) log N(z; mu, sigma)`` at ``z = mu + sigma eps``: ``(eps/sigma, (eps^2 - 1)/sigma)``."""
    return torch.stack([eps / sigma, (eps**2 - 1) / sigma], -1)


def score_function(name, mu, sigma, k, eps, baseline=None) -> torch.Tensor:
    """``1/K sum_k score_k (f_k - b_k)``; ``eps`` ``[R, K]``; baseline None, "loo" or ``[R]``."""
    fz = f(name, mu + sigma * eps, k)
    if baseline is None:
        b = 0.0
    elif isinstance(baseline, str) and baseline == "loo":
        b = loo_baseline(fz)
    else:
        b = torch.as_tensor(baseline, dtype=fz.dtype).reshape(-1, 1)
    return (_score(mu, sigma, eps) * (fz - b)[..., None]).mean(1)


def reparameterization(name, mu, sigma, k, eps) -> torch.Tensor:
    """``1/K sum_k d/d(mu, sigma) f(mu + sigma eps_k)`` by autograd, one (mu, sigma) leaf per replicate."""
    r = eps.shape[0]
    m = torch.full((r, 1), float(mu), dtype=torch.float64, requires_grad=True)
    s = torch.full((r, 1), float(sigma), dtype=torch.float64, requires_grad=True)
    gm, gs = torch.autograd.grad(f(name, m + s * eps, k).mean(1).sum(), (m, s))
    return torch.cat([gm, gs], 1)


def estimate(
    estimator: str,
    name: str,
    mu: float,
    sigma: float,
    k: float,
    replicates: int,
    samples: int,
    generator: torch.Generator,
    *,
    ema_decay: float = 0.9,
    ema_horizon: int = 30,
) -> torch.Tensor:
    """``[R, 2]`` estimates; baselines as in ``gamma_toy.estimate`` (LOO for K >= 2,
    a stationary running mean of f for K = 1); ``measure_valued`` is the coupled
    weak-derivative estimator (two evaluations of f per draw and parameter)."""
    _check_sigma(sigma)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    eps = torch.randn(replicates, samples, dtype=torch.float64, generator=generator)
    if estimator == "reparam":
        return reparameterization(name, mu, sigma, k, eps)
    if estimator == "score":
        return score_function(name, mu, sigma, k, eps)
    if estimator == "measure_valued":
        return measure_valued.estimate(lambda z: f(name, z, k), mu, sigma, replicates, samples, generator)
    if estimator == "score_baseline":
        if samples >= 2:
            return score_function(name, mu, sigma, k, eps, "loo")
        past = torch.randn(replicates, ema_horizon, dtype=torch.float64, generator=generator)
        b = f(name, mu + sigma * past, k) @ ema_weights(ema_decay, ema_horizon)
        return score_function(name, mu, sigma, k, eps, b)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


# ---- exact single-draw variances by quadrature ---------------------------------

_NODES = 200


def gauss_expect(fn, nodes: int = _NODES) -> torch.Tensor:
    """``E[fn(eps)]``, ``eps ~ N(0, 1)``, by Gauss-Hermite (probabilists') quadrature;
    ``fn`` maps a ``[n]`` float64 tensor to ``[n, ...]``."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    x, w = torch.from_numpy(x), torch.from_numpy(w / math.sqrt(2 * math.pi))
    return torch.tensordot(w, fn(x), dims=1)


def single_draw_variance(estimator: str, name: str, mu: float, sigma: float, k: float) -> tuple[float, float]:
    """Exact variance of the K = 1 estimator without baseline, for (d/dmu, d/dsigma);
    ``score_baseline`` has none in closed form (nan)."""
    _check_sigma(sigma)
    if estimator == "score":
        g = lambda e: _score(mu, sigma, e) * f(name, mu + sigma * e, k)[:, None]  # noqa: E731
    elif estimator == "reparam":
        g = lambda e: reparameterization(name, mu, sigma, k, e[:, None])  # noqa: E731
    elif estimator == "score_baseline":
        return float("nan"), float("nan")
    elif estimator == "measure_valued":
        return gaussian_exact.single_sample_variance("measure_valued", name, k, mu, sigma)
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    mean, second = gauss_expect(g), gauss_expect(lambda e: g(e) ** 2)
    var = second - mean**2
    return var[0].item(), var[1].item()
