"""Measure-valued gradients of ``E_{N(mu, sigma^2)}[f(x)]`` with coupling
(Mohamed et al., JMLR 2020, §6 and §7.2).

A measure-valued (weak) derivative writes the derivative of a density as a
constant times the difference of two densities, so ``d/dtheta E_p[f] = c (E_{p+}[f]
- E_{p-}[f])``, estimated by evaluating ``f`` twice. For the Gaussian, with
``phi`` the standard normal density and ``e = (x - mu) / sigma``:

- mean: ``d/dmu N(x; mu, sigma) = (e / sigma) N(x; mu, sigma)``. Split at ``x = mu``:
  each half has mass ``E[max(e, 0)] / sigma = 1 / (sigma sqrt(2 pi))``, and the
  normalised positive half is the law of ``mu + sigma R`` with density
  ``r exp(-r^2/2)`` for R: the Rayleigh(1) law, i.e. Weibull(shape 2, scale
  sqrt 2), the review's Weibull(2, 1/2) in its rate form; ``R = sqrt(2 E)`` with
  ``E ~ Exp(1)``. So ``c = 1 / (sigma sqrt(2 pi))``, ``p+- = mu +- sigma R``.
- scale: ``d/dsigma N(x; mu, sigma) = (1/sigma) (e^2 - 1) N(x; mu, sigma)``;
  ``e^2 phi(e)`` is the standard double-sided Maxwell density (it integrates to
  ``E[e^2] = 1``). So ``c = 1/sigma``, ``p+ = mu + sigma D`` with ``D`` double-sided
  Maxwell (a random sign times the norm of three standard normals), ``p- = N(mu, sigma^2)``.

Coupling (common random numbers, so that the two evaluations are correlated and
their difference small): for the mean both sides use the same ``R``; for the scale
the normal side is ``D U`` with ``U ~ Uniform(0, 1)`` independent of ``D``: for
``x > 0`` the density of ``D U`` is ``int_x^inf (m^2 phi(m)) / m dm = phi(x)``, so
``D U`` is exactly standard normal. The mean's coupled points mirror each other about mu: the
part of f even about mu cancels exactly, but where f is monotone the two evaluations are
negatively correlated and this coupling adds variance (the tests show both).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

PARAMS = ("mu", "sigma")


def _check_sigma(sigma) -> None:
    bad = not bool((torch.as_tensor(sigma) > 0).all())
    if bad:
        raise ValueError(f"sigma must be > 0, got {sigma}")


def rayleigh(shape, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Rayleigh(1) draws ``sqrt(2 E)``, ``E ~ Exp(1)`` (density ``r exp(-r^2/2)``, r > 0)."""
    e = torch.empty(shape, dtype=dtype).exponential_(generator=generator)
    return torch.sqrt(2 * e)


def double_sided_maxwell(shape, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Standard double-sided Maxwell draws (density ``m^2 phi(m)``): a random sign times
    the Euclidean norm of three standard normals (a chi variable with 3 degrees of freedom)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    chi3 = torch.randn(*shape, 3, dtype=dtype, generator=generator).norm(dim=-1)
    sign = torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1
    return sign * chi3


def grad_mu(f: Callable, mu, sigma, r: torch.Tensor, r_minus: torch.Tensor | None = None) -> torch.Tensor:
    """One-draw weak-derivative estimate of ``d/dmu E f``: ``(f(mu + sigma r) - f(mu - sigma r-)) /
    (sigma sqrt(2 pi))``; coupled when ``r_minus`` is None (``r- = r``)."""
    _check_sigma(sigma)
    r_minus = r if r_minus is None else r_minus
    return (f(mu + sigma * r) - f(mu - sigma * r_minus)) / (sigma * math.sqrt(2 * math.pi))


def grad_sigma(f: Callable, mu, sigma, d: torch.Tensor, u: torch.Tensor | None = None,
               eps: torch.Tensor | None = None) -> torch.Tensor:
    """One-draw weak-derivative estimate of ``d/dsigma E f``: ``(f(mu + sigma d) - f(mu + sigma n)) / sigma``
    with ``d`` double-sided Maxwell and the normal ``n = d u`` (coupled, ``u`` uniform) or ``n = eps``
    (independent); exactly one of ``u``, ``eps`` is given."""
    _check_sigma(sigma)
    if (u is None) == (eps is None):
        raise ValueError("grad_sigma needs exactly one of u (coupled) and eps (independent normal)")
    n = d * u if eps is None else eps
    return (f(mu + sigma * d) - f(mu + sigma * n)) / sigma


def estimate(f: Callable, mu: float, sigma: float, replicates: int, samples: int, generator: torch.Generator,
             *, coupled: bool = True) -> torch.Tensor:
    """``[R, 2]`` estimates of ``(d/dmu, d/dsigma) E_{N(mu, sigma^2)}[f]``, each the mean of
    ``samples`` draws (2 evaluations of ``f`` per draw and parameter)."""
    _check_sigma(sigma)
    if samples < 1 or replicates < 1:
        raise ValueError(f"samples and replicates must be >= 1, got samples={samples}, replicates={replicates}")
    shape = (replicates, samples)
    r = rayleigh(shape, generator)
    d = double_sided_maxwell(shape, generator)
    if coupled:
        gm = grad_mu(f, mu, sigma, r)
        gs = grad_sigma(f, mu, sigma, d, u=torch.rand(shape, dtype=torch.float64, generator=generator))
    else:
        gm = grad_mu(f, mu, sigma, r, rayleigh(shape, generator))
        gs = grad_sigma(f, mu, sigma, d, eps=torch.randn(shape, dtype=torch.float64, generator=generator))
    return torch.stack([gm.mean(1), gs.mean(1)], -1)
