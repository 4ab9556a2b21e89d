"""The exactly solvable model of `001` part 4 (REFERENCE.md §3).

Prior ``p(z) = e^{-z}``, likelihood ``p(x|z) = z e^{-zx}`` (z > 0), variational
family ``q_theta = Gamma(shape 2, rate theta)``. Then

    ELBO(theta) = -2(x+1)/theta - 2 log theta + 2,
    dELBO/dtheta = 2(x+1)/theta^2 - 2/theta,     theta* = x + 1.

A Gamma(2, theta) draw is ``(e1 + e2) / theta`` with ``e_i ~ Exp(1)``: an exact
reparameterization. Because ``log z`` cancels in ``log p(x, z) - log q(z)``, the
integrand is linear in z and the single-draw variance of both estimators has a
closed form from the Gamma moments ``E[z^n] = (n+1)! / theta^n``.

Estimators return one gradient per replicate: ``theta`` is a ``[R]`` tensor and
replicate ``r`` uses only ``theta[r]`` and its own ``K`` draws.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vaebench.estimators.common import ema_weights, loo_baseline

ESTIMATORS = ("score", "score_baseline", "reparam")


def _check_x(x: float) -> None:
    if not x > 0:
        raise ValueError(f"x must be > 0 (the likelihood z e^(-zx) is a density on x > 0), got {x}")


def _check_theta(theta) -> None:
    if torch.is_tensor(theta):
        if not bool((theta > 0).all()):
            raise ValueError(f"theta must be > 0 (Gamma rate), got min {theta.min().item()}")
    elif not theta > 0:
        raise ValueError(f"theta must be > 0 (Gamma rate), got {theta}")


# ---- exact values -------------------------------------------------------------


def elbo(x: float, theta):
    _check_x(x), _check_theta(theta)
    log = torch.log if torch.is_tensor(theta) else math.log
    return -2 * (x + 1) / theta - 2 * log(theta) + 2


def elbo_grad(x: float, theta):
    _check_x(x), _check_theta(theta)
    return 2 * (x + 1) / theta**2 - 2 / theta


def optimum(x: float) -> float:
    _check_x(x)
    return x + 1.0


def log_joint(x: float, z: torch.Tensor) -> torch.Tensor:
    """``log p(z) + log p(x|z) = log z - z (x + 1)``."""
    return torch.log(z) - z * (x + 1)


def log_q(z: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``log Gamma(z; 2, theta) = 2 log theta + log z - theta z``."""
    return 2 * torch.log(theta) + torch.log(z) - theta * z


def _expect_poly(coeffs: np.ndarray, theta: float) -> float:
    """``E_q[sum_n c_n z^n]`` for ``z ~ Gamma(2, theta)``."""
    return float(sum(c * math.factorial(n + 1) / theta**n for n, c in enumerate(coeffs)))


def single_draw_variance(estimator: str, x: float, theta: float) -> float:
    """Exact variance of the one-draw (K = 1) estimator without baseline; the K-draw
    average has this divided by K. ``score_baseline`` has no closed form (nan)."""
    _check_x(x), _check_theta(theta)
    if estimator == "reparam":
        # g = s (x+1)/theta^2 - 2/theta with s = e1 + e2 ~ Gamma(2, 1), Var s = 2.
        return 2 * (x + 1) ** 2 / theta**4
    if estimator == "score":
        h = np.array([2 / theta, -1.0])  # d/dtheta log q = 2/theta - z
        f = np.array([-2 * math.log(theta), theta - x - 1])  # log p(x,z) - log q(z)
        g = np.polynomial.polynomial.polymul(h, f)
        return _expect_poly(np.polynomial.polynomial.polymul(g, g), theta) - _expect_poly(g, theta) ** 2
    if estimator == "score_baseline":
        return float("nan")
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


# ---- Monte Carlo estimators -------------------------------------------------------


