"""FactorVAE (Kim & Mnih 2018, eq. 2): recon + KL + gamma * TC, where the total correlation is
read from a discriminator trained to tell the batch's codes z from codes whose every dimension is
permuted independently across the batch (samples of the product of the marginals):
TC ~ E[logit_real(z) - logit_permuted(z)].

As in disentanglement_lib: the discriminator is 6 layers of 1,000 leaky-ReLU units (slope 0.2)
with 2 logits, it has its own Adam (lr 1e-4, betas 0.5/0.9), and both updates use the same pass
(the model's step first, then the discriminator's, on the detached codes, with the discriminator's
weights as the model's loss saw them). The permutations are drawn from (unit seed, step), so a
resumed run draws what an uninterrupted one would.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaebench.methods.base import Method, MethodSetup
from vaebench.models import Pass


def discriminator(latent_dim: int, hidden: int = 1000, layers: int = 6) -> nn.Module:
    blocks, width = [], latent_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, 2))


def permute_dims(z: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each column of ``z`` permuted independently across the batch (one draw per column)."""
    b, d = z.shape
    index = torch.as_tensor(np.stack([rng.permutation(b) for _ in range(d)], axis=1), device=z.device)
    return torch.gather(z, 0, index)


class FactorVAE(Method):
    name = "factor_vae"
    param = "gamma"
    study_values = (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)
    log_names = ("tc", "disc_loss", "disc_accuracy")

    def __init__(self, value: float, setup: MethodSetup, *, lr: float = 1e-4, betas=(0.5, 0.9)):
        super().__init__(value, setup)
        # Its own initialisation stream: the model's init stays the one every method shares.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(setup.seed + 7919)
            self.disc = discriminator(setup.latent_dim).to(setup.device)
        self.disc_optimizer = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=tuple(betas), eps=1e-8)

    def modules(self):
        return {"discriminator": self.disc}

    def optimizers(self):
        return {"discriminator": self.disc_optimizer}

    def permuted(self, z: torch.Tensor, step: int) -> torch.Tensor:
        return permute_dims(z, np.random.default_rng([self.setup.seed, step, 1]))

    def loss(self, p: Pass, step: int):
        logits = self.disc(p.z).float()
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return p.recon.mean() + p.kl.mean() + self.value * tc, {"tc": tc.detach()}

    def after_step(self, p: Pass, step: int):
        z = p.z.detach()
        real, fake = self.disc(z).float(), self.disc(self.permuted(z, step)).float()
        # Class 0: codes of the batch; class 1: permuted codes (disentanglement_lib's labels).
        zeros = torch.zeros(len(z), dtype=torch.long, device=z.device)
        loss = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(fake, zeros + 1))
        self.disc_optimizer.zero_grad(set_to_none=True)  # also drops the model loss's gradients
        loss.backward()
        self.disc_optimizer.step()
        accuracy = 0.5 * ((real.argmax(1) == 0).float().mean() + (fake.argmax(1) == 1).float().mean())
        return {"disc_loss": loss.detach(), "disc_accuracy": accuracy.detach()}
