"""The three test functions of Mohamed et al. (JMLR 2020, §3 / fig. 2): ``(z - k)^2``,
``exp(-k z^2)`` and ``cos(k z)``.

Shared by ``gaussian_toy`` (Monte Carlo) and ``gaussian_exact`` (quadrature); here,
below both, so that ``gaussian_toy`` can import ``gaussian_exact`` without a circle.
"""
from __future__ import annotations

import torch

FUNCTIONS = ("square", "gauss", "cos")


def f(name: str, z: torch.Tensor, k: float) -> torch.Tensor:
    if name == "square":
        return (z - k) ** 2
    if name == "gauss":
        return torch.exp(-k * z**2)
    if name == "cos":
        return torch.cos(k * z)
    raise ValueError(f"function must be one of {FUNCTIONS}, got {name!r}")
