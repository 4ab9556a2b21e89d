"""What the shared training loop reads: one dataclass for every experiment that trains units
(the beta-VAE grid, the methods), which extend it with their grid fields."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vaebench.models import VAEConfig
from vaebench.models.precision import PRECISIONS


@dataclass(frozen=True)
class TrainConfig:
    """Defaults follow the disentanglement literature (Higgins et al. 2017; Locatello et al.
    2019, disentanglement_lib): conv encoder/decoder, latent dim 10, Adam lr 1e-4
    (betas 0.9/0.999, eps 1e-8), batch 64, 300k steps (~26 epochs of the full grid).
    An experiment's subclass names its files (``prefix``) and the tuple fields of its grid that a
    later run may extend (``grid_fields``) and those that only pick which of its units run
    (``unit_fields``; a later run may change them but not drop a unit; see ``vaebench.experiments.grid``)."""

    prefix: ClassVar[str] = "train"
    grid_fields: ClassVar[tuple[str, ...]] = ()
    unit_fields: ClassVar[tuple[str, ...]] = ("num_seeds",)

    arch: str = "conv"  # "conv" (literature) or "mlp" (fast CPU runs)
    latent_dim: int = 10
    mlp_hidden: int = 256
    batch_size: int = 64
    lr: float = 1e-4
    epochs: int = 26  # 26 * (737,280 // 64) = 299,520 steps ~ Locatello's 300k
    steps: int | None = None  # total optimiser steps; None: epochs * (train_size // batch_size)
    # "auto": bf16 autocast where the device has native bfloat16, else fp32 (see vaebench.models.precision)
    precision: str = "fp32"
    channels_last: bool = False  # conv model and inputs in channels_last memory format
    compile: bool = False  # torch.compile the encoder and decoder
    trajectory_every: int = 0  # steps between MIG evaluations during training (0: none)
    trajectory_size: int = 10_000  # random grid images of each of those evaluations
    export_models: bool = False  # write models/<unit>.pt (weights only) beside the results
    train_size: int | None = None  # None: the full grid; else a random subset (fixed by run's seed)
    eval_size: int | None = None  # images for MIG and end recon/KL; None: the full grid
    num_bins: int = 20  # MIG histogram bins (Locatello et al. 2019)
    pca_points: int = 5000  # the document's fig 6
    num_originals: int = 8  # the document's fig 3 / 5
    traversal_steps: int = 9
    traversal_range: float = 2.5  # latent values in [-r, r] around the prior
    impl: str = "fused"  # "fused" (vaebench.ops.reparam_kl) or "eager" (same noise, plain PyTorch)
    # torch CPU threads during the run (restored afterwards); None: leave torch's setting. On a
    # CPU shared with other jobs 1 thread is far faster: an MLP step measured 0.04 s with 1 thread
    # vs 0.58 s with 2 (OpenMP threads spin-waiting on busy cores).
    num_threads: int | None = None
    data_path: str | None = None  # official dSprites .npz; None: $VAEBENCH_DSPRITES or the renderer
    eval_batch_size: int = 1024
    # The metric suite on every finished unit (<prefix>_metrics.csv): point counts as a fraction
    # of disentanglement_lib's study sizes (1: the study's; 0: no suite), and which metrics.
    suite_scale: float = 1.0
    suite_metrics: str = "all"

    def model_config(self) -> VAEConfig:
        return VAEConfig(arch=self.arch, latent_dim=self.latent_dim, mlp_hidden=self.mlp_hidden)

    def total_steps(self, train_size: int) -> int:
        return self.steps if self.steps is not None else self.epochs * (train_size // self.batch_size)


# Fields that change neither training nor a unit's own evaluation: a folder's recorded config
# may differ from a rerun's in these.
NOT_TRAINING = ("num_threads", "eval_batch_size", "suite_scale", "suite_metrics")


def validate(cfg: TrainConfig) -> None:
    """Raises ``ValueError`` naming the first field out of its range."""
    cfg.model_config()  # checks arch, latent_dim, mlp_hidden
    if cfg.impl not in ("fused", "eager"):
        raise ValueError(f"impl must be 'fused' or 'eager', got {cfg.impl!r}")
    for name in ("batch_size", "epochs", "pca_points", "num_originals", "traversal_steps", "eval_batch_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if cfg.steps is not None and cfg.steps < 1:
        raise ValueError(f"steps must be >= 1 or None, got {cfg.steps}")
    if cfg.trajectory_every < 0:
        raise ValueError(f"trajectory_every must be >= 0, got {cfg.trajectory_every}")
    if cfg.trajectory_size < 2:
        raise ValueError(f"trajectory_size must be >= 2 (MIG needs several images), got {cfg.trajectory_size}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if not 0.0 <= cfg.suite_scale <= 1.0:
        raise ValueError(f"suite_scale must lie in [0, 1] (0: no metric suite), got {cfg.suite_scale}")
    from vaebench.metrics import parse_metrics  # the suite's names; metrics never import training

    parse_metrics(cfg.suite_metrics)
