"""Gaussian-encoder / Bernoulli-decoder VAEs for 64x64 binary images (dSprites).

Two architectures:

- ``"conv"``: the encoder/decoder used across the disentanglement literature for
  64x64 dSprites (Higgins et al. 2017; Locatello et al. 2019, disentanglement_lib):
  four 4x4 stride-2 convolutions with 32-32-64-64 channels, a 256-unit dense
  layer, then ``2 * latent_dim`` outputs; the decoder mirrors it with transposed
  convolutions. ReLU everywhere.
- ``"mlp"``: a small fully connected model (4096 -> hidden -> 2*latent_dim and back),
  for fast CPU runs and tests.
- ``"chen"``: the fully connected model of Chen et al. 2018 (beta-TCVAE) for dSprites:
  encoder 4096-1200-1200 (ReLU), decoder 1200-1200-1200 (tanh) to 4096 logits.

The loss (``elbo_terms``) follows REFERENCE.md §2/§4 (L^B, analytic KL): per sample
``recon = -log p(x|z) = BCE-with-logits summed over pixels`` and
``loss = recon + beta * KL``. The sample ``z`` and the KL come from the fused
``vaebench.ops.reparam_kl`` op (``impl="fused"``) or from the eager reference fed the
very same Philox noise (``impl="eager"``), so both give the same numbers for a
given ``(seed, offset)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vaebench._extension import has_cuda_kernels
from vaebench.ops import philox_normal, reparam_kl, reparam_kl_eager
from vaebench.utils.io import ModelFileError, load_torch

IMAGE_SIZE = 64
ARCHS = ("conv", "mlp", "chen")
IMPLS = ("fused", "eager")
# What the encoder's last layer gives: "gaussian" a posterior (mu, logvar); the others a code only
# (autoencoders): "linear" a plain one, "sigmoid" activations in (0, 1) (the sparse autoencoder),
# "ista" a sparse one from unrolled ISTA steps (SC-VAE), "vq" codebook vectors (VQ-VAE; see
# ``vaebench.models.heads``).
ENCODERS = ("gaussian", "linear", "sigmoid", "ista", "vq")


@dataclass(frozen=True)
class VAEConfig:
    """What is needed to rebuild a model from a checkpoint."""

    arch: str = "conv"
    latent_dim: int = 10
    mlp_hidden: int = 256  # used by arch="mlp" only
    encoder: str = "gaussian"  # one of ENCODERS
    ista_steps: int = 5  # encoder="ista" only: unrolled ISTA iterations
    codebook_size: int = 512  # encoder="vq" only: K codebook vectors, of
    codebook_dim: int = 8  # ... this many dims; the code is latent_dim // codebook_dim such slots

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"VAEConfig.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"VAEConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if int(self.ista_steps) < 1:
            raise ValueError(f"VAEConfig.ista_steps must be >= 1, got {self.ista_steps}")
        if self.encoder == "vq" and (self.codebook_size < 1 or self.codebook_dim < 1
                                     or self.latent_dim % self.codebook_dim):
            raise ValueError(f"VAEConfig: a vq encoder needs codebook_size >= 1 and latent_dim a multiple of "
                             f"codebook_dim, got codebook_size {self.codebook_size}, latent_dim {self.latent_dim}, "
                             f"codebook_dim {self.codebook_dim}")
        if int(self.latent_dim) < 1:
            raise ValueError(f"VAEConfig.latent_dim must be >= 1, got {self.latent_dim}")
        if int(self.mlp_hidden) < 1:
            raise ValueError(f"VAEConfig.mlp_hidden must be >= 1, got {self.mlp_hidden}")


def _conv_encoder(latent_dim: int) -> nn.Module:
    # 64 -> 32 -> 16 -> 8 -> 4 spatially (kernel 4, stride 2, padding 1).
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        nn.Linear(256, 2 * latent_dim),
    )


def _conv_decoder(latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 256), nn.ReLU(),
        nn.Linear(256, 64 * 4 * 4), nn.ReLU(),
        nn.Unflatten(1, (64, 4, 4)),
        nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, 2, 1),
    )


def _mlp_encoder(latent_dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden), nn.ReLU(),
        nn.Linear(hidden, 2 * latent_dim),
    )


def _mlp_decoder(latent_dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, hidden), nn.ReLU(),
        nn.Linear(hidden, IMAGE_SIZE * IMAGE_SIZE),
        nn.Unflatten(1, (1, IMAGE_SIZE, IMAGE_SIZE)),
    )


def _chen_encoder(latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(IMAGE_SIZE * IMAGE_SIZE, 1200), nn.ReLU(),
        nn.Linear(1200, 1200), nn.ReLU(),
        nn.Linear(1200, 2 * latent_dim),
    )


def _chen_decoder(latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 1200), nn.Tanh(),
        nn.Linear(1200, 1200), nn.Tanh(),
        nn.Linear(1200, 1200), nn.Tanh(),
        nn.Linear(1200, IMAGE_SIZE * IMAGE_SIZE),
        nn.Unflatten(1, (1, IMAGE_SIZE, IMAGE_SIZE)),
    )


class VAE(nn.Module):
    """``encode(x) -> (mu, logvar)`` for ``x`` ``[B, 1, 64, 64]`` in [0, 1];
    ``decode(z) -> logits`` ``[B, 1, 64, 64]`` of the Bernoulli decoder.

    With a code-only ``encoder`` (an autoencoder) ``encode`` gives ``(code, None)``: the
    backbone's last hidden layer then feeds ``head`` (``vaebench.models.heads``) instead of the
    Gaussian output layer; every other weight keeps its name and shape."""

    def __init__(self, config: VAEConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = VAEConfig(**kwargs)
        elif kwargs:
            raise TypeError(f"VAE: pass either a VAEConfig or keyword fields, not both (got {sorted(kwargs)})")
        self.config = config
        d = config.latent_dim
        if config.arch == "conv":
            self.encoder, self.decoder = _conv_encoder(d), _conv_decoder(d)
        elif config.arch == "chen":
            self.encoder, self.decoder = _chen_encoder(d), _chen_decoder(d)
        else:
            self.encoder = _mlp_encoder(d, config.mlp_hidden)
            self.decoder = _mlp_decoder(d, config.mlp_hidden)
        if config.encoder != "gaussian":
            from vaebench.models.heads import make_head

            width = self.encoder[-1].in_features
            self.encoder = self.encoder[:-1]  # the backbone, up to its last hidden activation
            self.head = make_head(config.encoder, width, d, ista_steps=config.ista_steps,
                                  codebook_size=config.codebook_size, codebook_dim=config.codebook_dim)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def is_gaussian(self) -> bool:
        """Whether ``encode`` gives a posterior (mu, logvar) rather than a code only."""
        return self.config.encoder == "gaussian"

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        _check_images(x)
        h = self.encoder(x)
        if not self.is_gaussian:
            return _widen(self.head(h)), None
        mu, logvar = _widen(h).chunk(2, dim=1)  # float32 under bf16 autocast: the KL and z need it
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits at the posterior mean (deterministic)."""
        mu, _ = self.encode(x)
        return self.decode(mu)


