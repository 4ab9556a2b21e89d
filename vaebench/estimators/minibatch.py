"""The N/M-scaled minibatch gradient (REFERENCE.md §3, `004` §1.6.1).

Model: logistic regression on a synthetic data set, chosen because the per-example
gradients of ``log p(y_i | x_i, w) `` are exact (no Monte Carlo inside), so the
full-data gradient ``sum_i g_i`` is known exactly and any deviation of the
minibatch average is due to the minibatch alone. For a batch of M indices the
estimator is ``N/M sum_{i in batch} g_i``; with S^2 the per-example covariance
trace (divisor N), its exact total variance is ``N^2 S^2 / M`` drawing with
replacement and ``N^2 S^2 (N - M) / (M (N - 1))`` without (finite-population
correction), so the log-log slope against M is -1 for M << N.
"""
from __future__ import annotations

import torch


def synthetic_logistic(n: int, dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X [N, dim+1] with a bias column, y [N] in {0, 1}, w_true [dim+1])``, float64."""
    if n < 2 or dim < 1:
        raise ValueError(f"need n >= 2 and dim >= 1, got n={n}, dim={dim}")
    x = torch.randn(n, dim, dtype=torch.float64, generator=generator)
    x = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    w_true = torch.randn(dim + 1, dtype=torch.float64, generator=generator)
    p = torch.sigmoid(x @ w_true)
    y = (torch.rand(n, dtype=torch.float64, generator=generator) < p).double()
    return x, y, w_true


def log_likelihood(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example ``log p(y_i | x_i, w)`` for the Bernoulli-logit model, ``[N]``."""
    logits = x @ w
    return y * logits - torch.nn.functional.softplus(logits)


def per_example_grads(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``g_i = d/dw log p(y_i | x_i, w) = (y_i - sigmoid(x_i . w)) x_i``, ``[N, P]``."""
    return (y - torch.sigmoid(x @ w))[:, None] * x


def minibatch_indices(n: int, m: int, replicates: int, replacement: bool, generator: torch.Generator) -> torch.Tensor:
    """``[R, M]`` indices: uniform with replacement, or M distinct (a random subset)."""
    if not 1 <= m <= n:
        raise ValueError(f"batch size m must be in [1, {n}], got {m}")
    if replacement:
        return torch.randint(0, n, (replicates, m), generator=generator)
    # the first M of a random permutation, per replicate
    return torch.rand(replicates, n, generator=generator).argsort(1)[:, :m]


def minibatch_gradients(grads: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``N/M sum_{i in batch} g_i`` for each row of ``idx``: ``[R, P]``."""
    n, m = grads.shape[0], idx.shape[1]
    return grads[idx].sum(1) * (n / m)


def exact_total_variance(grads: torch.Tensor, m: int, replacement: bool) -> float:
    """Trace of the covariance of the scaled minibatch gradient (module doc)."""
    n = grads.shape[0]
    s2 = (grads - grads.mean(0)).pow(2).sum(1).mean().item()
    var = n**2 * s2 / m
    return var if replacement else var * (n - m) / (n - 1)
