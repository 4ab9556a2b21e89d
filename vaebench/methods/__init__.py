"""Training objectives on the shared loop, one file per method (see ``base.Method``):
disentanglement_lib's six, with its definitions.

    from vaebench.methods import METHODS, make_method
    method = make_method("factor_vae", 35, MethodSetup(total_steps=10_000, data_size=737_280,
                                                       latent_dim=10, seed=0))
"""
from __future__ import annotations

from vaebench.methods.annealed_vae import AnnealedVAE
from vaebench.methods.base import Method, MethodSetup
from vaebench.methods.beta_tcvae import BetaTCVAE
from vaebench.methods.beta_vae import BetaVAE
from vaebench.methods.dip_vae import DIPVAEI, DIPVAEII
from vaebench.methods.factor_vae import FactorVAE

METHODS: dict[str, type[Method]] = {m.name: m for m in (BetaVAE, AnnealedVAE, FactorVAE, DIPVAEI, DIPVAEII,
                                                        BetaTCVAE)}


def make_method(name: str, value: float, setup: MethodSetup, **options) -> Method:
    """The method ``name`` (a key of ``METHODS``) at ``param = value``; ``options`` go to its class."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name](value, setup, **options)


__all__ = ["METHODS", "AnnealedVAE", "BetaTCVAE", "BetaVAE", "DIPVAEI", "DIPVAEII", "FactorVAE", "Method",
           "MethodSetup", "make_method"]
