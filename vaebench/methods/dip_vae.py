"""DIP-VAE-I and -II (Kumar et al. 2018, eqs. 6 and 7): recon + KL plus a penalty that pushes a
covariance of the codes towards the identity,
lambda_od * sum of squared off-diagonal entries + lambda_d * sum of (diagonal - 1)^2.

- I: the covariance of the encoder means over the batch, Cov[mu] = E[mu mu^T] - E[mu] E[mu]^T
  (the biased batch estimate); lambda_d = 10 lambda_od.
- II: Cov[mu] + E[diag(exp(logvar))], the covariance of the aggregate posterior's samples;
  lambda_d = lambda_od.
As in disentanglement_lib, recon and KL enter as batch means.
"""
from __future__ import annotations

import torch

from vaebench.methods.base import Method, MethodSetup
from vaebench.models import Pass


def mean_covariance(mu: torch.Tensor) -> torch.Tensor:
    """Cov[mu] over the batch, ``[D, D]``, dividing by B."""
    centred = mu - mu.mean(0, keepdim=True)
    return centred.T @ centred / mu.shape[0]


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1).pow(2).sum()


class _DIPVAE(Method):
    param = "lambda_od"
    study_values = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
    log_names = ("dip_penalty",)
    lambda_d_factor: float

    def __init__(self, value: float, setup: MethodSetup):
        super().__init__(value, setup)
        self.lambda_d = self.lambda_d_factor * self.value

    def covariance(self, p: Pass) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, p: Pass, step: int):
        penalty = dip_penalty(self.covariance(p), self.value, self.lambda_d)
        return p.recon.mean() + p.kl.mean() + penalty, {"dip_penalty": penalty.detach()}


class DIPVAEI(_DIPVAE):
    name = "dip_vae_i"
    lambda_d_factor = 10.0

    def covariance(self, p: Pass) -> torch.Tensor:
        return mean_covariance(p.mu)


class DIPVAEII(_DIPVAE):
    name = "dip_vae_ii"
    lambda_d_factor = 1.0

    def covariance(self, p: Pass) -> torch.Tensor:
        return mean_covariance(p.mu) + torch.diag(p.logvar.exp().mean(0))
