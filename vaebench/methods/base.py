"""What a method is: a training objective on the shared loop (``vaebench.training.loop``).

The loop asks the method for a batch's pass (``forward``; by default ``vae_pass``: encode, sample
z with the fused reparameterisation op, decode: one ``vaebench.models.Pass`` of mu, logvar, z,
analytic KL, reconstruction); a method turns that pass into the scalar the model's optimiser
minimises, and may train networks of its own beside the model (FactorVAE's discriminator,
the VampPrior's pseudo-inputs) with optimisers of its own. A method may change the model it
trains (``model_config``: an autoencoder's encoder head, a 2-D latent), its prior (``log_prior``,
``sample_prior``) and report figures of merit of its own (``merits``). Everything
a method holds is in its ``state_dict``, which the loop checkpoints and restores, so a resumed
unit computes what an uninterrupted one would. A method's randomness is a pure function of
(unit seed, step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import math

import torch
from torch import nn

from vaebench.models import VAE, Pass, VAEConfig, vae_pass


@dataclass(frozen=True)
class MethodSetup:
    """What a method may need to know about the unit it trains."""

    total_steps: int  # the unit's optimiser steps (schedules scale with the budget)
    data_size: int  # images in the training set (the minibatch-weighted estimates need it)
    latent_dim: int
    seed: int  # the unit's seed: a method's own draws are functions of (seed, step)
    device: str = "cpu"
    lr: float = 1e-4  # the model's Adam learning rate (a method's own parameters may share it)


class Method:
    """Base of every method: subclasses set the class attributes and ``loss``.

    ``name`` names it in tables and files, ``param`` is its main hyperparameter (the one the
    study sweeps) and ``study_values`` disentanglement_lib's ``unsupervised_study_v1`` grid of it.
    ``log_names`` are the extra per-step values (batch means, scalars) that ``loss`` and
    ``after_step`` return, averaged into the loss rows beside total, recon and kl.
    """

    name: ClassVar[str]
    param: ClassVar[str]
    study_values: ClassVar[tuple[float, ...]]
    log_names: ClassVar[tuple[str, ...]] = ()
    # Whether the method's state belongs to the trained model (the VampPrior's pseudo-inputs make
    # its prior) and is saved with it, rather than only in the resume checkpoints.
    keeps_state: ClassVar[bool] = False
    # The values ``param`` may take: [low, high] (high itself excluded where ``high_open``), or a
    # count (a positive integer: codebook entries, pseudo-inputs) where ``count``.
    low: ClassVar[float] = 0.0
    high: ClassVar[float] = math.inf
    high_open: ClassVar[bool] = False
    count: ClassVar[bool] = False

    def __init__(self, value: float, setup: MethodSetup):
        self.value = float(value)
        self.setup = setup
        if not self.allows(self.value):
            raise ValueError(f"{self.name}: {self.param} must be {self.allowed()}, got {value:g}")

    @classmethod
    def allows(cls, value: float) -> bool:
        if cls.count:
            return value >= 1 and value == int(value)
        return cls.low <= value and (value < cls.high if cls.high_open else value <= cls.high)

    @classmethod
    def allowed(cls) -> str:
        if cls.count:
            return "a positive integer"
        if math.isinf(cls.high):
            return f">= {cls.low:g}"
        return f"in [{cls.low:g}, {cls.high:g}{')' if cls.high_open else ']'}"

    def model_config(self, config: VAEConfig) -> VAEConfig:
        """The model this method trains, given the run's (unchanged by default)."""
        return config

    def init_model(self, model: VAE) -> None:
        """Adjusts the freshly built model in place, drawing no random numbers (nothing by default)."""

    def forward(self, model: VAE, x: torch.Tensor, step: int | None, *, impl: str, seed: int,
                offset: int) -> Pass:
        """The pass of the ``step``-th update (``None``: evaluation, the model in eval mode), with
        the Philox normals ``[offset, offset + B*D)`` of ``seed``."""
        return vae_pass(model, x, impl=impl, seed=seed, offset=offset)

    def log_prior(self, model: VAE, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` ``[B]`` of the prior the objective's divergence is measured to: N(0, I)."""
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)

    def sample_prior(self, model: VAE, n: int, dim: int, generator: torch.Generator) -> torch.Tensor | None:
        """``n`` draws from that prior (CPU, float32); None for a model without one (an autoencoder)."""
        return torch.randn(n, dim, generator=generator)

    def extra_arrays(self, model: VAE) -> dict:
        """Arrays of the method's own figures, saved with the unit's (the 2-D latent's grid)."""
        return {}

    def merits(self, model: VAE, x: torch.Tensor, *, seed: int) -> dict[str, float]:
        """The model's own figures of merit on a set of clean images ``x`` (all at once: codebook
        usage is a property of the set): none by default."""
        return {}

    def loss(self, p: Pass, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model's loss (a scalar) on the pass of the ``step``-th update (0-based), and the
        values of the ``log_names`` it computes."""
        raise NotImplementedError

    def after_step(self, p: Pass, step: int) -> dict[str, torch.Tensor]:
        """Runs after the model's optimiser step (e.g. trains an auxiliary network on the pass's
        detached codes); returns the values of the remaining ``log_names``."""
        return {}

    def modules(self) -> dict[str, nn.Module]:
        """Auxiliary networks (trained by ``after_step``), by name."""
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def state_dict(self) -> dict:
        """Every auxiliary network's and optimiser's state (empty for most methods)."""
        return {**{f"module.{k}": m.state_dict() for k, m in self.modules().items()},
                **{f"optimizer.{k}": o.state_dict() for k, o in self.optimizers().items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[f"module.{k}"])
        for k, o in self.optimizers().items():
            o.load_state_dict(state[f"optimizer.{k}"])

    def model_part(self) -> dict:
        """What of the state a ``keeps_state`` method saves with the trained model: its networks."""
        return {f"module.{k}": m.state_dict() for k, m in self.modules().items()}

    def load_model_part(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[f"module.{k}"])

    def train(self, mode: bool = True) -> "Method":
        for m in self.modules().values():
            m.train(mode)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param}={self.value:g})"
