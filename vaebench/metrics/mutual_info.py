"""The binned mutual-information matrix behind MIG, modularity, the unsupervised mutual-information
score and the MIG family (MIG-sup, DCIMIG, JEMMIG): every code dimension discretised into
``num_bins`` equal-width bins over its own min..max (disentanglement_lib's histogram discretizer),
every (code, factor) joint histogram counted in one pass by the fused op
``torch.ops.vaebench.mig_histogram``, and the information quantities from the counts in float64
with scikit-learn's ``mutual_info_score`` formula (nats)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vaebench.metrics import _inputs
from vaebench.metrics.mig import _check_inputs, _entropy, _mutual_info, _numpy_edges


@dataclass(frozen=True)
class BinnedInformation:
    mutual_info: np.ndarray  # [D, K] I(z_j; v_k)
    factor_entropy: np.ndarray  # [K] H(v_k)
    code_entropy: np.ndarray  # [D] H(z_j) of the binned code
    joint_entropy: np.ndarray  # [D, K] H(z_j, v_k)


def _joint_entropy(counts: np.ndarray) -> np.ndarray:
    n = counts.sum(axis=(-2, -1), keepdims=True).astype(np.float64)
    p = counts / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=(-2, -1))


def binned_information(codes, factors, *, num_bins: int = 20) -> BinnedInformation:
    """Mutual information, entropies and joint entropies of binned ``codes`` [N, D] and integer
    ``factors`` [N, K] (numpy or torch, CPU or CUDA)."""
    lat, fac, num_classes = _check_inputs(codes, factors, num_bins)
    counts, lo, hi = torch.ops.vaebench.mig_histogram(lat, fac, int(num_bins), num_classes)
    _numpy_edges(lo.cpu(), hi.cpu(), int(num_bins))  # raises where np.histogram would
    counts = counts.cpu().numpy()
    return BinnedInformation(
        mutual_info=_mutual_info(counts),
        factor_entropy=_entropy(counts[0].sum(axis=1)),
        code_entropy=_entropy(counts[:, 0].sum(axis=2)),
        joint_entropy=_joint_entropy(counts),
    )


def discretize(codes, *, num_bins: int = 20) -> np.ndarray:
    """disentanglement_lib's histogram discretizer: bin ids 0..num_bins-1 of every column,
    ``np.digitize(x, np.histogram(x, num_bins)[1][:-1]) - 1``, int64 ``[N, D]``."""
    x = _inputs.codes("discretize", "codes", codes)
    edges = _numpy_edges(torch.from_numpy(x.min(0)), torch.from_numpy(x.max(0)), int(num_bins)).numpy()
    return np.stack([np.digitize(x[:, j], edges[j]) - 1 for j in range(x.shape[1])], axis=1)


def code_mutual_info(codes, *, num_bins: int = 20) -> np.ndarray:
    """[D, D] mutual information between the binned code dimensions (diagonal: their entropies)."""
    x = _inputs.codes("code_mutual_info", "codes", codes)
    return binned_information(x, discretize(x, num_bins=num_bins), num_bins=num_bins).mutual_info
