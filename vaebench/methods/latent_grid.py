"""The VAE with a 2-D latent of the documents' ``003`` ("Testing"): beta-VAE's objective (beta 1:
the plain ELBO) with two latent dimensions, so the whole generative model can be looked at as one
picture, its decoder over a grid of standard-normal quantiles (``extra_arrays``)."""
from __future__ import annotations

import dataclasses
from statistics import NormalDist

import numpy as np
import torch

from vaebench.methods.beta_vae import BetaVAE
from vaebench.models.vae import IMAGE_SIZE

GRID_SIZE = 15


def normal_quantile_grid(n: int) -> torch.Tensor:
    """``[n * n, 2]`` codes at the standard-normal quantiles of (i + 0.5) / n, row-major with the
    second coordinate varying fastest (the picture's rows are the first coordinate)."""
    q = torch.tensor([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)], dtype=torch.float32)
    return torch.cartesian_prod(q, q)


class LatentGrid2D(BetaVAE):
    name = "vae_2d"
    param = "beta"
    study_values = (1.0,)

    def model_config(self, config):
        return dataclasses.replace(config, latent_dim=2)

    @torch.no_grad()
    def extra_arrays(self, model) -> dict[str, np.ndarray]:
        z = normal_quantile_grid(GRID_SIZE).to(next(model.parameters()).device)
        images = torch.sigmoid(model.decode(z).float()).view(GRID_SIZE, GRID_SIZE, IMAGE_SIZE, IMAGE_SIZE)
        return {"latent_grid": images.mul(255).round().byte().cpu().numpy()}
