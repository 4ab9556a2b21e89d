"""Modularity and explicitness (Ridgeway & Mozer 2018), as disentanglement_lib computes them
(``evaluation/metrics/modularity_explicitness.py``; study sizes 10,000 train and 5,000 test points,
20-bin histogram discretizer).

- modularity: from the binned mutual information m[j, k] of the train points (the matrix MIG
  builds, counted by the fused histogram op), per code j with theta_j = max_k m[j, k]:
  1 - sum_{k != k*} m[j, k]^2 / (theta_j^2 (K - 1)), 0 for a code with no information; the mean over codes.
- explicitness: per factor, a scikit-learn ``LogisticRegression()`` on all codes, standardised with
  the train points' mean and standard deviation; the macro one-vs-rest ROC-AUC of its class
  probabilities, on train and on test points; the mean over factors.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.mutual_info import binned_information
from vaebench.metrics.parallel import run_jobs


@dataclass(frozen=True)
class ModularityExplicitnessResult:
    modularity: float
    explicitness_train: float
    explicitness_test: float
    explicitness_per_factor_test: np.ndarray  # [K]


def modularity_from_mutual_info(mutual_info: np.ndarray) -> float:
    """Mean over codes of 1 - (sum of squared informations but the largest) / (largest^2 (K - 1))."""
    sq = np.square(np.asarray(mutual_info, dtype=np.float64))
    top = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = 1.0 - (sq.sum(axis=1) - top) / (top * (sq.shape[1] - 1.0))
    return float(np.where(top == 0.0, 0.0, per_code).mean())


def _explicitness(x_train, y_train, x_test, y_test) -> tuple[float, float]:
    """(train, test) macro one-vs-rest ROC-AUC of one factor's logistic regression."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import label_binarize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression().fit(x_train, y_train)

    def auc(x, y):
        onehot = label_binarize(y, classes=clf.classes_)
        if len(clf.classes_) == 2:
            return roc_auc_score(y, clf.predict_proba(x)[:, 1])
        present = onehot.any(axis=0)  # a class absent from the split has no AUC
        return roc_auc_score(onehot[:, present], clf.predict_proba(x)[:, present])

    return float(auc(x_train, y_train)), float(auc(x_test, y_test))


def modularity_explicitness(codes_train, factors_train, codes_test, factors_test, *, num_bins: int = 20,
                            n_jobs: int = 1) -> ModularityExplicitnessResult:
    """Modularity (train points) and explicitness (train and test) of codes ``[N, D]`` (D >= 2)
    with factor classes ``[N, K]``. A factor with a single class on the train points has no
    classifier and is left out of explicitness."""
    ctr, ftr, cte, fte = _inputs.split("modularity_explicitness", codes_train, factors_train, codes_test,
                                       factors_test)
    info = binned_information(ctr, ftr, num_bins=num_bins)
    mean, std = ctr.mean(axis=0), ctr.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code stays 0 instead of NaN
    xtr, xte = (ctr - mean) / std, (cte - mean) / std
    usable = [k for k in range(ftr.shape[1]) if len(np.unique(ftr[:, k])) > 1]
    fits = run_jobs([(_explicitness, (xtr, ftr[:, k], xte, fte[:, k])) for k in usable], n_jobs=n_jobs,
                    cost=[len(np.unique(ftr[:, k])) for k in usable])
    per_test = np.full(ftr.shape[1], np.nan)
    per_test[usable] = [f[1] for f in fits]
    return ModularityExplicitnessResult(modularity_from_mutual_info(info.mutual_info),
                                        float(np.mean([f[0] for f in fits])), float(np.mean([f[1] for f in fits])),
                                        per_test)
