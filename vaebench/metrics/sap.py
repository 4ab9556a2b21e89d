"""SAP, the Separated Attribute Predictability score (Kumar et al. 2018), as disentanglement_lib
computes it for discrete factors (``evaluation/metrics/sap_score.py``; study sizes 10,000 train and
5,000 test points): for every (code j, factor k) a scikit-learn
``LinearSVC(C=0.01, class_weight="balanced")`` predicts the factor from code j alone; ``S[j, k]`` is
its test accuracy; the score is the mean over factors of the gap between the two largest ``S[:, k]``."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.parallel import run_jobs


@dataclass(frozen=True)
class SAPResult:
    score: float
    accuracy: np.ndarray  # [D, K] test accuracy of the single-code classifier


def _factor_column(x_train, y_train, x_test, y_test) -> np.ndarray:
    """Test accuracies [D] of the D single-code classifiers of one factor."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    out = np.empty(x_train.shape[1])
    for j in range(x_train.shape[1]):
        with warnings.catch_warnings():  # the reference's C = 0.01 often stops at max_iter; same model
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(x_train[:, j:j + 1], y_train)
        out[j] = np.mean(clf.predict(x_test[:, j:j + 1]) == y_test)
    return out


def sap(codes_train, factors_train, codes_test, factors_test, *, n_jobs: int = 1) -> SAPResult:
    """SAP of codes ``[N, D]`` (D >= 2) with factor classes ``[N, K]``."""
    ctr, ftr, cte, fte = _inputs.split("sap", codes_train, factors_train, codes_test, factors_test)
    if ctr.shape[1] < 2:
        raise ValueError(f"sap: the gap between the two best codes needs D >= 2, got D = {ctr.shape[1]}")
    jobs = [(_factor_column, (ctr, ftr[:, k], cte, fte[:, k])) for k in range(ftr.shape[1])]
    acc = np.stack(run_jobs(jobs, n_jobs=n_jobs), axis=1)
    top = np.sort(acc, axis=0)
    return SAPResult(float(np.mean(top[-1] - top[-2])), acc)
