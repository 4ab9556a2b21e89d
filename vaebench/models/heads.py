"""The last encoder layer of the autoencoders: what turns the backbone's hidden activations
``h`` ``[B, width]`` into a code ``[B, D]`` when the model has no Gaussian posterior.

- ``linear``: ``W h + b`` (the plain and the denoising autoencoder);
- ``sigmoid``: ``sigmoid(W h + b)``, activations in (0, 1) whose batch means the sparse
  autoencoder's penalty ``sum_j KL(rho || rho_hat_j)`` reads;
- ``ista``: ``T`` unrolled ISTA steps (Gregor & LeCun's learned ISTA), the SC-VAE's encoder:
  ``z_0 = S_theta(W h)``, ``z_{t+1} = S_theta(W h + G z_t)``, with ``S_theta(u) = sign(u) max(|u| -
  theta, 0)`` the soft threshold. ISTA for the LASSO ``min_z |h - A z|^2 / 2 + lambda |z|_1`` has
  ``W = A^T / L``, ``G = I - A^T A / L`` and ``theta = lambda / L``; here all three are learned
  (``theta`` per dimension, kept positive by a softplus), so the codes have exact zeros;
- ``vq``: vector quantisation (van den Oord et al. 2017) of ``S = D / C`` slots: ``z_e = W h``
  cut into S vectors of C dims, each replaced by its nearest of K codebook vectors; gradients pass
  straight through (``z_e + sg(z_q - z_e)``), the codebook and commitment losses come from
  ``quantize``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


THETA_INIT = 0.01  # the ISTA head's initial threshold


def soft_threshold(u: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``sign(u) * max(|u| - theta, 0)``: the proximal map of ``theta * |.|_1`` (exact zeros)."""
    return torch.sign(u) * F.relu(u.abs() - theta)


class ListaHead(nn.Module):
    """``steps`` unrolled ISTA iterations with learned ``W`` (width -> D), ``G`` (D -> D) and
    per-dimension thresholds."""

    def __init__(self, width: int, dim: int, steps: int):
        super().__init__()
        self.steps = int(steps)
        self.W = nn.Linear(width, dim)
        self.G = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.G.weight)  # starts as one thresholded linear layer; learns the feedback
        # Below the scale of W h at initialisation (|W h| ~ 0.04 on the conv backbone): a threshold
        # above every input's |W h| zeroes every code, and a code that is zero for every input gets
        # no gradient, so the encoder could never learn.
        self.raw_theta = nn.Parameter(torch.full((dim,), math.log(math.expm1(THETA_INIT))))

    @property
    def theta(self) -> torch.Tensor:
        return F.softplus(self.raw_theta)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, theta = self.W(h), self.theta
        z = soft_threshold(b, theta)
        for _ in range(self.steps - 1):
            z = soft_threshold(b + self.G(z), theta)
        return z


class VQHead(nn.Module):
    def __init__(self, width: int, dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.slots, self.codebook_dim = dim // codebook_dim, codebook_dim
        self.W = nn.Linear(width, dim)
        k = codebook_size
        self.codebook = nn.Parameter(torch.empty(k, codebook_dim).uniform_(-1.0 / k, 1.0 / k))  # the paper's init

    def quantize(self, h: torch.Tensor):
        """``(z, z_e, z_q, index)``: the straight-through code ``[B, D]`` the decoder reads, the
        encoder's output and its quantisation (both ``[B, S, C]``), and the codes' indices ``[B, S]``."""
        z_e = self.W(h).float().view(h.shape[0], self.slots, self.codebook_dim)
        book = self.codebook.float()
        dist = z_e.pow(2).sum(-1, keepdim=True) - 2 * z_e @ book.t() + book.pow(2).sum(-1)  # [B, S, K]
        index = dist.argmin(-1)
        z_q = book[index]
        z = z_e + (z_q - z_e).detach()
        return z.flatten(1), z_e, z_q, index

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.quantize(h)[0]


def make_head(kind: str, width: int, dim: int, *, ista_steps: int = 5, codebook_size: int = 512,
              codebook_dim: int = 8) -> nn.Module:
    if kind == "linear":
        return nn.Linear(width, dim)
    if kind == "sigmoid":
        return nn.Sequential(nn.Linear(width, dim), nn.Sigmoid())
    if kind == "ista":
        return ListaHead(width, dim, ista_steps)
    if kind == "vq":
        return VQHead(width, dim, codebook_size, codebook_dim)
    raise ValueError(f"encoder head must be 'linear', 'sigmoid', 'ista' or 'vq', got {kind!r}")
