"""VQ-VAE (van den Oord et al. 2017; the documents' ``001`` part 6): the encoder's output, cut
into slots, is replaced by the nearest codebook vectors (``vaebench.models.heads.VQHead``), and
the decoder reconstructs from those; the loss is

    recon + |sg(z_e) - z_q|^2 + beta |z_e - sg(z_q)|^2        (beta = 0.25, the commitment)

with the reconstruction's gradient copied straight through the quantisation to z_e. On the
backbone's global bottleneck the latent is ``slots`` vectors (the run's latent_dim, 10) of
``CODEBOOK_DIM`` dims from one shared codebook of ``param`` vectors (512 in the literature); the
uniform prior over codes is not learned (no PixelCNN), so the model has no prior to sample from
and no likelihood bound here. Codebook usage: ``perplexity`` (exp of the code distribution's
entropy, at most K) and ``dead_codes`` (codes no summary image uses), over all slots.
"""
from __future__ import annotations

import dataclasses

import torch

from vaebench.methods.autoencoders import _Autoencoder
from vaebench.models import Pass, bernoulli_log_likelihood

CODEBOOK_DIM = 8
COMMITMENT = 0.25


class VQVAE(_Autoencoder):
    name = "vq_vae"
    param = "codebook_size"
    study_values = (64.0, 512.0)
    log_names = ("vq_loss",)
    encoder_head = "vq"
    count = True

    def model_config(self, config):
        return dataclasses.replace(config, encoder="vq", latent_dim=config.latent_dim * CODEBOOK_DIM,
                                   codebook_size=int(self.value), codebook_dim=CODEBOOK_DIM)

    def forward(self, model, x, step, *, impl, seed, offset) -> Pass:
        z, z_e, z_q, _ = model.head.quantize(model.encoder(x))
        recon = -bernoulli_log_likelihood(model.decode(z), x)
        # Per image: the codebook term moves the codes, the commitment term the encoder.
        vq = (z_e.detach() - z_q).pow(2).sum((1, 2)) + COMMITMENT * (z_e - z_q.detach()).pow(2).sum((1, 2))
        return Pass(z, None, z, torch.zeros_like(recon), recon, vq)

    def loss(self, p: Pass, step: int):
        return (p.recon + p.div).mean(), {"vq_loss": p.div.detach().mean()}

    @torch.no_grad()
    def merits(self, model, x, *, seed: int) -> dict[str, float]:
        _, _, _, index = model.head.quantize(model.encoder(x))
        used = torch.unique(index).numel()
        return {"perplexity": float(perplexity(index, int(self.value))), "dead_codes": float(int(self.value) - used)}


def perplexity(index: torch.Tensor, k: int) -> torch.Tensor:
    """exp(entropy) of the codes' empirical distribution over all slots of the batch."""
    p = torch.bincount(index.flatten(), minlength=k).double() / index.numel()
    return torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum())
