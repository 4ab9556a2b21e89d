"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018), as
disentanglement_lib computes it (``evaluation/metrics/dci.py``; study sizes 10,000 train and 5,000
test points).

One scikit-learn ``GradientBoostingClassifier()`` (its defaults) per factor predicts the factor's
class from all codes; ``R[j, k]`` = the fitted model's ``feature_importances_[j]``. Then

- disentanglement = sum_j rho_j (1 - H_K(R[j, :] / sum_k R[j, k])), rho_j = sum_k R[j, k] / sum R,
- completeness   = sum_k rho_k (1 - H_D(R[:, k] / sum_j R[j, k])), rho_k = sum_j R[j, k] / sum R,

entropies in base K and D (1e-11 added to every entry first, as the reference does), and
informativeness = the mean classification accuracy over factors, on train and on test points.

The factors' fits are independent, so they run in ``n_jobs`` processes (largest first); each is
seeded (``random_state=seed + k``, the reference leaves it unseeded), so the result does not depend
on ``n_jobs``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.parallel import run_jobs


@dataclass(frozen=True)
class DCIResult:
    disentanglement: float
    completeness: float
    informativeness_train: float  # mean accuracy over factors
    informativeness_test: float
    importance: np.ndarray  # [D, K]
    accuracy_train: np.ndarray  # [K] per factor
    accuracy_test: np.ndarray  # [K] per factor


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """scipy.stats.entropy(p, base=base, axis=axis): p normalised along ``axis`` first."""
    p = p / p.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis) / np.log(base)


def _weighted_specificity(importance: np.ndarray, axis: int) -> float:
    """Mean over the slices along ``1 - axis`` of 1 - H(slice normalised along ``axis``), entropy in
    base ``shape[axis]``, weighted by each slice's share of the total importance."""
    r = np.asarray(importance, dtype=np.float64)
    per_slice = 1.0 - _entropy(r + 1e-11, r.shape[axis], axis=axis)
    if r.sum() == 0.0:
        r = np.ones_like(r)
    return float(np.sum(per_slice * r.sum(axis=axis) / r.sum()))


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean over codes of 1 - H_K(code's importance over factors)."""
    return _weighted_specificity(importance, axis=1)


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean over factors of 1 - H_D(factor's importance over codes)."""
    return _weighted_specificity(importance, axis=0)


def fit_factor(x_train, y_train, x_test, y_test, seed: int) -> tuple[np.ndarray, float, float]:
    """One factor's classifier: (importance [D], train accuracy, test accuracy)."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
    return (np.abs(model.feature_importances_), float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


def dci(codes_train, factors_train, codes_test, factors_test, *, seed: int = 0, n_jobs: int = 1) -> DCIResult:
    """DCI of codes ``[N, D]`` with factor classes ``[N, K]`` (train split fits, test split scores)."""
    ctr, ftr, cte, fte = _inputs.split("dci", codes_train, factors_train, codes_test, factors_test)
    k = ftr.shape[1]
    # Work grows with the number of classes (one tree per class and stage): largest first.
    jobs = [(fit_factor, (ctr, ftr[:, i], cte, fte[:, i], seed + i)) for i in range(k)]
    sizes = [len(np.unique(ftr[:, i])) for i in range(k)]
    fits = run_jobs(jobs, n_jobs=n_jobs, cost=sizes)
    importance = np.stack([f[0] for f in fits], axis=1)
    acc_train = np.array([f[1] for f in fits])
    acc_test = np.array([f[2] for f in fits])
    return DCIResult(disentanglement(importance), completeness(importance), float(acc_train.mean()),
                     float(acc_test.mean()), importance, acc_train, acc_test)
