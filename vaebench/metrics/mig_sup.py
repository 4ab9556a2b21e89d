"""MIG-sup (Li et al. 2020, as reviewed by Zaidi et al. 2020, "Measuring Disentanglement"): MIG
read along the codes instead of the factors. For each code dimension j, the gap between its two
largest normalised informations I(z_j; v_k) / H(v_k) over the factors; the score is their mean
over the code dimensions. It rewards codes that each describe one factor (modularity), where MIG
rewards factors that each live in one code (compactness).

Choices: codes binned as MIG bins them (``num_bins`` = 20 equal-width bins, disentanglement_lib's
discretizer; the review's code uses 10 bins after min-max scaling, the same rule), nats, and every
code dimension counted, collapsed ones included (they score 0 and lower the mean, as in the
review's code)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics import _inputs
from vaebench.metrics.mutual_info import binned_information


@dataclass(frozen=True)
class MIGSupResult:
    score: float
    gaps: np.ndarray  # [D] per code dimension


def mig_sup(codes, factors, *, num_bins: int = 20) -> MIGSupResult:
    """MIG-sup of ``codes`` [N, D] against factor classes ``factors`` [N, K] (K >= 2)."""
    c, f = _inputs.pair("mig_sup", "codes", codes, "factors", factors)
    if f.shape[1] < 2:
        raise ValueError(f"mig_sup: the gap over factors needs K >= 2 factors, got K = {f.shape[1]}")
    info = binned_information(c, f, num_bins=num_bins)
    normalised = info.mutual_info / info.factor_entropy[None, :]
    top = np.sort(normalised, axis=1)
    gaps = top[:, -1] - top[:, -2]
    return MIGSupResult(float(gaps.mean()), gaps)
