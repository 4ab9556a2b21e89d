"""The regularised autoencoders of the documents (``003``): deterministic codes, no sampling, no
KL; the loop's ``kl`` column is zero for them.

- ``denoising_ae`` (param ``noise``): trained to reconstruct the clean image from a copy with
  salt-and-pepper noise (each pixel, with probability ``noise``, replaced by a fair random bit);
  ``noise = 0`` is the plain autoencoder, the baseline of its denoising gain.
- ``sparse_ae`` (param ``beta``): a sigmoid code layer (wider than the VAEs' latent: sparsity is
  asked of activations, not of a bottleneck) and the penalty ``beta * sum_j KL(rho || rho_hat_j)``
  between Bernoulli(rho = 0.05) and Bernoulli(rho_hat_j), rho_hat_j the batch's mean activation
  of unit j.

``corrupted_recon`` is what the denoising gain compares: the clean images' BCE reconstructed from
copies at ``TEST_NOISE`` (the same corruption for every model, a VAE's read at its posterior mean).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from vaebench.methods.base import Method
from vaebench.models import Pass, ae_pass, bernoulli_log_likelihood

TEST_NOISE = 0.1  # salt-and-pepper rate of the corrupted test images
RHO = 0.05  # the sparse autoencoder's target activation (the document's value)
SPARSE_CODE_DIM = 32


def salt_and_pepper(x: torch.Tensor, rate: float, seed) -> torch.Tensor:
    """``x`` with each pixel replaced, with probability ``rate``, by a fair random bit; the draws
    are a pure function of ``seed`` (an int or a sequence of ints) and x's shape."""
    if rate <= 0:
        return x
    rng = np.random.default_rng(seed)
    hit = torch.from_numpy(rng.random(x.shape, dtype=np.float32) < rate).to(x.device)
    bits = torch.from_numpy(rng.integers(0, 2, x.shape, dtype=np.uint8)).to(x.device, x.dtype)
    return torch.where(hit, bits, x)


def bernoulli_kl(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(rho) || Bernoulli(rho_hat)), elementwise."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)  # a dead or saturated unit gives a large, finite penalty
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


class _Autoencoder(Method):
    """Shared by the autoencoders: a code-only encoder head, its code decoded as it is, no prior."""

    encoder_head = "linear"

    def model_config(self, config):
        return dataclasses.replace(config, encoder=self.encoder_head)

    def forward(self, model, x, step, *, impl, seed, offset) -> Pass:
        return ae_pass(model, x)

    def sample_prior(self, model, n, dim, generator):
        return None

    def log_prior(self, model, z):
        raise ValueError(f"{self.name}: an autoencoder has no prior")


class DenoisingAE(_Autoencoder):
    name = "denoising_ae"
    param = "noise"
    study_values = (0.0, 0.1, 0.3)
    high, high_open = 1.0, True

    def forward(self, model, x, step, *, impl, seed, offset) -> Pass:
        if step is None:  # evaluation: the clean image in, the clean image out
            return ae_pass(model, x)
        return ae_pass(model, salt_and_pepper(x, self.value, [self.setup.seed, step]), target=x)

    def loss(self, p: Pass, step: int):
        return p.recon.mean(), {}


class SparseAE(_Autoencoder):
    name = "sparse_ae"
    param = "beta"
    study_values = (0.1, 1.0, 3.0)
    log_names = ("sparsity_penalty", "mean_activation")
    encoder_head = "sigmoid"

    def model_config(self, config):
        return dataclasses.replace(super().model_config(config), latent_dim=SPARSE_CODE_DIM)

    def init_model(self, model):
        # The code starts at the target activation, where the penalty and its gradient vanish: from
        # 0.5, its push on every unit is the only steady gradient while the codes still carry nothing
        # (the conv backbone's h barely varies across images at init), and Adam's full-size steps on
        # it killed the backbone's ReLUs (every code constant, the mean image) on the conv recipe.
        with torch.no_grad():
            model.head[0].bias.fill_(math.log(RHO / (1 - RHO)))

    def loss(self, p: Pass, step: int):
        rho_hat = p.z.float().mean(0)
        penalty = bernoulli_kl(RHO, rho_hat).sum()
        return p.recon.mean() + self.value * penalty, {"sparsity_penalty": penalty.detach(),
                                                       "mean_activation": rho_hat.detach().mean()}

    @torch.no_grad()
    def merits(self, model, x, *, seed: int) -> dict[str, float]:
        code, _ = model.encode(x)
        return {"mean_activation": float(code.double().mean()),
                "sparsity": float((code < RHO).double().mean())}  # share of units below the target activation


def corrupted_recon(model, x: torch.Tensor, rate: float, seed) -> torch.Tensor:
    """Per-image BCE of the clean ``x`` reconstructed from a salt-and-pepper copy (any model: an
    autoencoder's code, a VAE's posterior mean)."""
    code, _ = model.encode(salt_and_pepper(x, rate, seed))
    return -bernoulli_log_likelihood(model.decode(code), x)
