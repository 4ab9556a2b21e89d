"""The source documents' other models on the shared trainer, compared by numbers on the dSprites
grid: the KL VAE (beta-VAE at beta 1), the GJS-VAE and its dual over alpha, the VampPrior, VQ-VAE, SC-VAE,
the sparse and the denoising autoencoder (noise 0: the plain autoencoder) and the 2-D latent VAE
(``vaebench.methods.MODELS``). Same backbone (the run's architecture), same initial weights per
seed, same batches.

Units, files and resume are those of the methods experiment (``vaebench.experiments.grid``, prefix
``models``: ``models_losses.csv``, ``models_mig.csv``, ``models_trajectory.csv``,
``models_metrics.csv`` (the metric suite on the codes), arrays, exported models). After the units,
``models_summary.csv`` gets one row per trained model on ``summary_images`` fixed grid images:

- ``recon`` (BCE nats; at a posterior sample, an autoencoder's at its code), ``rate`` (the KL to the
  model's own prior, on the same samples: log q(z|x) - log p(z)) and ``elbo = -(recon + rate)``;
- ``iwae_nll``: the importance-weighted bound (Burda et al. 2016) with ``iwae_samples`` samples,
  ``-log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)``, an upper bound on -log p(x) that tightens with K
  (the probabilistic models only: NaN for the autoencoders);
- ``recon_corrupted``: the clean image's BCE reconstructed from a salt-and-pepper copy (rate
  ``autoencoders.TEST_NOISE``; a VAE read at its posterior mean), and ``denoising_gain`` (the
  plain autoencoder's minus this model's, of the same seed);
- ``kl_normal``: the analytic KL(q || N(0, I)) on the same images (for the models whose prior is
  N(0, I) it is the rate without its sampling noise; the VampPrior's differs from its ``rate``);
- the unit's own MIG, active units, training images/s with where and at which precision it was
  trained (``trained_on``: units of one run may come from several machines), the model's own
  figures of merit (``Method.merits``: sparsity, mean activation) and the suite's headline columns;
- ``digest`` and ``settings``: the weights and the summary settings a row was computed from (a later
  summary keeps a row whose both still match, so a growing run computes only its new units' rows).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from vaebench.experiments import grid, methods as mx
from vaebench.experiments.config import config_from_profile
from vaebench.methods import MODELS, METHODS, MethodSetup
from vaebench.methods.autoencoders import TEST_NOISE, corrupted_recon
from vaebench.models import bernoulli_log_likelihood, load_vae, precision as prec
from vaebench.ops import kl_normal
from vaebench.training import config as train_config
from vaebench.utils import io

PREFIX = "models"
REGISTRY = {"beta_vae": METHODS["beta_vae"], **MODELS}
ALPHAS = MODELS["gjs_vae"].study_values
# One setting per model (the GJS pair at alpha 0.5), the KL VAE as the baseline.
CHOSEN = ("beta_vae=1", "gjs_vae=0.5", "gjs_vae_dual=0.5", "vampprior=64", "vq_vae=512", "sc_vae=1", "sparse_ae=1",
          "denoising_ae=0", "denoising_ae=0.1", "vae_2d=1")
# The GJS authors' alpha sweep, both variants, against the KL VAE.
ALPHA_SWEEP = ("beta_vae=1", *(f"gjs_vae={a:g}" for a in ALPHAS), *(f"gjs_vae_dual={a:g}" for a in ALPHAS))
EVERYTHING = tuple(dict.fromkeys(CHOSEN + ALPHA_SWEEP))
# The models whose comparison a seed spread decides (the GJS pair against the KL VAE at one IWAE
# bound; the VampPrior's bound and MIG): every seed of the cpu run; the others one seed.
SPREAD = ("beta_vae=1", "gjs_vae=0.5", "gjs_vae_dual=0.5", "vampprior=64")


@dataclass(frozen=True)
class ModelsConfig(mx.MethodsConfig):
    """The methods grid's config (``model=value`` settings, seeds, a beta-VAE folder to reuse the KL
    VAE's units from) plus the summary's sizes and the digits run."""

    prefix: ClassVar[str] = PREFIX
    unit_fields: ClassVar[tuple[str, ...]] = ("num_seeds", "spread")

    settings: tuple[str, ...] = EVERYTHING
    num_seeds: int = 1
    # The settings trained with every one of the num_seeds seeds; the others with the first seed
    # only. None: every setting.
    spread: tuple[str, ...] | None = None
    summary_images: int = 2000  # fixed grid images of models_summary.csv
    iwae_samples: int = 100  # K of the importance-weighted bound
    # The 2-D latent VAE also trains on handwritten digits (the document's picture is of MNIST):
    # "sklearn-digits" (bundled), a local MNIST .npz, or None (not at all); into out_dir/digits.
    digits: str | None = "sklearn-digits"
    digits_steps: int = 2000


PROFILES: dict[str, ModelsConfig] = {
    # CI: the beta-VAE smoke model, one setting of every model, 1 seed; seconds.
    "smoke": mx.from_beta_vae("smoke", ModelsConfig, settings=CHOSEN, summary_images=128, iwae_samples=4,
                              digits_steps=40),
    # The beta-VAE quick profile's MLP, 1,250 steps per model, 1 seed, one setting of every model
    # (part of `run all`). results/models_quick adds the alpha sweep: --set settings=<EVERYTHING>.
    "quick": mx.from_beta_vae("quick", ModelsConfig, settings=CHOSEN, steps=1250, trajectory_every=250,
                              summary_images=1000, iwae_samples=50),
    # The beta-VAE cpu recipe (conv, batch 256, Adam 5e-4, 10k steps, bf16 where native): every model
    # and the alpha sweep, seed 0, and seeds 1-2 of SPREAD; the KL VAE's units come from results/cpu
    # (its beta 1). Seed-major, so a run stopped part-way has seed 0 of everything first.
    "cpu": mx.from_beta_vae("cpu", ModelsConfig, settings=EVERYTHING, num_seeds=3, spread=SPREAD,
                            reuse="results/cpu"),
    # The literature's 300k steps of batch 64, 3 seeds of everything: for a GPU or a cluster.
    "paper": ModelsConfig(settings=EVERYTHING, num_seeds=3, precision="auto", trajectory_every=25_000,
                          export_models=True),
}


def make_config(profile: str = "quick", **overrides) -> ModelsConfig:
    cfg = config_from_profile("models", PROFILES, profile, overrides)
    train_config.validate(cfg)
    settings = mx.parse_settings(cfg.settings, REGISTRY)
    if cfg.spread:
        parsed = mx.parse_settings(cfg.spread, REGISTRY)
        stray = [item for item, setting in zip(cfg.spread, parsed) if setting not in settings]
        if stray:
            raise ValueError(f"spread: expected settings of the run ({', '.join(cfg.settings)}), got {', '.join(stray)}")
    for name in ("num_seeds", "summary_images", "iwae_samples", "digits_steps"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    return cfg


def experiment(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
               **overrides):
    cfg = make_config(profile, **overrides)
    seeds = [seed + i for i in range(cfg.num_seeds)]
    return grid.experiment("models", cfg, units(cfg, seeds, seed), profile, out_dir, seed=seed, seeds=seeds,
                           force=force, device=device)


def units(cfg: ModelsConfig, seeds: list[int], run_seed: int = 0) -> list:
    """The methods grid's units (seed-major), the seeds after the first for ``cfg.spread`` only."""
    spread = None if cfg.spread is None else set(mx.parse_settings(cfg.spread, REGISTRY) if cfg.spread else ())
    return [u for u in mx.units(cfg, seeds, run_seed, REGISTRY)
            if spread is None or u.seed == seeds[0] or (u.method, u.setting) in spread]


