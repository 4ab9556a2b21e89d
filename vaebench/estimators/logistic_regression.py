"""Bayesian logistic regression by stochastic variational inference, trained with each of
three gradient estimators (Mohamed et al., JMLR 2020, §8.3).

Model: ``y_n ~ Bernoulli(sigmoid(x_n . w))`` on scikit-learn's bundled breast-cancer data
(569 points, 30 standardised features plus a bias), prior ``w ~ N(0, I)``, posterior
``q(w) = N(mu, diag exp(rho))`` (``rho`` the log-variance, as in ``vaebench.ops.reparam_kl``).
ELBO ``= E_q[F(w)] - KL(q || p)`` with ``F`` the (minibatch, N/B-scaled) log-likelihood;
the KL and its gradient are analytic, and ``E_q[F]`` is differentiated by:

- ``score``: ``grad log q(w_s) (F(w_s) - b)``; control variate ``moving_average``: ``b`` an
  exponential moving average of past F values (independent of the current draws, so unbiased);
- ``pathwise``: ``grad_(mu, rho) F(mu + sigma eps_s)`` through the fused ``reparam_kl`` op
  (Philox noise in-kernel); control variate ``delta`` (the delta method): subtract the pathwise
  gradient of the second-order Taylor expansion ``F~`` of F around ``mu`` and add back its exact
  mean. With ``g = grad F(mu)``, ``H`` the Hessian at mu and ``v = sigma * eps``:
  ``d/dmu F~(mu + v) = g + H v`` (mean g) and ``d/dsigma_i F~(mu + v) = (g + H v)_i eps_i``
  (mean ``H_ii sigma_i``), so the control variate is ``H v`` for mu and
  ``(g + H v)_i eps_i - H_ii sigma_i`` for sigma (times ``sigma_i / 2`` for rho);
- ``measure_valued``: per coordinate d, the coupled weak derivatives of ``measure_valued``
  applied to ``w_d`` with the other coordinates drawn from q (the gradient of a product
  measure's expectation is the sum of the coordinates' weak derivatives): ``4 D`` evaluations
  of F per draw where the others need one. The logits are linear in w, so changing one
  coordinate is a rank-one update of the draw's logits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vaebench.estimators import measure_valued as mv

ESTIMATORS = ("score", "pathwise", "measure_valued")
CONTROL_VARIATES = {"score": ("none", "moving_average"), "pathwise": ("none", "delta"), "measure_valued": ("none",)}


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor  # [N, D] float64, standardised features then a column of ones
    y_train: torch.Tensor  # [N] float64 in {0, 1}
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]


def load_breast_cancer(test_fraction: float = 0.2, seed: int = 0) -> Data:
    """scikit-learn's bundled copy (no download), split at random; features standardised with the
    training split's mean and standard deviation, then a bias column appended."""
    from sklearn.datasets import load_breast_cancer as _load

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    raw = _load()
    x, y = np.asarray(raw.data, float), np.asarray(raw.target, float)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / std
    x = np.concatenate([x, np.ones((len(y), 1))], 1)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Data(t(x[train]), t(y[train]), t(x[test]), t(y[test]))


