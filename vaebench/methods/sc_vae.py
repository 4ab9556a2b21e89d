"""SC-VAE (the documents' ``001`` part 6; Xiao et al. 2023): an encoder of T unrolled ISTA steps
(learned ISTA, ``vaebench.models.heads.ListaHead``) gives sparse codes with exact zeros, which
the decoder reconstructs from. The objective is the LASSO that ISTA solves with the decoder as
its dictionary, ``recon + lambda * |z|_1``: the negative log joint of a Bernoulli decoder and a
Laplace prior on z at the code (a MAP autoencoder; no sampling, so ``kl`` is zero).
``sparsity`` is the share of exact zeros in the codes.
"""
from __future__ import annotations

import dataclasses

import torch

from vaebench.methods.autoencoders import _Autoencoder
from vaebench.models import Pass

ISTA_STEPS = 5


class SCVAE(_Autoencoder):
    name = "sc_vae"
    param = "lam"
    study_values = (0.1, 1.0, 3.0)
    log_names = ("l1", "sparsity")
    encoder_head = "ista"

    def model_config(self, config):
        return dataclasses.replace(super().model_config(config), ista_steps=ISTA_STEPS)

    def loss(self, p: Pass, step: int):
        l1 = p.z.abs().sum(1)
        return (p.recon + self.value * l1).mean(), {"l1": l1.detach().mean(),
                                                    "sparsity": (p.z.detach() == 0).float().mean()}

    @torch.no_grad()
    def merits(self, model, x, *, seed: int) -> dict[str, float]:
        code, _ = model.encode(x)
        return {"sparsity": float((code == 0).double().mean()),
                "active_per_image": float((code != 0).double().sum(1).mean())}
