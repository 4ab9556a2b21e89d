"""AnnealedVAE (Burgess et al. 2018, "Understanding disentangling in beta-VAE", eq. 8):
recon + gamma * |KL - C(t)|, the capacity C rising linearly from 0 to ``c_max`` over
``iteration_threshold`` steps, then held. KL is the batch mean, as in disentanglement_lib.

The study (disentanglement_lib's ``unsupervised_study_v1``) uses gamma 1000 and a threshold of
100k of its 300k steps; here the threshold is the same third of the unit's budget unless given.
"""
from __future__ import annotations

from vaebench.methods.base import Method, MethodSetup
from vaebench.models import Pass


def capacity(c_max: float, step: int, iteration_threshold: int) -> float:
    """C(step) = min(c_max, c_max * step / iteration_threshold)."""
    return min(c_max, c_max * step / iteration_threshold)


class AnnealedVAE(Method):
    name = "annealed_vae"
    param = "c_max"
    study_values = (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)
    log_names = ("capacity",)

    def __init__(self, value: float, setup: MethodSetup, *, gamma: float = 1000.0,
                 iteration_threshold: int | None = None):
        super().__init__(value, setup)
        if gamma < 0:
            raise ValueError(f"annealed_vae: gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.iteration_threshold = int(iteration_threshold or max(1, round(setup.total_steps / 3)))
        if self.iteration_threshold < 1:
            raise ValueError(f"annealed_vae: iteration_threshold must be >= 1, got {iteration_threshold}")

    def loss(self, p: Pass, step: int):
        # disentanglement_lib reads the global step before its increment: 0 on the first update.
        c = capacity(self.value, step, self.iteration_threshold)
        kl = p.kl.mean()
        loss = p.recon.mean() + self.gamma * (kl - c).abs()
        return loss, {"capacity": kl.new_tensor(c)}
