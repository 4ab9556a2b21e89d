"""beta-TCVAE (Chen et al. 2018, eq. 5 with alpha = gamma = 1, as disentanglement_lib trains it):
recon + KL + (beta - 1) * TC, with the total correlation TC = E[log q(z) - sum_d log q(z_d)]
estimated on the batch by minibatch-weighted sampling:

    log q(z_j)   ~ logsumexp_i log q(z_j | x_i)        - log(N M)
    log q(z_jd)  ~ logsumexp_i log q(z_jd | x_i)      - log(N M)

for the batch's M codes z_j, its M posteriors q(. | x_i) and a training set of N images. The
pairwise log-densities are the fused ``vaebench.ops.gaussian_logdensity_lse`` (no ``[M, M, D]``
tensor). The constants add (D - 1) log(N M) to TC: no gradient, but the logged ``tc`` is then the
estimate itself rather than disentanglement_lib's shifted one.
"""
from __future__ import annotations

import math

import torch

from vaebench.methods.base import Method
from vaebench.models import Pass
from vaebench.ops import gaussian_logdensity_lse


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, data_size: int) -> torch.Tensor:
    """The minibatch-weighted estimate of TC from the batch's samples and posteriors (a scalar)."""
    joint, marginal = gaussian_logdensity_lse(z, mu, logvar)
    log_nm = math.log(data_size * z.shape[0])
    return (joint - marginal.sum(1)).mean() + (z.shape[1] - 1) * log_nm


class BetaTCVAE(Method):
    name = "beta_tcvae"
    param = "beta"
    study_values = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    log_names = ("tc",)

    def loss(self, p: Pass, step: int):
        tc = total_correlation(p.z, p.mu, p.logvar, self.setup.data_size)
        return p.recon.mean() + p.kl.mean() + (self.value - 1.0) * tc, {"tc": tc.detach()}