def _widen(t: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors (autocast outputs); other dtypes unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"x must have shape [B, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {tuple(x.shape)}")


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample ``log p(x|z)`` of a Bernoulli decoder: ``-BCE(logits, x)`` summed
    over all non-batch dimensions. Shape ``[B]``."""
    if logits.shape != x.shape:
        raise ValueError(f"logits and x must have the same shape, got {tuple(logits.shape)} and {tuple(x.shape)}")
    # float32 even under bf16 autocast: a sum of 4,096 per-pixel terms needs the mantissa.
    bce = F.binary_cross_entropy_with_logits(_widen(logits), _widen(x), reduction="none")
    return -bce.flatten(1).sum(1)


def sample_latent(
    mu: torch.Tensor, logvar: torch.Tensor, *, impl: str = "fused", seed: int, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, kl)`` with ``eps`` = Philox normals of ``seed`` at ``[offset, offset + B*D)``;
    ``impl="fused"`` uses the custom op, ``"eager"`` the plain-PyTorch reference."""
    if impl == "fused":
        return reparam_kl(mu, logvar, seed=seed, offset=offset)
    if impl == "eager":
        return reparam_kl_eager(mu, logvar, philox_eps(mu, seed=seed, offset=offset))
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def philox_eps(mu: torch.Tensor, *, seed: int, offset: int = 0) -> torch.Tensor:
    """The fused ops' noise for ``mu``'s shape, as a tensor like ``mu`` (the eager references' ``eps``)."""
    # The noise is bit-identical on every device, so a build without kernels for mu's device
    # makes it on the CPU and copies it over.
    where = mu.device if mu.device.type == "cpu" or has_cuda_kernels("philox_normal_") else "cpu"
    return philox_normal(mu.shape, seed, offset, device=where).to(mu.device, mu.dtype)


class Pass(NamedTuple):
    """One encode -> sample -> decode pass over a batch: what every training objective is made of."""

    mu: torch.Tensor  # [B, D]: posterior mean, or an autoencoder's code
    logvar: torch.Tensor | None  # [B, D]; None for an autoencoder
    z: torch.Tensor  # [B, D]: reparameterised sample (an autoencoder's code)
    kl: torch.Tensor  # [B]: KL(q(z|x) || N(0, I)), analytic (zeros for an autoencoder)
    recon: torch.Tensor  # [B]: -log p(x|z), BCE summed over pixels
    div: torch.Tensor | None = None  # [B]: the objective's divergence where it is not ``kl`` (GJS)


