"""IRS, the Interventional Robustness Score (Suter et al. 2019), as disentanglement_lib computes it
(``evaluation/metrics/irs.py``; study: 10,000 points, diff_quantile 0.99, factors discretised by
the 20-bin histogram discretizer).

Constant code dimensions are dropped. For factor k and each of its values v, the
``diff_quantile`` quantile over the points with v_k = v of |z_j - E[z_j | v_k = v]| is averaged
over the values, then divided by the dimension's largest deviation from its mean,
max |z_j - E z_j|; IRS[j, k] = 1 - that. Each code scores max_k IRS[j, k]; the score is their mean
weighted by the largest deviations. ``num_active_dims`` counts the dimensions kept (the reference
writes the sum of their code values under that name, a slip not copied here).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.mutual_info import discretize


@dataclass(frozen=True)
class IRSResult:
    score: float
    num_active_dims: int
    per_code: np.ndarray  # [active D] max_k IRS[j, k]
    parents: np.ndarray  # [active D] the factor each active code is most robust to


def irs(codes, factors, *, diff_quantile: float = 0.99, num_bins: int = 20) -> IRSResult:
    """IRS of codes ``[N, D]`` with factor classes ``[N, K]``."""
    c, f = _inputs.pair("irs", "codes", codes, "factors", factors)
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"irs: diff_quantile must lie in [0, 1], got {diff_quantile}")
    f = discretize(f, num_bins=num_bins)
    z = c[:, c.var(axis=0) > 0.0]
    if z.shape[1] == 0:
        return IRSResult(0.0, 0, np.zeros(0), np.zeros(0, dtype=np.int64))
    max_dev = np.abs(z - z.mean(axis=0)).max(axis=0)
    cum = np.zeros((z.shape[1], f.shape[1]))
    for k in range(f.shape[1]):
        values = np.unique(f[:, k])
        for v in values:
            group = z[f[:, k] == v]
            cum[:, k] += np.quantile(np.abs(group - group.mean(axis=0)), diff_quantile, axis=0)
        cum[:, k] /= len(values)
    matrix = 1.0 - cum / max_dev[:, None]
    per_code = matrix.max(axis=1)
    score = np.average(per_code, weights=max_dev) if max_dev.sum() > 0 else per_code.mean()
    return IRSResult(float(score), int(z.shape[1]), per_code, matrix.argmax(axis=1))
