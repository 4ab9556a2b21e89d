"""The VampPrior VAE (Tomczak & Welling 2018): the prior is the mixture of the encoder's own
posteriors at K learned pseudo-inputs u_k,

    p(z) = 1/K sum_k q(z | u_k),

and the KL term is estimated on the sample, log q(z|x) - log p(z). log p(z) is one fused
``vaebench.ops.gaussian_logdensity_lse`` call (no [B, K, D] tensor) minus log K. The pseudo-inputs
are images (sigmoid of free logits, so in [0, 1] like the data), trained by the model's loss with
their own Adam at the model's learning rate; they are the prior, so they are saved with the model
(``keeps_state``). ``kl`` in the loss rows is that Monte Carlo rate; ``kl_normal`` the analytic KL
to N(0, I) for comparison with the other methods.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vaebench.methods.base import Method, MethodSetup
from vaebench.models import Pass, vae_pass
from vaebench.models.vae import IMAGE_SIZE
from vaebench.ops import gaussian_logdensity_lse, kl_normal


def gaussian_log_density(z, mu, logvar):
    """sum_d log N(z_d; mu_d, exp(logvar_d)) per row."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(1)


class PseudoInputs(nn.Module):
    def __init__(self, k: int, generator: torch.Generator):
        super().__init__()
        # Logits around -3 (pixels ~0.05): dSprites frames are mostly black.
        self.logits = nn.Parameter(-3.0 + 0.5 * torch.randn(k, 1, IMAGE_SIZE, IMAGE_SIZE, generator=generator))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


def vamp_log_prior(z: torch.Tensor, mu_k: torch.Tensor, logvar_k: torch.Tensor) -> torch.Tensor:
    """log (1/K sum_k N(z; mu_k, exp(logvar_k))) per row of z."""
    joint, _ = gaussian_logdensity_lse(z, mu_k, logvar_k)
    return joint - math.log(mu_k.shape[0])


class VampPrior(Method):
    name = "vampprior"
    param = "pseudo_inputs"
    study_values = (64.0, 500.0)  # 500: Tomczak & Welling's MNIST setting
    log_names = ("kl_normal",)
    keeps_state = True
    count = True

    def __init__(self, value: float, setup: MethodSetup):
        super().__init__(value, setup)
        self.pseudo = PseudoInputs(int(value), torch.Generator().manual_seed(setup.seed)).to(setup.device)
        self.opt = torch.optim.Adam(self.pseudo.parameters(), lr=setup.lr)

    def modules(self):
        return {"pseudo_inputs": self.pseudo}

    def optimizers(self):
        return {"pseudo_inputs": self.opt}

    def prior_components(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        """The K mixture components: the encoder's posteriors at the pseudo-inputs."""
        return model.encode(self.pseudo())

    def forward(self, model, x, step, *, impl, seed, offset) -> Pass:
        p = vae_pass(model, x, impl=impl, seed=seed, offset=offset)
        mu_k, logvar_k = self.prior_components(model)
        rate = gaussian_log_density(p.z, p.mu, p.logvar) - vamp_log_prior(p.z, mu_k, logvar_k)
        return p._replace(kl=rate)

    def loss(self, p: Pass, step: int):
        return (p.recon + p.kl).mean(), {"kl_normal": kl_normal(p.mu.detach(), p.logvar.detach()).mean()}

    def after_step(self, p: Pass, step: int):
        self.opt.step()  # the pseudo-inputs' gradients come from the model's backward
        self.opt.zero_grad(set_to_none=True)
        return {}

    @torch.no_grad()
    def log_prior(self, model, z: torch.Tensor) -> torch.Tensor:
        mu_k, logvar_k = self.prior_components(model)
        return vamp_log_prior(z, mu_k.to(z.dtype), logvar_k.to(z.dtype))

    @torch.no_grad()
    def sample_prior(self, model, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        mu_k, logvar_k = (t.float().cpu() for t in self.prior_components(model))
        k = torch.randint(0, mu_k.shape[0], (n,), generator=generator)
        return mu_k[k] + torch.exp(0.5 * logvar_k[k]) * torch.randn(n, dim, generator=generator)
