"""beta-VAE on dSprites for beta in {1, 4, 8} (REFERENCE.md §4): loss curves,
reconstructions, MIG, a PCA of the latent means and latent traversals, over seeds.

For every (beta, seed) ``run`` trains one model, evaluates it, and writes (under ``out_dir``):

- ``beta_vae_losses.csv``: beta, seed, epoch, step, total, recon, kl (training means per sample
  since the previous row: a row at every epoch end and every trajectory step; ``epoch`` is
  fractional between epoch ends), images_per_s.
- ``beta_vae_trajectory.csv`` (when ``trajectory_every`` > 0): MIG over training, every
  ``trajectory_every`` steps and at step 0, with the disentanglement_lib protocol (encoder means
  of ``trajectory_size`` random grid images, the same images for every unit, ``num_bins`` bins):
  beta, seed, step, images, seconds (training time so far), mig, gap_<factor>, active_dims, and
  recon, kl (training means since the previous row).
- ``beta_vae_mig.csv``: beta, seed, mig, gap_<factor> per varying factor, recon, kl (on the
  evaluation images, one posterior sample each), active_dims, steps, train_seconds.
- ``beta_vae_metrics.csv`` (when ``suite_scale`` > 0): the metric suite of ``vaebench.metrics`` on
  every finished unit, one row per model (``score_finished``): beta, seed, mig and gap_<factor> (the
  unit's own), info_<factor> (on the suite's i.i.d. points), then beta_vae_*, factor_vae_*, dci_*, sap, modularity, explicitness_*, the
  unsupervised scores, irs, mig_sup, dcimig, jemmig, pca_shape_knn_accuracy.
- ``beta_vae_arrays_beta<b>_seed<s>.npz``: what the figures need (originals, reconstructions,
  PCA points and their shapes, traversal images), so figures never need the models.
- ``beta_vae_config.json``: the config and ``provenance()``.
- ``beta_vae_checkpoints/beta<b>_seed<s>_<stage>.pt`` (``checkpoint_path``), stages:
  ``init`` (before the first step), ``mid`` (after ``max(1, total_steps // 2)`` steps), ``end`` (trained,
  with its history and evaluation), and ``last`` (the resume point, saved at every loss row and
  deleted once ``end`` exists). Each loads with ``vaebench.models.load_vae(path)``.
- ``models/beta<b>_seed<s>.pt`` (when ``export_models``): the trained weights alone, float32,
  small enough to commit; ``python -m vaebench evaluate DIR`` re-scores them.

Resuming: a unit with its arrays and an ``end`` checkpoint (or exported model) is never retrained;
one with a ``last`` checkpoint (written at every loss row) continues from there, trajectory
included. ``force`` gives the run a new id that its files record, so files of earlier runs count
for nothing (they are replaced as the new ones are written). A damaged file (truncated, corrupt)
gets one warning line and counts for nothing either: the unit resumes from what else it has or
trains again. Data order (per-epoch permutations
seeded by (seed, epoch)) and the Philox noise stream (offset advances by B*D per step) are pure
functions of the step, so a resumed run computes what an uninterrupted one would.

Units: each (beta, seed) is independent of the others and of what ran before it in the process
(``build_model`` seeds torch; every other draw has its own generator), so ``run(executor=...)``
may run them as Ray tasks (``vaebench.executors``) with the same numbers.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vaebench.executors import fault_point
from vaebench.models import VAE, VAEConfig, checkpoint_state, elbo_terms, load_vae
from vaebench.experiments import training
from vaebench.experiments.config import config_from_profile
from vaebench.ops import draw_seed
from vaebench.utils import allocator, io
from vaebench.utils.provenance import provenance

PREFIX = "beta_vae"
STAGES = ("init", "mid", "end", "last")
LOSS_COLUMNS = ["beta", "seed", "epoch", "step", "total", "recon", "kl", "images_per_s"]
TRAJECTORY_COLUMNS = ["beta", "seed", "step", "images", "seconds", "mig"]  # then gap_*, active_dims, recon, kl


@dataclass(frozen=True)
class BetaVAEConfig:
    """Defaults follow the disentanglement literature (Higgins et al. 2017; Locatello et al.
    2019, disentanglement_lib): conv encoder/decoder, latent dim 10, Adam lr 1e-4
    (betas 0.9/0.999, eps 1e-8), batch 64, 300k steps (~26 epochs of the full grid)."""

    arch: str = "conv"  # "conv" (literature) or "mlp" (fast CPU runs)
    latent_dim: int = 10
    mlp_hidden: int = 256
    betas: tuple[float, ...] = (1.0, 4.0, 8.0)  # the document's grid
    num_seeds: int = 3  # seeds are run(seed=s): s, s+1, ..., s+num_seeds-1
    batch_size: int = 64
    lr: float = 1e-4
    epochs: int = 26  # 26 * (737,280 // 64) = 299,520 steps ~ Locatello's 300k
    steps: int | None = None  # total optimiser steps; None: epochs * (train_size // batch_size)
    beta_warmup_steps: int = 0  # beta rises linearly from 0 over these steps (0: constant beta)
    # "auto": bf16 autocast where the device has native bfloat16, else fp32 (see experiments.training)
    precision: str = "fp32"
    channels_last: bool = False  # conv model and inputs in channels_last memory format
    compile: bool = False  # torch.compile the encoder and decoder
    trajectory_every: int = 0  # steps between MIG evaluations during training (0: none)
    trajectory_size: int = 10_000  # random grid images of each of those evaluations
    export_models: bool = False  # write models/beta<b>_seed<s>.pt (weights only) beside the results
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
    # The metric suite on every finished unit (beta_vae_metrics.csv): point counts as a fraction
    # of disentanglement_lib's study sizes (1: the study's; 0: no suite), and which metrics.
    suite_scale: float = 1.0
    suite_metrics: str = "all"

    def model_config(self) -> VAEConfig:
        return VAEConfig(arch=self.arch, latent_dim=self.latent_dim, mlp_hidden=self.mlp_hidden)

    def total_steps(self, train_size: int) -> int:
        return self.steps if self.steps is not None else self.epochs * (train_size // self.batch_size)


PROFILES: dict[str, BetaVAEConfig] = {
    # CI: a few hundred images, 3 epochs of a tiny MLP, 3 betas, 1 seed; seconds.
    "smoke": BetaVAEConfig(
        arch="mlp", latent_dim=4, mlp_hidden=32, num_seeds=1, batch_size=64, lr=1e-3, epochs=3,
        train_size=512, eval_size=512, pca_points=256, traversal_steps=5, eval_batch_size=256, num_threads=1,
        precision="auto", trajectory_every=8, trajectory_size=512, suite_scale=0.01,
        # DCI's boosted trees cost seconds per factor class even on 100 points: left to its own tests
        suite_metrics="mig,beta_vae,factor_vae,sap,modularity_explicitness,unsupervised,irs,mig_sup,dcimig,jemmig,"
                      "pca_shape",
    ),
    # The CLI default, about 7 minutes on an idle 2-core CPU (1,250 steps took 3.4 min): the MLP
    # on a 32k-image subset, 5 epochs = 2,500 steps, with lr 1e-3 (the literature's 1e-4 needs
    # ~10x the steps) so the beta trade-off is already clear; 2 seeds for a spread; MIG on 20k
    # random grid images; 1 torch thread (see num_threads).
    # Far too short to disentangle (MIG stays near 0.01-0.02): the `cpu` profile is the one that
    # reproduces the document's MIG.
    "quick": BetaVAEConfig(
        arch="mlp", latent_dim=10, mlp_hidden=256, num_seeds=2, batch_size=64, lr=1e-3, epochs=5,
        train_size=32_000, eval_size=20_000, num_threads=1, precision="auto", trajectory_every=500,
        suite_scale=0.05,
    ),
    # The literature's setup on the full grid, 3 seeds per beta, full-grid MIG: for a GPU.
    "paper": BetaVAEConfig(),
    # The document's grid reproduced on a 2-core CPU (2.5-3.7 hours by machine, two units side by side):
    # the conv model at batch 256, Adam 5e-4, constant beta, 10k steps (2.56M images); chosen from
    # the sweep in results/sweeps (batch 256 reached MIG 0.17 at beta 4 in 1.6M images, the best
    # of the breadth group) and then run over 3 seeds (results/cpu). Batch 64 with a beta warm-up,
    # the profile before it, left beta 4 bimodal over six seeds (results/cpu_bs64*).
    # Full-grid final MIG, MIG on 10,000 images every 160k images; models exported.
    # Run it two units at a time (`--jobs 2`): single-threaded units side by side use 2 cores best.
    "cpu": BetaVAEConfig(
        num_seeds=3, batch_size=256, lr=5e-4, steps=10_000, precision="auto", channels_last=True,
        trajectory_every=625, export_models=True, num_threads=1,
    ),
    # Base of the recipe sweep (vaebench.experiments.sweep): the literature's conv model on the
    # full grid, bf16 where native, MIG on 10,000 random images every 2,500 steps (160k images).
    "sweep": BetaVAEConfig(
        num_seeds=1, lr=5e-4, steps=75_000, precision="auto", channels_last=True, trajectory_every=2500,
        eval_size=50_000, num_threads=1, suite_scale=0.0,
    ),
}


# ---- small helpers ------------------------------------------------------------


def _tag(beta: float, seed: int) -> str:
    return f"beta{beta:g}_seed{seed}"


def checkpoint_path(out_dir: str | Path, beta: float, seed: int, stage: str) -> Path:
    """Where ``run`` keeps the (beta, seed) model at ``stage`` in ``STAGES``."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return Path(out_dir) / f"{PREFIX}_checkpoints" / f"{_tag(beta, seed)}_{stage}.pt"


