"""Exact single-sample variances of four gradient estimators of ``E_{N(mu, sigma^2)}[f(x; k)]``
(the Gaussian-toy figures of Mohamed et al., JMLR 2020, §3), by numerical integration.

Costs: ``square`` ``(x - k)^2``, ``gauss`` ``exp(-k x^2)``, ``cos`` ``cos(k x)``. Estimators of
``(d/dmu, d/dsigma)``, each from one draw (``e = (x - mu)/sigma``):

- ``pathwise``: ``(f'(x), f'(x) e)``, ``x = mu + sigma e``;
- ``score``: ``(f(x) e / sigma, f(x) (e^2 - 1) / sigma)``;
- ``score_baseline``: the score function with ``f - b``, ``b`` the variance-minimising constant, one
  for each parameter: with ``h`` the score, ``Var[h (f - b)] = E[h^2 (f - b)^2] - (E[h f])^2`` (as
  ``E h = 0``) is smallest at ``b* = E[h^2 f] / E[h^2]``;
- ``measure_valued``: the coupled weak-derivative estimators of ``measure_valued`` (two
  evaluations of f per parameter).

Every moment is a one- or two-dimensional integral against a smooth weight, computed by
Gauss-Legendre quadrature on ``[-L, L]`` (normal, Maxwell) or ``[0, L]`` (Rayleigh) standard units,
``L = 12`` (the mass beyond is below 1e-31), with node counts grown with the frequency of f;
``tests/test_estimators.py`` checks them against closed forms, ``scipy.integrate.quad``, doubled
node counts and Monte Carlo.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import torch

from vaebench.estimators import measure_valued
from vaebench.estimators.gaussian_costs import f as cost_fn

COSTS = ("square", "gauss", "cos")
ESTIMATORS = ("pathwise", "score", "score_baseline", "measure_valued")
PARAMS = ("mu", "sigma")
EVALUATIONS = {"pathwise": 1, "score": 1, "score_baseline": 1, "measure_valued": 2}  # of f, per draw and parameter
K_RANGES = {"square": (-3.0, 3.0), "gauss": (0.1, 10.0), "cos": (0.5, 5.0)}
L = 12.0


def _check(cost: str, sigma: float) -> None:
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")


def k_grid(cost: str, points: int = 100) -> np.ndarray:
    """The review's grids: ``square`` evenly spaced in [-3, 3], ``gauss`` and ``cos`` log-spaced
    in [0.1, 10] and [0.5, 5]; both endpoints exact (k = 5 is the last cos point)."""
    _check(cost, 1.0)
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    lo, hi = K_RANGES[cost]
    grid = np.linspace(lo, hi, points) if cost == "square" else np.geomspace(lo, hi, points)
    grid[0], grid[-1] = lo, hi  # geomspace may land a few ulps off
    return grid


def fprime(cost: str, x: torch.Tensor, k: float) -> torch.Tensor:
    """``df/dx`` by hand (checked against autograd in the tests)."""
    if cost == "square":
        return 2 * (x - k)
    if cost == "gauss":
        return -2 * k * x * torch.exp(-k * x**2)
    if cost == "cos":
        return -k * torch.sin(k * x)
    raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")


# ---- single-draw estimators, shared by quadrature and Monte Carlo ------------------------


def pathwise(cost, k, mu, sigma, e):
    d = fprime(cost, mu + sigma * e, k)
    return d, d * e


def score(cost, k, mu, sigma, e, baseline=(0.0, 0.0)):
    fx = cost_fn(cost, mu + sigma * e, k)
    return e / sigma * (fx - baseline[0]), (e**2 - 1) / sigma * (fx - baseline[1])


# ---- quadrature rules ------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _legendre(a: float, b: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from scipy.special import roots_legendre  # O(n), where numpy's leggauss is O(n^3)

    x, w = roots_legendre(n)
    return torch.from_numpy(0.5 * (b - a) * x + 0.5 * (b + a)), torch.from_numpy(0.5 * (b - a) * w)


def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def default_nodes(cost: str, k: float, sigma: float) -> tuple[int, int]:
    """Node counts (along the draw, along the Maxwell coupling's uniform) that resolve f: about
    40 nodes per radian of f's frequency in standard units (``k sigma`` for cos, the inverse
    width ``sigma sqrt(2k)`` of exp(-k x^2))."""
    omega = {"square": 1.0, "gauss": sigma * math.sqrt(2 * abs(k)), "cos": abs(k) * sigma}[cost]
    up = lambda n: 64 * math.ceil(n / 64)  # noqa: E731  few distinct sizes, so the rules are cached
    return up(200 + 40 * L * omega / math.pi), up(32 + 8 * L * omega / math.pi)


def _normal_rule(n):
    x, w = _legendre(-L, L, n)
    return x, w * _phi(x)


def _rayleigh_rule(n):
    r, w = _legendre(0.0, L, n)
    return r, w * r * torch.exp(-0.5 * r**2)


def _maxwell_uniform_rule(n, m):
    d, wd = _legendre(-L, L, n)
    u, wu = _legendre(0.0, 1.0, m)
    return d[:, None], u[None, :], (wd * d**2 * _phi(d))[:, None] * wu[None, :]


def _mean_var(values: torch.Tensor, weights: torch.Tensor) -> tuple[float, float]:
    """Mean and variance under the rule, two-pass (no cancellation in E g^2 - (E g)^2)."""
    mean = (weights * values).sum()
    return mean.item(), (weights * (values - mean) ** 2).sum().item()


# ---- exact values -------------------------------------------------------------------------------


def optimal_baselines(cost: str, k: float, mu: float = 1.0, sigma: float = 1.0, nodes: int | None = None):
    """``(b*_mu, b*_sigma) = E[h^2 f] / E[h^2]`` for each parameter's score ``h``."""
    _check(cost, sigma)
    e, w = _normal_rule(nodes or default_nodes(cost, k, sigma)[0])
    fx = cost_fn(cost, mu + sigma * e, k)
    out = []
    for h in (e / sigma, (e**2 - 1) / sigma):
        out.append(((w * h**2 * fx).sum() / (w * h**2).sum()).item())
    return tuple(out)


