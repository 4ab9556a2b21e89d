"""Training objectives on the shared loop, one file per method (see ``base.Method``):
disentanglement_lib's six, with its definitions (``METHODS``), and the source documents' other
models (``MODELS``: GJS-VAE and its dual, VampPrior, VQ-VAE, SC-VAE, the sparse and the denoising
autoencoder, the 2-D latent VAE).

    from vaebench.methods import METHODS, make_method
    method = make_method("factor_vae", 35, MethodSetup(total_steps=10_000, data_size=737_280,
                                                       latent_dim=10, seed=0))
"""
from __future__ import annotations

from vaebench.methods.annealed_vae import AnnealedVAE
from vaebench.methods.autoencoders import DenoisingAE, SparseAE
from vaebench.methods.base import Method, MethodSetup
from vaebench.methods.beta_tcvae import BetaTCVAE
from vaebench.methods.beta_vae import BetaVAE
from vaebench.methods.dip_vae import DIPVAEI, DIPVAEII
from vaebench.methods.factor_vae import FactorVAE
from vaebench.methods.gjs_vae import GJSVAE, GJSVAEDual
from vaebench.methods.latent_grid import LatentGrid2D
from vaebench.methods.sc_vae import SCVAE
from vaebench.methods.vampprior import VampPrior
from vaebench.methods.vq_vae import VQVAE

METHODS: dict[str, type[Method]] = {m.name: m for m in (BetaVAE, AnnealedVAE, FactorVAE, DIPVAEI, DIPVAEII,
                                                        BetaTCVAE)}
MODELS: dict[str, type[Method]] = {m.name: m for m in (GJSVAE, GJSVAEDual, VampPrior, VQVAE, SCVAE, SparseAE,
                                                       DenoisingAE, LatentGrid2D)}
ALL: dict[str, type[Method]] = {**METHODS, **MODELS}


def make_method(name: str, value: float, setup: MethodSetup, **options) -> Method:
    """The method ``name`` (a key of ``METHODS`` or ``MODELS``) at ``param = value``; ``options`` go
    to its class."""
    if name not in ALL:
        raise ValueError(f"method must be one of {sorted(ALL)}, got {name!r}")
    return ALL[name](value, setup, **options)


__all__ = ["ALL", "METHODS", "MODELS", "AnnealedVAE", "BetaTCVAE", "BetaVAE", "DIPVAEI", "DIPVAEII", "DenoisingAE",
           "FactorVAE", "GJSVAE", "GJSVAEDual", "LatentGrid2D", "Method", "MethodSetup", "SCVAE", "SparseAE",
           "VQVAE", "VampPrior", "make_method"]
