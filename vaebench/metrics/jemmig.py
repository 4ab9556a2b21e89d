"""JEMMIG (Do & Tran 2020, as reviewed by Zaidi et al. 2020). For each factor v_k, with j* the code
that informs it most and j' the runner-up,

    JEMMIG_k = 1 - (H(z_j*, v_k) - I(z_j*; v_k) + I(z_j'; v_k)) / (H(v_k) + log B),

B the number of bins; the score is the mean over the factors. Unlike MIG it also asks the best
code to hold little else (the joint entropy), so a code that mixes factors scores lower.

Choices: codes binned as MIG bins them (B = 20 equal-width bins over each code's range), nats in
every term (the normaliser H(v_k) + log B is the upper bound of the unnormalised score in the same
units, so the score lies in [0, 1])."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.mutual_info import binned_information


@dataclass(frozen=True)
class JEMMIGResult:
    score: float
    per_factor: np.ndarray  # [K]


def jemmig(codes, factors, *, num_bins: int = 20) -> JEMMIGResult:
    """JEMMIG of ``codes`` [N, D] (D >= 2) against factor classes ``factors`` [N, K]."""
    c, f = _inputs.pair("jemmig", "codes", codes, "factors", factors)
    if c.shape[1] < 2:
        raise ValueError(f"jemmig: the runner-up code needs D >= 2 code dimensions, got D = {c.shape[1]}")
    info = binned_information(c, f, num_bins=num_bins)
    mi = info.mutual_info
    order = np.argsort(mi, axis=0)  # ascending over codes, per factor
    k = np.arange(mi.shape[1])
    best, second = order[-1], order[-2]
    raw = info.joint_entropy[best, k] - mi[best, k] + mi[second, k]
    per_factor = 1.0 - raw / (info.factor_entropy + np.log(num_bins))
    return JEMMIGResult(float(per_factor.mean()), per_factor)
