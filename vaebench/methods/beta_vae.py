"""beta-VAE (Higgins et al. 2017): recon + beta * KL, optionally with beta rising linearly from
0 over a warm-up."""
from __future__ import annotations

from vaebench.methods.base import Method, MethodSetup
from vaebench.models import Pass, beta_vae_loss


class BetaVAE(Method):
    name = "beta_vae"
    param = "beta"
    study_values = (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)

    def __init__(self, value: float, setup: MethodSetup, *, warmup_steps: int = 0):
        super().__init__(value, setup)
        if warmup_steps < 0:
            raise ValueError(f"beta_vae: warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)

    def beta_at(self, step: int) -> float:
        """beta of the step-th update (0-based): a linear warm-up over ``warmup_steps``."""
        if self.warmup_steps <= 0:
            return self.value
        return self.value * min(1.0, (step + 1) / self.warmup_steps)

    def loss(self, p: Pass, step: int):
        return beta_vae_loss(p, self.beta_at(step)), {}