def run(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
        progress: bool = True, executor=None, train: bool = True, **overrides) -> None:
    """Trains, evaluates and scores every (model, setting, seed) of ``profile`` into ``out_dir``, then
    writes ``models_summary.csv`` (see module doc); ``train=False``: scores and summarises the finished
    ones only."""
    exp = experiment(out_dir, profile, seed=seed, force=force, device=device, **overrides)
    digits = digits_experiment(exp.config.cfg, Path(out_dir) / "digits", seed=seed, force=force, device=device)
    # The digits first: a few short units, so a long grid stopped part-way already has their figure.
    for part in (digits, exp):
        if part is not None:
            try:
                grid.run(part, executor, progress, train=train)
            finally:
                summarize(part)


def digits_experiment(cfg: ModelsConfig, out_dir: Path, *, seed: int = 0, force: bool = False, device: str = "cpu"):
    """The 2-D latent VAE's units on ``cfg.digits`` (None where the run has none or no ``vae_2d``):
    the same recipe, the whole dataset for training and evaluation, ``digits_steps`` steps, no
    metric suite (its metrics are defined on dSprites' factors)."""
    def of_vae_2d(items):
        return tuple(s for s in items if s.partition("=")[0].strip() == "vae_2d")

    settings = of_vae_2d(cfg.settings)
    if not cfg.digits or not settings:
        return None
    spread = None if cfg.spread is None else of_vae_2d(cfg.spread)
    sub = dataclasses.replace(cfg, settings=settings, spread=spread, data_path=cfg.digits, steps=cfg.digits_steps,
                              train_size=None, eval_size=None, suite_scale=0.0, reuse=None, digits=None,
                              trajectory_every=min(cfg.trajectory_every, cfg.digits_steps // 4))
    seeds = [seed + i for i in range(cfg.num_seeds)]
    return grid.experiment("models (digits)", sub, units(sub, seeds, seed), "digits", out_dir, seed=seed, seeds=seeds,
                           force=force, device=device)


# ---- the summary table ----------------------------------------------------------


@torch.no_grad()
def likelihood_terms(model, method, x: torch.Tensor, k: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per image of ``x``: recon, rate and the IWAE bound's -log p(x) from ``k`` posterior samples
    (recon and rate averaged over them; ``method`` gives the prior, ``log_prior``), and the analytic
    KL to N(0, I)."""
    mu, logvar = model.encode(x)
    mu, logvar = mu.double(), logvar.double()
    std = torch.exp(0.5 * logvar)
    log_w, recon, rate = [], [], []
    for _ in range(k):
        eps = torch.randn(mu.shape, generator=generator, dtype=torch.float64).to(mu.device)
        z = mu + std * eps
        log_q = (-0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2))).sum(1)
        log_p = method.log_prior(model, z.float()).double()
        log_px = bernoulli_log_likelihood(model.decode(z.float()), x).double()
        log_w.append(log_px + log_p - log_q)
        recon.append(-log_px)
        rate.append(log_q - log_p)
    log_w = torch.stack(log_w)
    return {"recon": torch.stack(recon).mean(0), "rate": torch.stack(rate).mean(0),
            "iwae_nll": -(torch.logsumexp(log_w, 0) - math.log(k)), "kl_normal": kl_normal(mu, logvar)}


def _summary_images(exp) -> tuple[object, np.ndarray]:
    cfg, setup = exp.config.cfg, exp.config
    data = grid.unit_context(setup, exp.device).data
    rng = np.random.default_rng([setup.seed, 2])  # its own stream of the run's seed
    return data, np.sort(rng.choice(len(data), size=min(cfg.summary_images, len(data)), replace=False))


@torch.no_grad()
def model_row(exp, unit, path: Path, finished) -> dict:
    """The summary row of one finished unit (see module doc)."""
    setup, cfg, device = exp.config, exp.config.cfg, exp.device
    state = io.load_torch(path, map_location=device)
    model = load_vae(state, map_location=device, source=str(path))
    method = unit.make_method(cfg, MethodSetup(total_steps=1, data_size=1, latent_dim=model.latent_dim,
                                               seed=unit.seed, device=str(device), lr=cfg.lr))
    if method.keeps_state:
        method.load_model_part(state["method_state"])
    data, idx = _summary_images(exp)
    g = torch.Generator().manual_seed(setup.seed)
    sums: dict[str, float] = {}
    for start in range(0, len(idx), cfg.eval_batch_size):
        batch = idx[start:start + cfg.eval_batch_size]
        x = prec.prepare_input(torch.as_tensor(data.batch(batch)).to(device), cfg.arch, False)
        terms = {"recon_corrupted": corrupted_recon(model, x, TEST_NOISE, [setup.seed, 3, start])}
        if model.is_gaussian:
            terms.update(likelihood_terms(model, method, x, cfg.iwae_samples, g))
        else:
            code, _ = model.encode(x)
            terms["recon"] = -bernoulli_log_likelihood(model.decode(code), x)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.double().sum())
    n = len(idx)
    row = {k: v / n for k, v in sums.items()}
    row.update(method.merits(model, prec.prepare_input(torch.as_tensor(data.batch(idx)).to(device), cfg.arch, False),
                             seed=setup.seed))
    if "rate" in row:
        row["elbo"] = -(row["recon"] + row["rate"])
    history, metrics = finished[0], finished[1]
    return {"model": f"{unit.method}_{unit.param}{unit.setting:g}", **unit.keys(),
            "recon": row.pop("recon"), "rate": row.pop("rate", float("nan")), "elbo": row.pop("elbo", float("nan")),
            "iwae_nll": row.pop("iwae_nll", float("nan")), "iwae_samples": cfg.iwae_samples if model.is_gaussian else 0,
            "kl_normal": row.pop("kl_normal", float("nan")),
            "mig": metrics["mig"], "active_dims": metrics["active_dims"], "latent_dim": model.latent_dim,
            "images_per_s": _images_per_s(history, cfg.batch_size), "precision": metrics.get("precision"),
            "trained_on": metrics.get("trained_on"), **row, "summary_images": n,
            "model_file": str(path)}


def _images_per_s(history: list[dict], batch_size: int) -> float:
    from vaebench.training.loop import train_seconds

    seconds = train_seconds(history, batch_size)
    return history[-1]["step"] * batch_size / seconds if seconds > 0 else float("nan")


def summarize(exp) -> pd.DataFrame | None:
    """``models_summary.csv`` from every finished unit (rewritten whole, atomically), with the
    suite's columns from ``models_metrics.csv`` where that has the unit's row. A unit whose weights
    and summary settings already have a row keeps it (the IWAE bound costs minutes per model)."""
    from vaebench.experiments.scoring import settings_key
    from vaebench.metrics.suite import HEADLINE

    setup, out_dir, cfg = exp.config, Path(exp.out_dir), exp.config.cfg
    csv = out_dir / f"{PREFIX}_summary.csv"
    old = pd.read_csv(csv, dtype={"digest": str, "settings": str}) if csv.exists() else pd.DataFrame()
    if not {"unit", "digest", "settings"} <= set(old):
        old = pd.DataFrame(columns=["unit", "digest", "settings"])
    # Everything the summary's numbers depend on besides the weights (the batch size orders the draws).
    settings = settings_key(seed=setup.seed, summary_images=cfg.summary_images, iwae_samples=cfg.iwae_samples,
                            eval_batch_size=cfg.eval_batch_size, test_noise=TEST_NOISE, device=str(exp.device))
    # Merged or computed below from the current tables; the MIG column is the unit's own (model_row).
    derived = {*HEADLINE, "denoising_gain"} - {"mig"}
    rows = []
    for unit in exp.units:
        finished = grid.load_finished(setup, unit, out_dir)
        path = grid.finished_model(setup, unit, out_dir)
        if finished is None or path is None:
            continue
        digest = _digest(io.load_torch(path))
        same = old[(old["unit"] == str(unit)) & (old["digest"] == digest) & (old["settings"] == settings)]
        if len(same):
            rows.append({k: v for k, v in same.iloc[-1].items() if k not in derived})
        else:
            rows.append({"unit": str(unit), **model_row(exp, unit, path, finished), "digest": digest,
                         "settings": settings})
    if not rows:
        return None
    table = pd.DataFrame(rows)
    plain = table[(table["method"] == "denoising_ae") & (table["setting"] == 0)].set_index("seed")["recon_corrupted"]
    table["denoising_gain"] = table["seed"].map(plain) - table["recon_corrupted"]
    suite = out_dir / f"{PREFIX}_metrics.csv"
    if suite.exists():
        scored = pd.read_csv(suite)
        cols = [c for c in HEADLINE if c in scored.columns and c not in table.columns]
        table = table.merge(scored[["unit", *cols]].drop_duplicates("unit", keep="last"), on="unit", how="left")
    io.write_csv(csv, table)
    return table


def _digest(state: dict) -> str:
    """The weights digest of a model file, its method's learned part (a VampPrior's pseudo-inputs) included."""
    from vaebench.experiments.scoring import weights_digest

    method_state = {f"method.{k}": v for k, v in (state.get("method_state") or {}).items() if torch.is_tensor(v)}
    return weights_digest({**state["model_state"], **method_state})