def draw_exponentials(replicates: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """``[R, K, 2]`` Exp(1) draws; ``sum(-1) / theta`` is Gamma(2, theta)."""
    return torch.empty(replicates, samples, 2, dtype=torch.float64).exponential_(generator=generator)


def _leaf(theta: torch.Tensor) -> torch.Tensor:
    _check_theta(theta)
    return theta.detach().double().clone().requires_grad_()


def score_function(x: float, theta: torch.Tensor, e: torch.Tensor, baseline=None) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE ``1/K sum_k d/dtheta log q(z_k) (f_k - b_k)``, ``f = log p(x,z) - log q(z)``.

    ``baseline``: None (b = 0), ``"loo"`` (leave-one-out mean, K >= 2) or a ``[R]``
    tensor independent of these draws. Returns ``(grad [R], mean f [R])``.
    """
    th = _leaf(theta)
    z = e.sum(-1) / th.detach()[:, None]  # the draws do not depend on theta here
    lq = log_q(z, th[:, None])
    f = (log_joint(x, z) - lq).detach()
    if baseline is None:
        b = 0.0
    elif isinstance(baseline, str) and baseline == "loo":
        b = loo_baseline(f)
    else:
        b = torch.as_tensor(baseline, dtype=f.dtype).reshape(-1, 1)
    (grad,) = torch.autograd.grad((lq * (f - b)).mean(-1).sum(), th)
    return grad, f.mean(-1)


def reparameterization(x: float, theta: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pathwise ``1/K sum_k d/dtheta [log p(x, z_k) - log q(z_k)]``, ``z_k = (e1 + e2) / theta``."""
    th = _leaf(theta)
    z = e.sum(-1) / th[:, None]
    f = log_joint(x, z) - log_q(z, th[:, None])
    (grad,) = torch.autograd.grad(f.mean(-1).sum(), th)
    return grad, f.detach().mean(-1)


def estimate(
    estimator: str,
    x: float,
    theta: torch.Tensor,
    samples: int,
    generator: torch.Generator,
    *,
    ema_decay: float = 0.9,
    ema_horizon: int = 30,
) -> torch.Tensor:
    """``[R]`` gradient estimates at fixed ``theta`` (``[R]``) from ``samples`` draws each.

    ``score_baseline`` uses the leave-one-out baseline for K >= 2; for K = 1 the
    stationary law of a running-mean baseline (EMA of f with ``ema_decay``), made
    from ``ema_horizon`` extra independent draws per replicate (see ``common``).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    e = draw_exponentials(theta.numel(), samples, generator)
    if estimator == "reparam":
        return reparameterization(x, theta, e)[0]
    if estimator == "score":
        return score_function(x, theta, e)[0]
    if estimator == "score_baseline":
        if samples >= 2:
            return score_function(x, theta, e, "loo")[0]
        past = draw_exponentials(theta.numel(), ema_horizon, generator)
        z = past.sum(-1) / theta[:, None]
        f_past = log_joint(x, z) - log_q(z, theta[:, None])
        return score_function(x, theta, e, f_past @ ema_weights(ema_decay, ema_horizon))[0]
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def sgd(
    estimator: str,
    x: float,
    theta0: float,
    *,
    steps: int,
    chains: int,
    samples: int,
    lr: float,
    generator: torch.Generator,
    lr_decay_steps: float = 100.0,
    ema_decay: float = 0.9,
) -> torch.Tensor:
    """Stochastic gradient ascent on the ELBO, ``chains`` independent runs from ``theta0``.

    Steps are taken on ``eta = log theta`` (keeps theta > 0; the chain rule gives
    ``d/deta = theta d/dtheta``) with ``lr_t = lr / (1 + t / lr_decay_steps)``
    (Robbins-Monro). ``score_baseline`` with K = 1 uses a running mean of f per
    chain (EMA, updated after each step, so it never sees the current draw).
    Returns theta ``[steps + 1, chains]``.
    """
    _check_x(x), _check_theta(theta0)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    eta = torch.full((chains,), math.log(theta0), dtype=torch.float64)
    path = [eta.exp()]
    running = None
    for t in range(steps):
        theta = eta.exp()
        # A chain whose theta has left the floats (plain REINFORCE can diverge to inf or 0)
        # stays there; the others go on. Draws are made for every chain so that each chain's
        # stream does not depend on the others' fate.
        alive = torch.isfinite(theta) & (theta > 0)
        e = draw_exponentials(chains, samples, generator)
        g = torch.zeros(chains, dtype=torch.float64)
        th, ea = theta[alive], e[alive]
        if estimator == "reparam":
            g[alive], _ = reparameterization(x, th, ea)
        elif estimator == "score" or samples >= 2:
            g[alive], _ = score_function(x, th, ea, "loo" if estimator == "score_baseline" else None)
        else:
            if running is None:  # start the running mean from one independent draw
                z0 = draw_exponentials(chains, 1, generator).sum(-1) / theta[:, None]
                running = (log_joint(x, z0) - log_q(z0, theta[:, None])).mean(-1)
            g[alive], fbar = score_function(x, th, ea, running[alive])
            running[alive] = ema_decay * running[alive] + (1 - ema_decay) * fbar
        step = lr / (1 + t / lr_decay_steps) * theta * g
        eta = torch.where(alive, eta + step, eta)
        path.append(eta.exp())
    return torch.stack(path)
