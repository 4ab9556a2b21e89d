"""The unsupervised scores of disentanglement_lib (``evaluation/metrics/unsupervised_metrics.py``;
study size 10,000 points), on codes alone:

- Gaussian total correlation of the code covariance C (ddof 1):
  0.5 (sum_j log C_jj - log det C), the KL of N(0, C) from the product of its marginals;
- Gaussian Wasserstein correlation: 2 tr(C) - 2 tr(sqrtm(C diag(C))) (as the reference writes it,
  ``cov * diag(cov)[:, None]``), and the same divided by tr(C);
- mutual information score: the mean over ordered pairs j != l of the binned codes' mutual
  information (20-bin histogram discretizer, counted by the fused histogram op).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.mutual_info import code_mutual_info


@dataclass(frozen=True)
class UnsupervisedResult:
    gaussian_total_correlation: float
    gaussian_wasserstein_correlation: float
    gaussian_wasserstein_correlation_norm: float
    mutual_info_score: float


def gaussian_total_correlation(cov: np.ndarray) -> float:
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    import scipy.linalg

    root = scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])
    return float(2 * np.trace(cov) - 2 * np.trace(root).real)


def unsupervised_scores(codes, *, num_bins: int = 20) -> UnsupervisedResult:
    """The three scores of codes ``[N, D]`` (D >= 2)."""
    c = _inputs.codes("unsupervised_scores", "codes", codes, min_dims=2)
    cov = np.cov(c, rowvar=False)
    wc = gaussian_wasserstein_correlation(cov)
    mi = code_mutual_info(c, num_bins=num_bins)
    np.fill_diagonal(mi, 0.0)
    d = c.shape[1]
    return UnsupervisedResult(gaussian_total_correlation(cov), wc, float(wc / np.trace(cov)),
                              float(mi.sum() / (d * d - d)))