def moments(estimator: str, cost: str, k: float, mu: float = 1.0, sigma: float = 1.0,
            nodes: tuple[int, int] | None = None) -> dict[str, tuple[float, float]]:
    """``{param: (mean, variance)}`` of the single-draw ``estimator`` by quadrature."""
    _check(cost, sigma)
    n, m = nodes or default_nodes(cost, k, sigma)
    f = functools.partial(cost_fn, cost, k=k)
    if estimator in ("pathwise", "score", "score_baseline"):
        e, w = _normal_rule(n)
        if estimator == "pathwise":
            g = pathwise(cost, k, mu, sigma, e)
        else:
            b = optimal_baselines(cost, k, mu, sigma, n) if estimator == "score_baseline" else (0.0, 0.0)
            g = score(cost, k, mu, sigma, e, b)
        return {"mu": _mean_var(g[0], w), "sigma": _mean_var(g[1], w)}
    if estimator == "measure_valued":
        r, wr = _rayleigh_rule(n)
        d, u, wdu = _maxwell_uniform_rule(n, m)
        return {"mu": _mean_var(measure_valued.grad_mu(f, mu, sigma, r), wr),
                "sigma": _mean_var(measure_valued.grad_sigma(f, mu, sigma, d, u=u), wdu)}
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def single_sample_variance(estimator: str, cost: str, k: float, mu: float = 1.0, sigma: float = 1.0,
                           nodes: tuple[int, int] | None = None) -> tuple[float, float]:
    """Exact variance of the one-draw estimator of ``(d/dmu, d/dsigma) E f``."""
    mom = moments(estimator, cost, k, mu, sigma, nodes)
    return mom["mu"][1], mom["sigma"][1]


def monte_carlo(estimator: str, cost: str, k: float, mu: float, sigma: float, n: int,
                generator: torch.Generator) -> torch.Tensor:
    """``[n, 2]`` independent single-draw estimates (the optimal baseline is the exact constant)."""
    _check(cost, sigma)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if estimator == "measure_valued":
        return measure_valued.estimate(lambda x: cost_fn(cost, x, k), mu, sigma, n, 1, generator)
    e = torch.randn(n, dtype=torch.float64, generator=generator)
    if estimator == "pathwise":
        g = pathwise(cost, k, mu, sigma, e)
    elif estimator in ("score", "score_baseline"):
        b = optimal_baselines(cost, k, mu, sigma) if estimator == "score_baseline" else (0.0, 0.0)
        g = score(cost, k, mu, sigma, e, b)
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return torch.stack(g, -1)


def table(points: int = 100, mu: float = 1.0, sigma: float = 1.0) -> pd.DataFrame:
    """``cost, k, param, estimator, variance`` over the review's grids (``points`` k per cost)."""
    rows = []
    for cost in COSTS:
        for k in k_grid(cost, points):
            for est in ESTIMATORS:
                var_mu, var_sigma = single_sample_variance(est, cost, float(k), mu, sigma)
                rows += [{"cost": cost, "k": float(k), "param": "mu", "estimator": est, "variance": var_mu},
                         {"cost": cost, "k": float(k), "param": "sigma", "estimator": est, "variance": var_sigma}]
    return pd.DataFrame(rows)