def arrays_path(out_dir: str | Path, beta: float, seed: int) -> Path:
    return Path(out_dir) / f"{PREFIX}_arrays_{_tag(beta, seed)}.npz"


def load_checkpoint(out_dir: str | Path, beta: float, seed: int, stage: str = "end") -> VAE:
    """The (beta, seed) model of a finished ``run`` at ``stage`` (init / mid / end), in eval mode."""
    path = checkpoint_path(out_dir, beta, seed, stage)
    if not path.exists():
        raise FileNotFoundError(f"no {stage} checkpoint for beta={beta:g}, seed={seed}: {path} (run the experiment first)")
    return load_vae(path)


def make_config(profile: str = "quick", **overrides) -> BetaVAEConfig:
    """``PROFILES[profile]`` with ``overrides`` applied (unknown names raise)."""
    cfg = config_from_profile("beta_vae", PROFILES, profile, overrides)
    _validate(cfg)
    return cfg


def _validate(cfg: BetaVAEConfig) -> None:
    cfg.model_config()  # checks arch, latent_dim, mlp_hidden
    if cfg.impl not in ("fused", "eager"):
        raise ValueError(f"impl must be 'fused' or 'eager', got {cfg.impl!r}")
    if not cfg.betas or any(b < 0 for b in cfg.betas):
        raise ValueError(f"betas must be a non-empty tuple of non-negative numbers, got {cfg.betas}")
    for name in ("num_seeds", "batch_size", "epochs", "pca_points", "num_originals", "traversal_steps", "eval_batch_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if cfg.steps is not None and cfg.steps < 1:
        raise ValueError(f"steps must be >= 1 or None, got {cfg.steps}")
    for name in ("beta_warmup_steps", "trajectory_every"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.trajectory_size < 2:
        raise ValueError(f"trajectory_size must be >= 2 (MIG needs several images), got {cfg.trajectory_size}")
    if cfg.precision not in training.PRECISIONS:
        raise ValueError(f"precision must be one of {training.PRECISIONS}, got {cfg.precision!r}")
    if not 0.0 <= cfg.suite_scale <= 1.0:
        raise ValueError(f"suite_scale must lie in [0, 1] (0: no metric suite), got {cfg.suite_scale}")
    from vaebench.metrics import parse_metrics

    parse_metrics(cfg.suite_metrics)


def _subset(n_total: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.sort(rng.choice(n_total, size=size, replace=False)).astype(np.int64)


def _batch(data, indices: np.ndarray, device: str) -> torch.Tensor:
    return torch.as_tensor(data.batch(indices)).to(device, non_blocking=True)


# ---- training -------------------------------------------------------------------


def unit_seeds(seed: int) -> tuple[int, int]:
    """(training noise seed, evaluation noise seed) of a unit: Philox keys drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return draw_seed(g), draw_seed(g)


def make_optimizer(model: VAE, cfg: BetaVAEConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)


def train_step(model, optimizer, x, beta: float, *, impl: str, seed: int, offset: int, precision: str = "fp32"):
    """One Adam step on ``x``; returns ``(terms, next_offset)`` (offset advances by B*D).
    ``precision`` is a resolved one ("fp32" or "bf16", see ``training.resolve_precision``)."""
    optimizer.zero_grad(set_to_none=True)
    with training.autocast(precision, x.device):
        terms = elbo_terms(model, x, beta, impl=impl, seed=seed, offset=offset)
    terms.loss.backward()
    optimizer.step()
    return terms, offset + x.shape[0] * model.latent_dim


def build_model(cfg: BetaVAEConfig, seed: int, device: str) -> VAE:
    """The unit's model before training: same init for every beta at a given seed (paired
    comparisons), in the memory format the config asks for, compiled if asked."""
    torch.manual_seed(seed)
    model = training.prepare_model(VAE(cfg.model_config()).to(device), cfg.arch, cfg.channels_last)
    if cfg.compile:
        model.compile()  # in place: state_dict keys stay those of the plain model
    return model


def _beta_at(cfg: BetaVAEConfig, beta: float, step: int) -> float:
    """beta of the step-th update (0-based): a linear warm-up over ``beta_warmup_steps``."""
    if cfg.beta_warmup_steps <= 0:
        return beta
    return beta * min(1.0, (step + 1) / cfg.beta_warmup_steps)


def train_unit(cfg: BetaVAEConfig, data, train_idx: np.ndarray, beta: float, seed: int, out_dir: Path,
               device: str = "cpu", progress: bool = True, probe: "Probe | None" = None,
               on_trajectory=None, run_id: str | None = None) -> tuple[VAE, list[dict], list[dict]]:
    """Trains (or resumes) the (beta, seed) model; saves init/mid/last checkpoints on the way.
    Scores ``probe`` every ``trajectory_every`` steps (``on_trajectory(rows)`` is called after
    each). Returns the trained model, its loss history and its MIG trajectory. A ``last``
    checkpoint of another ``run_id`` (a run since forced) or a damaged one is not resumed from."""
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"train_size ({len(train_idx)}) must be >= batch_size ({cfg.batch_size})")
    total_steps = cfg.total_steps(len(train_idx))
    precision = training.resolve_precision(cfg.precision, device)
    training.use_exact_fp32(precision, device)
    noise_seed, _ = unit_seeds(seed)
    score = probe is not None and cfg.trajectory_every > 0

    model = build_model(cfg, seed, device)
    optimizer = make_optimizer(model, cfg)
    step, offset, seconds, history, trajectory = 0, 0, 0.0, [], []
    last = checkpoint_path(out_dir, beta, seed, "last")
    state = _resume_state(last, run_id, device)
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        step, offset, history = state["step"], state["offset"], state["history"]
        seconds, trajectory = state.get("seconds", 0.0), state.get("trajectory", [])
    else:
        io.save_torch(checkpoint_path(out_dir, beta, seed, "init"), checkpoint_state(model, beta=beta, seed=seed, step=0))
        if score:
            trajectory.append({"beta": beta, "seed": seed, "step": 0, "images": 0, "seconds": 0.0,
                               **probe.score(model, precision), "recon": float("nan"), "kl": float("nan")})
    if score and on_trajectory:
        on_trajectory(trajectory)

    epoch_order = {}

    def make_batch(i: int) -> torch.Tensor:  # runs in the prefetch thread, one step ahead or more
        epoch, j = divmod(i, steps_per_epoch)
        if epoch not in epoch_order:  # per-epoch permutation seeded by (seed, epoch): resumable
            epoch_order.clear()
            epoch_order[epoch] = train_idx[np.random.default_rng([seed, epoch]).permutation(len(train_idx))]
        x = training.prepare_input(data.batch(epoch_order[epoch][j * cfg.batch_size:(j + 1) * cfg.batch_size]),
                                   cfg.arch, cfg.channels_last)
        return x.pin_memory() if str(device).startswith("cuda") else x

    bar = tqdm(total=total_steps, initial=step, desc=f"beta={beta:g} seed={seed}", leave=False,
               disable=not progress, unit="step")
    model.train()
    mid = max(1, total_steps // 2)
    sums, n_sum = torch.zeros(3, dtype=torch.float64, device=device), 0  # on the device: no per-step sync
    t_last = time.perf_counter()
    with training.Prefetcher(make_batch, step, total_steps) as batches:
        for x in batches:
            x = x.to(device, non_blocking=True)
            terms, offset = train_step(model, optimizer, x, _beta_at(cfg, beta, step), impl=cfg.impl,
                                       seed=noise_seed, offset=offset, precision=precision)
            sums += torch.stack([terms.loss.detach(), terms.recon.detach().mean(), terms.kl.detach().mean()]).double()
            n_sum += 1
            step += 1
            fault_point(step)  # tests: a worker killed here resumes from the last checkpoint
            bar.update(1)
            if step == mid:
                io.save_torch(checkpoint_path(out_dir, beta, seed, "mid"),
                              checkpoint_state(model, beta=beta, seed=seed, step=step))
            scored = score and (step % cfg.trajectory_every == 0 or step == total_steps)
            if step % steps_per_epoch and not scored and step != total_steps:
                continue  # loss rows and resume points at epoch ends and scoring steps
            interval = time.perf_counter() - t_last
            seconds += interval
            total, recon, kl = (sums / n_sum).tolist()
            history.append({"beta": beta, "seed": seed, "epoch": step / steps_per_epoch, "step": step,
                            "total": total, "recon": recon, "kl": kl,
                            "images_per_s": n_sum * cfg.batch_size / interval})
            if scored:
                model.eval()
                trajectory.append({"beta": beta, "seed": seed, "step": step, "images": step * cfg.batch_size,
                                   "seconds": seconds, **probe.score(model, precision), "recon": recon, "kl": kl})
                model.train()
                bar.set_postfix(loss=f"{total:.1f}", mig=f"{trajectory[-1]['mig']:.3f}")
            io.save_torch(last, checkpoint_state(model, beta=beta, seed=seed, step=step, offset=offset,
                                                 history=history, trajectory=trajectory, seconds=seconds,
                                                 optimizer_state=optimizer.state_dict(), run_id=run_id))
            if scored and on_trajectory:
                on_trajectory(trajectory)
            sums.zero_()
            n_sum = 0
            t_last = time.perf_counter()  # evaluation and checkpoint time are not training time
    bar.close()
    model.eval()
    return model, history, trajectory


_WARNED: set = set()  # damaged files already named by this process, as (path, size, mtime)


def warn_damaged(path: Path, text: str) -> None:
    """One line on stderr, that does not break a progress bar, the first time this process reads
    ``path`` damaged (a run reads a unit's files more than once: resume, then scoring)."""
    stat = path.stat()
    seen = (str(path), stat.st_size, stat.st_mtime_ns)
    if seen not in _WARNED:
        _WARNED.add(seen)
        tqdm.write(f"vaebench: warning: {text}", file=sys.stderr)


def _resume_state(last: Path, run_id: str | None, device: str) -> dict | None:
    """The ``last`` checkpoint to resume from: None where there is none, it belongs to another
    run id, or it is damaged (then one warning line names it, and the unit trains from step 0)."""
    if not last.exists():
        return None
    try:
        state = io.load_torch(last, map_location=device)
    except io.ModelFileError as e:
        warn_damaged(last, f"{e}; training from step 0 instead")
        return None
    return state if state.get("run_id") == run_id else None


# ---- evaluation -----------------------------------------------------------------


@torch.no_grad()
def encode_means(model: VAE, data, indices: np.ndarray, *, batch_size: int = 1024, device: str = "cpu",
                 precision: str = "fp32", channels_last: bool = False) -> np.ndarray:
    """Encoder means, float32 ``[len(indices), D]``, of the grid images ``indices``."""
    arch = model.config.arch
    out = []
    for start in range(0, len(indices), batch_size):
        x = training.prepare_input(_batch(data, indices[start:start + batch_size], device), arch, channels_last)
        with training.autocast(precision, device):
            mu, _ = model.encode(x)
        out.append(mu.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.latent_dim), np.float32)


def score_means(data, means: np.ndarray, indices: np.ndarray, num_bins: int) -> dict:
    """MIG, its per-factor gaps and the active dims of encoder ``means`` of the images ``indices``."""
    from vaebench.metrics import mig

    factors = np.asarray(data.index_to_factors(indices))
    names = list(data.factor_names)
    varying = [k for k, size in enumerate(data.factor_sizes) if size > 1]  # MIG is undefined for constant factors
    result = mig(means, factors[:, varying], num_bins=num_bins)
    out = {"mig": float(result.score)}
    out.update({f"gap_{names[k]}": float(g) for k, g in zip(varying, np.asarray(result.gaps))})
    # active units (Burda et al. 2016): latents whose posterior mean varies over the data
    out["active_dims"] = int((means.var(axis=0) > 0.01).sum())
    return out


@dataclass
class Probe:
    """The fixed images a unit is scored on during training (the same for every unit of a run)."""

    data: object
    indices: np.ndarray
    num_bins: int
    device: str
    channels_last: bool
    batch_size: int = 1024

    def score(self, model: VAE, precision: str) -> dict:
        means = encode_means(model, self.data, self.indices, batch_size=self.batch_size, device=self.device,
                             precision=precision, channels_last=self.channels_last)
        return score_means(self.data, means, self.indices, self.num_bins)


@torch.no_grad()
def evaluate(model: VAE, cfg: BetaVAEConfig, data, eval_idx: np.ndarray, originals: np.ndarray, beta: float,
             seed: int, device: str = "cpu") -> tuple[dict, dict]:
    """MIG, recon and KL on ``eval_idx``; and the arrays the figures need."""
    from sklearn.decomposition import PCA

    precision = training.resolve_precision(cfg.precision, device)
    _, eval_seed = unit_seeds(seed)
    mus, recon_sum, kl_sum, kl_dim_sum, offset = [], 0.0, 0.0, torch.zeros(model.latent_dim, dtype=torch.float64), 0
    for start in range(0, len(eval_idx), cfg.eval_batch_size):
        x = training.prepare_input(_batch(data, eval_idx[start:start + cfg.eval_batch_size], device), cfg.arch,
                                   cfg.channels_last)
        with training.autocast(precision, device):
            terms = elbo_terms(model, x, beta, impl=cfg.impl, seed=eval_seed, offset=offset)
        offset += x.shape[0] * model.latent_dim
        mus.append(terms.mu.float().cpu())
        recon_sum += terms.recon.double().sum().item()
        kl_sum += terms.kl.double().sum().item()
        mu, lv = terms.mu.double(), terms.logvar.double()
        kl_dim_sum += (-0.5 * (1 + lv - mu.pow(2) - lv.exp())).sum(0).cpu()
    n = len(eval_idx)
    mu_all = torch.cat(mus).numpy()
    kl_per_dim = (kl_dim_sum / n).numpy()

    factors = np.asarray(data.index_to_factors(eval_idx))
    names = list(data.factor_names)
    varying = [k for k, size in enumerate(data.factor_sizes) if size > 1]
    metrics = {"beta": beta, "seed": seed, **score_means(data, mu_all, eval_idx, cfg.num_bins),
               "recon": recon_sum / n, "kl": kl_sum / n}

    # PCA of the first pca_points latent means (eval_idx is a random draw, so these are too).
    m = min(cfg.pca_points, n)
    pca = PCA(n_components=2).fit(mu_all[:m])
    shape_k = names.index("shape") if "shape" in names else varying[0]

    x0 = training.prepare_input(_batch(data, originals, device), cfg.arch, cfg.channels_last)
    with training.autocast(precision, device):
        mu0, _ = model.encode(x0)
        recon = torch.sigmoid(model.decode(mu0).float())
    # Traversals: the first original, one latent at a time over [-r, r], dims ordered by KL.
    order = np.argsort(-kl_per_dim)
    values = torch.linspace(-cfg.traversal_range, cfg.traversal_range, cfg.traversal_steps, device=device)
    z = mu0[:1].repeat(len(order) * cfg.traversal_steps, 1).view(len(order), cfg.traversal_steps, -1)
    for row, d in enumerate(order):
        z[row, :, d] = values
    with training.autocast(precision, device):
        trav = torch.sigmoid(model.decode(z.reshape(-1, model.latent_dim)).float())
    trav = trav.view(len(order), cfg.traversal_steps, *trav.shape[-2:])

    def to_u8(t):  # probabilities as uint8 keep the arrays small
        return (t.squeeze(1) if t.dim() == 4 and t.shape[1] == 1 else t).mul(255).round().byte().cpu().numpy()

    arrays = {
        "originals": to_u8(x0), "reconstructions": to_u8(recon),
        "pca_points": pca.transform(mu_all[:m]).astype(np.float32),
        "pca_explained": pca.explained_variance_ratio_.astype(np.float32),
        "pca_shape": factors[:m, shape_k].astype(np.int64),
        "traversals": to_u8(trav), "traversal_dims": order.astype(np.int64),
        "traversal_values": values.cpu().numpy(), "kl_per_dim": kl_per_dim.astype(np.float32),
    }
    return metrics, arrays


def _train_seconds(history: list[dict], batch_size: int) -> float:
    """Training time (evaluations excluded) from the loss rows: images over images per second."""
    steps = [0] + [h["step"] for h in history]
    return float(sum((b - a) * batch_size / h["images_per_s"] for a, b, h in zip(steps, steps[1:], history)))


def _save_npz(path: Path, arrays: dict) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def model_path(out_dir: str | Path, beta: float, seed: int) -> Path:
    """Where ``run`` exports the (beta, seed) model's weights when ``export_models`` is set."""
    return Path(out_dir) / "models" / f"{_tag(beta, seed)}.pt"


def export_model(path: Path, model: VAE, **extra) -> None:
    """Weights only, float32 and contiguous (a few MB for the conv model), loadable with ``load_vae``."""
    state = checkpoint_state(model, **extra)
    state["model_state"] = {k: v.detach().float().contiguous().cpu() for k, v in state["model_state"].items()}
    io.save_torch(path, state)


# ---- the experiment ---------------------------------------------------------------


def _check_config_file(out_dir: Path, cfg: BetaVAEConfig, seeds: list[int], force: bool) -> None:
    """Refuses to mix results of different configs in one folder (unless force). The grid of
    betas x seeds may grow, so a reference run can be extended later, but not lose units."""
    path = out_dir / f"{PREFIX}_config.json"
    if force or not path.exists():
        return
    recorded = json.loads(path.read_text())
    old = recorded.get("config", {})
    new = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    ignore = {"num_threads", "eval_batch_size", "suite_scale", "suite_metrics"}  # do not change training
    diff = sorted(k for k in new if k not in ignore | {"betas", "num_seeds"} and old.get(k) != new[k])
    if not set(old.get("betas") or []) <= set(new["betas"]):
        diff.append("betas")
    if not set(recorded.get("seeds") or []) <= set(seeds):
        diff.append("seeds")
    if diff:
        raise ValueError(f"{out_dir} holds beta_vae results of another config (differs in {diff}; a run may add "
                         "betas or seeds, not drop them); use force=True or another out_dir")


# The experiment as independent units for vaebench.executors: ``units`` lists the (beta, seed)
# pairs, ``run_unit`` trains and evaluates one, ``load_finished`` reads a finished one back and
# ``merge`` writes the tables. ``run`` ties them together with the local executor or another.


@dataclass(frozen=True)
class Unit:
    """One (beta, seed) model; ``str`` is its tag, e.g. ``beta4_seed0``."""

    beta: float
    seed: int

    def __str__(self) -> str:
        return _tag(self.beta, self.seed)


@dataclass(frozen=True)
class RunSetup:
    """What every unit of one run shares: the config, the run's seed (the data draws) and the
    dSprites file resolved on the driver (None: the renderer)."""

    cfg: BetaVAEConfig
    seed: int = 0
    data_path: str | None = None
    # Marks the files this run's units write: files with another id (a run since forced) are not
    # resumed from nor taken as finished. None for folders written before run ids existed.
    run_id: str | None = None


@dataclass
class _Context:
    data: object
    train_idx: np.ndarray
    eval_idx: np.ndarray
    originals: np.ndarray
    probe: "Probe | None"


_CONTEXTS: dict = {}  # the latest run's context: a process loads the data once for all its units


def unit_context(setup: RunSetup, device: str) -> _Context:
    """The data and the index draws shared by every unit of a run (pure functions of ``setup``)."""
    key = (setup, str(device))
    if key not in _CONTEXTS:
        from vaebench.data.dsprites import load_dsprites

        cfg, seed = setup.cfg, setup.seed
        data = load_dsprites(setup.data_path)
        rng = np.random.default_rng(seed)  # one data draw shared by every (beta, seed): paired comparisons
        train_idx = _subset(len(data), cfg.train_size, rng)
        eval_idx = rng.permutation(len(data))[: cfg.eval_size] if cfg.eval_size else rng.permutation(len(data))
        originals = rng.choice(len(data), size=cfg.num_originals, replace=False)
        probe = None
        if cfg.trajectory_every:
            # Its own stream of the run's seed, so the draws above do not depend on trajectory settings.
            probe_idx = np.random.default_rng([seed, 1]).choice(len(data), size=min(cfg.trajectory_size, len(data)),
                                                                replace=False)
            probe = Probe(data, probe_idx, cfg.num_bins, device, cfg.channels_last, cfg.eval_batch_size)
        _CONTEXTS.clear()
        _CONTEXTS[key] = _Context(data, train_idx, eval_idx, originals, probe)
    return _CONTEXTS[key]


def units(cfg: BetaVAEConfig, seeds: list[int]) -> list[Unit]:
    # Seed-major: a run stopped part-way (a long profile built over several sessions) already
    # has every beta of its first seeds.
    return [Unit(b, s) for s in seeds for b in cfg.betas]


def run_unit(setup: RunSetup, unit: Unit, out_dir: Path, device: str = "cpu", *, progress: bool = False,
             on_partial=None) -> tuple[list[dict], dict, list[dict]]:
    """Trains (or resumes) and evaluates one unit; writes its checkpoints, arrays npz and exported
    model. Returns (loss history, metrics, trajectory). ``on_partial`` receives
    ``(history, None, trajectory)`` whenever the trajectory grows."""
    cfg, beta, s, out_dir = setup.cfg, unit.beta, unit.seed, Path(out_dir)
    allocator.keep_freed_memory()  # here too: a unit may run in a spawned worker or on Ray
    threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        ctx = unit_context(setup, device)
        on_trajectory = (lambda rows: on_partial(([], None, list(rows)))) if on_partial else None
        model, history, trajectory = train_unit(cfg, ctx.data, ctx.train_idx, beta, s, out_dir, device, progress,
                                                probe=ctx.probe, on_trajectory=on_trajectory, run_id=setup.run_id)
        metrics, arrays = evaluate(model, cfg, ctx.data, ctx.eval_idx, ctx.originals, beta, s, device)
    finally:
        torch.set_num_threads(threads)
    metrics.update(steps=history[-1]["step"], train_seconds=_train_seconds(history, cfg.batch_size),
                   precision=training.resolve_precision(cfg.precision, device))
    _save_npz(arrays_path(out_dir, beta, s), arrays)
    if cfg.export_models:
        # With its history, evaluation and trajectory: a committed model file marks its unit finished.
        export_model(model_path(out_dir, beta, s), model, beta=beta, seed=s, step=history[-1]["step"],
                     metrics=metrics, history=history, trajectory=trajectory, run_id=setup.run_id)
    io.save_torch(checkpoint_path(out_dir, beta, s, "end"),
                  checkpoint_state(model, beta=beta, seed=s, step=history[-1]["step"], history=history,
                                   trajectory=trajectory, metrics=metrics, run_id=setup.run_id))
    checkpoint_path(out_dir, beta, s, "last").unlink(missing_ok=True)
    return history, metrics, trajectory


def load_finished(setup: RunSetup, unit: Unit, out_dir: Path):
    """(history, metrics, trajectory) of a unit of this run (``setup.run_id``) with its arrays and
    an ``end`` checkpoint or an exported model file (which a committed reference run keeps
    instead), and its exported model where the config exports one; else None. A damaged file
    gets one warning line and never counts."""
    if not _arrays_readable(arrays_path(out_dir, unit.beta, unit.seed)):
        return None
    end, exported = (_finished_state(p, setup.run_id) for p in (checkpoint_path(out_dir, unit.beta, unit.seed, "end"),
                                                                 model_path(out_dir, unit.beta, unit.seed)))
    if setup.cfg.export_models and exported is None:
        return None  # missing, damaged or of an earlier run: the unit is done again
    state = end or exported
    return None if state is None else (state["history"], state["metrics"], state.get("trajectory", []))


def _arrays_readable(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path) as arrays:
            for name in arrays.files:
                arrays[name]  # reads and CRC-checks each member
    except Exception as e:  # noqa: BLE001 - a damaged archive fails in many ways (BadZipFile, zlib, EOF...)
        reason = " ".join(str(e).split()) or type(e).__name__
        warn_damaged(path, f"{path}: a truncated or corrupt arrays file ({reason}); its unit is done again")
        return False
    return True


def _finished_state(path: Path, run_id: str | None) -> dict | None:
    """``path`` (end checkpoint or exported model) as a finished unit of run ``run_id``, or None."""
    if not path.exists():
        return None
    try:
        state = io.load_torch(path)
    except io.ModelFileError as e:
        warn_damaged(path, f"{e}; not taken for a finished unit")
        return None
    finished = isinstance(state, dict) and "history" in state and "metrics" in state
    return state if finished and state.get("run_id") == run_id else None


def merge(setup: RunSetup, out_dir: Path, results: list) -> None:
    """Writes the losses, MIG and trajectory tables from ``[(unit, (history, metrics, trajectory))]``
    in unit order; a partial result (metrics None) adds only its trajectory rows."""
    out_dir = Path(out_dir)
    finished = [r for _, r in results if r[1] is not None]
    traj_rows = [row for _, r in results for row in r[2]]
    if finished:
        io.write_csv(out_dir / f"{PREFIX}_losses.csv",
                     pd.DataFrame([row for r in finished for row in r[0]], columns=LOSS_COLUMNS))
        io.write_csv(out_dir / f"{PREFIX}_mig.csv", pd.DataFrame([r[1] for r in finished]))
    if traj_rows:
        io.write_csv(out_dir / f"{PREFIX}_trajectory.csv", pd.DataFrame(traj_rows))


def _run_id(out_dir: Path, force: bool) -> str | None:
    """The folder's recorded run id (None where it predates them); a new one for a new folder or
    a forced run."""
    path = out_dir / f"{PREFIX}_config.json"
    if path.exists() and not force:
        return json.loads(path.read_text()).get("run_id")
    return uuid.uuid4().hex


def experiment(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
               **overrides):
    """The ``vaebench.executors.Experiment`` of ``run`` (config checked and recorded in ``out_dir``).
    ``force`` starts a new run id, so every unit is trained again whatever the folder holds; its
    files are replaced (atomically) only as the new ones are written, and a forced run that is
    interrupted resumes as itself."""
    from vaebench.data.dsprites import ENV_VAR
    from vaebench.executors import Experiment

    cfg = make_config(profile, **overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _WARNED.clear()  # each run names the damaged files it finds
    seeds = [seed + i for i in range(cfg.num_seeds)]
    _check_config_file(out_dir, cfg, seeds, force)
    data_path = cfg.data_path or os.environ.get(ENV_VAR) or None
    setup = RunSetup(cfg, seed, str(Path(data_path).resolve()) if data_path else None, _run_id(out_dir, force))
    unit_context(setup, device)  # a bad data file fails here, once; the local units reuse it
    io.write_json(out_dir / f"{PREFIX}_config.json",
                  {"profile": profile, "config": dataclasses.asdict(cfg), "seeds": seeds,
                   "precision": training.resolve_precision(cfg.precision, device), "run_id": setup.run_id,
                   "provenance": provenance(device=device)})
    todo = units(cfg, seeds)
    return Experiment("beta-VAE", setup, todo, run_unit, load_finished, merge, out_dir, device)


def score_finished(exp, progress: bool = True) -> None:
    """The metric suite on every finished unit of ``exp`` into ``beta_vae_metrics.csv``: one row
    per model (beta, seed, the unit's own MIG and gaps, then every suite column), written as each
    model finishes; a model whose weights and settings already have a row is not scored again.
    Every unit is scored on the same draws (the run's seed): paired comparisons across betas."""
    from vaebench.experiments import scoring
    from vaebench.metrics import SuiteSizes, parse_metrics

    setup, out_dir = exp.config, Path(exp.out_dir)
    cfg = setup.cfg
    if cfg.suite_scale == 0:
        return
    entries = []
    for unit in exp.units:
        finished = load_finished(setup, unit, out_dir)
        path = next((p for p in (checkpoint_path(out_dir, unit.beta, unit.seed, "end"),
                                 model_path(out_dir, unit.beta, unit.seed))
                     if _finished_state(p, setup.run_id) is not None), None)  # not a damaged one
        if finished is None or path is None:
            continue
        metrics = finished[1]
        entries.append({"path": path, "unit": str(unit), "beta": unit.beta, "seed": unit.seed,
                        **{k: v for k, v in metrics.items() if k == "mig" or k.startswith("gap_")}})
    if not entries:
        return
    # The unit's own MIG and gaps are kept; the suite's MIG pass (on its i.i.d. points) adds info_<factor>.
    wanted = list(parse_metrics(cfg.suite_metrics))
    sizes = SuiteSizes(num_bins=cfg.num_bins).scaled(cfg.suite_scale)
    precision = training.resolve_precision("fp32", exp.device)
    scoring.score_files(entries, unit_context(setup, exp.device).data, out_dir / f"{PREFIX}_metrics.csv",
                        settings={"metrics": wanted, "scale": cfg.suite_scale, "seed": setup.seed,
                                  "num_bins": cfg.num_bins, "precision": precision},
                        seed=setup.seed, sizes=sizes, metrics=wanted, device=exp.device, precision=precision,
                        progress=progress, key="unit")


def run(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
        progress: bool = True, executor=None, **overrides) -> None:
    """Trains and evaluates every (beta, seed) of ``profile`` into ``out_dir`` (see module doc), one
    unit after another, or with ``executor`` (see ``vaebench.executors``); then scores every
    finished unit with the metric suite (``score_finished``), also when some unit failed."""
    from vaebench.executors import UnitsFailed, run_experiment

    exp = experiment(out_dir, profile, seed=seed, force=force, device=device, **overrides)
    try:
        run_experiment(exp, executor, progress=progress)
    except UnitsFailed:
        score_finished(exp, progress)
        raise
    score_finished(exp, progress)
