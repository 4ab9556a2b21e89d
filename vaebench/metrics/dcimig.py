"""DCIMIG (Sepliarskaia et al. 2019, as reviewed by Zaidi et al. 2020). Each code dimension j is
given to the factor it informs most, with the gap between its two largest informations
I(z_j; v_k) over the factors; each factor keeps the largest gap among the codes given to it (0
when none); the score is the sum of those gaps over the sum of the factor entropies. It needs a
code to be about one factor (the gap over factors) and a factor to have such a code.

Choices: codes binned as MIG bins them (20 equal-width bins), nats (the ratio does not depend on
the base)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.mutual_info import binned_information


@dataclass(frozen=True)
class DCIMIGResult:
    score: float
    gaps: np.ndarray  # [K] the best code's gap, per factor


def dcimig(codes, factors, *, num_bins: int = 20) -> DCIMIGResult:
    """DCIMIG of ``codes`` [N, D] against factor classes ``factors`` [N, K] (K >= 2)."""
    c, f = _inputs.pair("dcimig", "codes", codes, "factors", factors)
    if f.shape[1] < 2:
        raise ValueError(f"dcimig: the gap over factors needs K >= 2 factors, got K = {f.shape[1]}")
    info = binned_information(c, f, num_bins=num_bins)
    mi = info.mutual_info  # [D, K]
    top = np.sort(mi, axis=1)
    code_gap = top[:, -1] - top[:, -2]
    owner = mi.argmax(axis=1)
    gaps = np.zeros(mi.shape[1])
    np.maximum.at(gaps, owner, code_gap)
    return DCIMIGResult(float(gaps.sum() / info.factor_entropy.sum()), gaps)