def check_run(estimator: str, control_variate: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if control_variate not in CONTROL_VARIATES[estimator]:
        raise ValueError(f"control_variate for {estimator} must be one of {CONTROL_VARIATES[estimator]}, "
                         f"got {control_variate!r}")


def evaluations_per_draw(estimator: str, dim: int) -> int:
    """Evaluations of F per posterior draw (pathwise also back-propagates through its one)."""
    check_run(estimator, "none")
    return 4 * dim if estimator == "measure_valued" else 1


# ---- the model ------------------------------------------------------------------------------


def log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log p(y | logits)`` elementwise: ``y l - softplus(l)``."""
    return y * logits - F.softplus(logits)


def kl(mu: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag e^rho) || N(0, I))``."""
    return 0.5 * (mu**2 + rho.exp() - 1 - rho).sum()


def kl_grad(mu: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """``[2, D]``: d KL / d(mu, rho)."""
    return torch.stack([mu, 0.5 * (rho.exp() - 1)])


def objective(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """``F(w) = scale * sum_n log p(y_n | x_n, w)`` for each row of ``w`` ``[S, D]``: ``[S]``."""
    return scale * log_likelihood(w @ x.T, y).sum(-1)


def grad_hessian(mu: torch.Tensor, x: torch.Tensor, y: torch.Tensor, scale: float):
    """Exact gradient ``[D]`` and Hessian ``[D, D]`` of ``F`` at ``mu``."""
    s = torch.sigmoid(x @ mu)
    return scale * x.T @ (y - s), -scale * (x.T * (s * (1 - s))) @ x


# ---- per-draw ELBO gradients ------------------------------------------------------------------


def per_draw_grads(estimator: str, control_variate: str, mu: torch.Tensor, rho: torch.Tensor, x: torch.Tensor,
                   y: torch.Tensor, scale: float, draws: int, generator: torch.Generator,
                   baseline: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``draws`` independent one-draw estimates of ``d ELBO / d(mu, rho)`` ``[draws, 2, D]`` (their
    mean is the ``draws``-sample estimator), and ``F`` at each draw ``[draws]`` (nan for
    ``measure_valued``, which evaluates F elsewhere). ``baseline``: b of ``moving_average``."""
    check_run(estimator, control_variate)
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    sigma = torch.exp(0.5 * rho)
    dim = mu.numel()
    if estimator == "pathwise":
        from vaebench.ops import draw_seed, philox_normal, reparam_kl

        seed = draw_seed(generator)
        m = mu.detach().expand(draws, dim).clone().requires_grad_()
        r = rho.detach().expand(draws, dim).clone().requires_grad_()
        z, kl_rows = reparam_kl(m, r, seed=seed, offset=0)
        fz = objective(z, x, y, scale)
        gm, gr = torch.autograd.grad((fz - kl_rows).sum(), (m, r))  # row s depends on draw s only
        grads = torch.stack([gm, gr], 1)
        if control_variate == "delta":
            eps = philox_normal((draws, dim), seed, 0).to(mu.dtype)  # the op's own noise
            g, h = grad_hessian(mu, x, y, scale)
            hv = (sigma * eps) @ h
            cv_sigma = (g + hv) * eps - torch.diagonal(h) * sigma
            grads = grads - torch.stack([hv, cv_sigma * sigma / 2], 1)
        return grads, fz.detach()
    eps = torch.randn(draws, dim, dtype=mu.dtype, generator=generator)
    w = mu + sigma * eps
    if estimator == "score":
        fw = objective(w, x, y, scale)
        b = baseline if control_variate == "moving_average" else 0.0
        score = torch.stack([eps / sigma, 0.5 * (eps**2 - 1)], 1)  # d log q / d(mu, rho)
        return score * (fw - b)[:, None, None] - kl_grad(mu, rho), fw
    # measure_valued: F at draw s with coordinate d replaced by new[j, s, d], for the four sides
    # j (mu +, mu -, sigma +, sigma -), in one [4, S, D, B] pass. F is linear in the logits but for
    # the softplus: F = scale * (y . logits - sum softplus(logits)).
    r = mv.rayleigh((draws, dim), generator, mu.dtype)
    d = mv.double_sided_maxwell((draws, dim), generator, mu.dtype)
    u = torch.rand(draws, dim, dtype=mu.dtype, generator=generator)
    delta = torch.stack([mu + sigma * r, mu - sigma * r, mu + sigma * d, mu + sigma * d * u]) - w
    logits = w @ x.T  # [S, B]
    soft = F.softplus(torch.addcmul(logits[None, :, None, :], delta[..., None], x.T)).sum(-1)
    fj = scale * ((logits @ y)[None, :, None] + delta * (x.T @ y) - soft)
    g_mu = (fj[0] - fj[1]) / (sigma * math.sqrt(2 * math.pi))
    g_sigma = (fj[2] - fj[3]) / sigma
    grads = torch.stack([g_mu, g_sigma * sigma / 2], 1) - kl_grad(mu, rho)
    return grads, torch.full((draws,), float("nan"), dtype=mu.dtype)


def gradient_variance(estimator: str, control_variate: str, mu, rho, x, y, scale: float, samples: int, draws: int,
                      generator: torch.Generator, baseline: float = 0.0) -> dict[str, float]:
    """Total variance (trace of the covariance) of the ``samples``-draw estimator at fixed
    parameters and minibatch: the per-draw covariance from ``draws`` draws, divided by ``samples``
    (exact, as the estimator averages independent draws). For mu, rho and both."""
    g, _ = per_draw_grads(estimator, control_variate, mu, rho, x, y, scale, draws, generator, baseline)
    var = g.var(0) / samples  # [2, D]
    return {"grad_variance": var.sum().item(), "grad_variance_mu": var[0].sum().item(),
            "grad_variance_logvar": var[1].sum().item()}


# ---- training --------------------------------------------------------------------------------


def evaluate(mu: torch.Tensor, rho: torch.Tensor, data: Data, eps: torch.Tensor) -> dict[str, float]:
    """Full-training-set ELBO (``E_q`` by the fixed draws ``eps``, common to every run) and test
    accuracy of the posterior predictive ``E_q[sigmoid(x . w)]`` thresholded at 1/2."""
    w = mu + torch.exp(0.5 * rho) * eps
    elbo = objective(w, data.x_train, data.y_train, 1.0).mean() - kl(mu, rho)
    p = torch.sigmoid(w @ data.x_test.T).mean(0)
    acc = ((p > 0.5).to(data.y_test.dtype) == data.y_test).to(torch.float64).mean()
    return {"elbo": elbo.item(), "test_accuracy": acc.item()}


def train(estimator: str, control_variate: str, data: Data, *, steps: int, batch: int, samples: int, lr: float,
          generator: torch.Generator, variance_generator: torch.Generator, log_every: int, variance_draws: int, eval_eps: torch.Tensor,
          variance_batch: torch.Tensor, ema_decay: float = 0.9, progress=None) -> list[dict]:
    """SGD ascent on the ELBO from ``mu = 0, rho = 0`` (q = prior) with a cosine-decayed step
    ``lr (1 + cos(pi t / steps)) / 2``, minibatches of ``batch`` without replacement within an
    epoch, ``samples`` posterior draws per step. Every ``log_every`` steps (and at both ends): the
    ELBO and test accuracy (``evaluate`` with ``eval_eps``) and the gradient estimator's variance
    on the fixed minibatch ``variance_batch`` (indices), with draws from ``variance_generator`` (so
    that logging does not change the training draws). Returns one dict per logged step."""
    check_run(estimator, control_variate)
    for name, v in (("steps", steps), ("batch", batch), ("samples", samples), ("log_every", log_every),
                    ("variance_draws", variance_draws)):
        if v < 1 or (name == "variance_draws" and v < 2):
            raise ValueError(f"{name} must be >= {2 if name == 'variance_draws' else 1}, got {v}")
    n, dim = data.x_train.shape
    if batch > n:
        raise ValueError(f"batch must be <= the {n} training points, got {batch}")
    scale = n / batch
    mu = torch.zeros(dim, dtype=torch.float64)
    rho = torch.zeros(dim, dtype=torch.float64)
    xv, yv = data.x_train[variance_batch], data.y_train[variance_batch]
    baseline = None  # moving average of F; started from F at the mean on the first minibatch
    evals = evaluations_per_draw(estimator, dim) * samples
    order, pos = torch.randperm(n, generator=generator), 0
    rows = []
    for t in range(steps + 1):
        if t % log_every == 0 or t == steps:
            b = 0.0 if baseline is None else baseline
            rows.append({"step": t, **evaluate(mu, rho, data, eval_eps),
                         **gradient_variance(estimator, control_variate, mu, rho, xv, yv, n / len(variance_batch),
                                             samples, variance_draws, variance_generator, b),
                         "evaluations": t * evals})
        if t == steps:
            break
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=generator), 0
        idx = order[pos: pos + batch]
        pos += batch
        x, y = data.x_train[idx], data.y_train[idx]
        if baseline is None:
            baseline = objective(mu[None], x, y, scale).item()
        g, fw = per_draw_grads(estimator, control_variate, mu, rho, x, y, scale, samples, generator, baseline)
        g = g.mean(0)
        if not bool(torch.isfinite(g).all()):
            raise FloatingPointError(f"{estimator}/{control_variate}: non-finite gradient at step {t}")
        if control_variate == "moving_average":
            baseline = ema_decay * baseline + (1 - ema_decay) * fw.mean().item()
        step = lr * 0.5 * (1 + math.cos(math.pi * t / steps))
        mu, rho = mu + step * g[0], rho + step * g[1]
        if progress is not None:
            progress.update(1)
    return rows