def vae_pass(model: VAE, x: torch.Tensor, *, impl: str = "fused", seed: int, offset: int = 0) -> Pass:
    """Encodes ``x``, samples ``z`` with normals ``[offset, offset + B*D)`` of ``seed`` and decodes it.
    A caller that loops must advance ``offset`` by ``B * latent_dim`` per call so noise is never reused."""
    mu, logvar = model.encode(x)
    if logvar is None:
        raise ValueError(f"vae_pass: the model's {model.config.encoder!r} encoder has no posterior to sample; "
                         f"use ae_pass")
    z, kl = sample_latent(mu, logvar, impl=impl, seed=seed, offset=offset)
    recon = -bernoulli_log_likelihood(model.decode(z), x)
    return Pass(mu, logvar, z, kl, recon)


def ae_pass(model: VAE, x: torch.Tensor, *, target: torch.Tensor | None = None) -> Pass:
    """An autoencoder's pass: the code is decoded as it is (no sampling, ``kl`` zeros); ``recon``
    is measured against ``target`` (default ``x``; the denoising autoencoder's clean images)."""
    code, _ = model.encode(x)
    recon = -bernoulli_log_likelihood(model.decode(code), x if target is None else target)
    return Pass(code, None, code, torch.zeros_like(recon), recon)


class ElboTerms(NamedTuple):
    loss: torch.Tensor  # scalar: batch mean of recon + beta * kl (what the optimiser minimises)
    recon: torch.Tensor  # [B]: -log p(x|z), BCE summed over pixels
    kl: torch.Tensor  # [B]: KL(q(z|x) || N(0, I))
    mu: torch.Tensor  # [B, D]
    logvar: torch.Tensor  # [B, D]
    z: torch.Tensor  # [B, D]


def beta_vae_loss(p: Pass, beta: float) -> torch.Tensor:
    """The beta-VAE objective's batch mean, ``mean(recon + beta * kl)`` (REFERENCE.md §2, L^B, L = 1)."""
    return (p.recon + beta * p.kl).mean()


def elbo_terms(
    model: VAE, x: torch.Tensor, beta: float = 1.0, *, impl: str = "fused", seed: int, offset: int = 0
) -> ElboTerms:
    """The beta-VAE objective on a batch (``vae_pass`` then ``beta_vae_loss``)."""
    p = vae_pass(model, x, impl=impl, seed=seed, offset=offset)
    return ElboTerms(beta_vae_loss(p, beta), p.recon, p.kl, p.mu, p.logvar, p.z)


# ---- checkpoints ------------------------------------------------------------


def checkpoint_state(model: VAE, **extra) -> dict:
    """A picklable dict that ``load_vae`` can rebuild the model from (plus ``extra``)."""
    return {"model_config": asdict(model.config), "model_state": model.state_dict(), **extra}


def load_vae(path_or_state, map_location: str | torch.device = "cpu", *, source=None) -> VAE:
    """Rebuilds a ``VAE`` (in eval mode) from a checkpoint file or a ``checkpoint_state`` dict.

    A file is read as data only (``vaebench.utils.io.load_torch``). Anything that is not a vaebench
    model raises ``ModelFileError`` (a ``ValueError``), one line naming ``source`` (default: the
    path, or "checkpoint" for a dict) and why."""
    if isinstance(path_or_state, dict):
        state, name = path_or_state, source or "checkpoint"
    else:
        state, name = load_torch(path_or_state, map_location=map_location), source or path_or_state
    if not isinstance(state, dict) or "model_config" not in state or "model_state" not in state:
        holds = f"keys {sorted(map(str, state))}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise ModelFileError(f"{name}: not a vaebench model: it holds {holds}, a model file has "
                             f"model_config and model_state")
    config = state["model_config"]
    try:
        model = VAE(VAEConfig(**config))
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{name}: its model_config {config!r} does not build a VAE: {e}") from e
    _check_weights(model, state["model_state"], name)
    model.load_state_dict(state["model_state"])
    return model.to(map_location).eval()


def _check_weights(model: VAE, weights, name) -> None:
    """One line for weights that do not fit ``model``, instead of torch's many-line RuntimeError."""
    c = model.config
    fit = f"{name}: its weights do not fit a {c.arch} VAE with latent_dim {c.latent_dim}"
    if c.arch == "mlp":
        fit += f" and mlp_hidden {c.mlp_hidden}"
    if c.encoder != "gaussian":
        fit += f" and a {c.encoder} encoder"
    if not isinstance(weights, dict):
        raise ModelFileError(f"{fit}: model_state is a {type(weights).__name__}, not a dict of tensors")
    needed = model.state_dict()
    missing = [k for k in needed if k not in weights]
    unexpected = [k for k in weights if k not in needed]
    if missing or unexpected:
        raise ModelFileError(f"{fit}: missing {_few(missing)}, unexpected {_few(unexpected)}")
    for key, want in needed.items():
        have = weights[key]
        if not isinstance(have, torch.Tensor):
            raise ModelFileError(f"{fit}: {key} is a {type(have).__name__}, not a tensor")
        if have.shape != want.shape:
            raise ModelFileError(f"{fit}: {key} has shape {list(have.shape)} where the model needs {list(want.shape)}")


def _few(keys: list, n: int = 3) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(map(str, keys[:n])) + more
