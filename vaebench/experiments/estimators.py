"""Estimator-variance experiments (REFERENCE.md §2-3).

Parts (each a resumable unit writing its CSVs into ``out_dir``):

1. ``gamma``: the exact Gamma toy of `001` part 4. ``estimators_gamma.csv``: bias and
   variance of score / score+baseline / reparameterization against the exact gradient
   (and the exact single-draw variance / K). ``estimators_gamma_sgd.csv``: theta per
   SGD step and chain, every estimator from the same start.
2. ``gaussian``: d/d(mu, sigma) E_{N(mu, sigma)}[f] for f = (z-k)^2, exp(-k z^2), cos(k z)
   as k and sigma vary (Mohamed et al. 2020). ``estimators_gaussian.csv``.
3-4. ``vae``: a small beta-VAE trained here with ``vaebench.training.loop.train`` (or a given
   checkpoint); at init / mid / end, the encoder gradient over R draws on one fixed
   minibatch for L in ``vae_samples``. ``estimators_vae_grad.csv`` (per estimator:
   trace of covariance, mean norm, SNR) and ``estimators_vae_elbo.csv`` (L^A vs L^B:
   variance of the ELBO estimate and of its encoder gradient).
5. ``minibatch``: logistic regression on synthetic data (exact per-example gradients):
   the N/M-scaled minibatch gradient vs the full-data gradient, and its variance vs M.
   ``estimators_minibatch.csv`` and ``estimators_minibatch_coords.csv``.
6. ``gaussian_exact``: exact single-sample variances of the pathwise, score-function,
   score-function with optimal baseline and coupled measure-valued estimators on the review
   grids of Mohamed et al. (2020, §3), mu = sigma = 1. ``estimators_gaussian_exact.csv``.
7. ``blr``: Bayesian logistic regression on the breast-cancer data (Mohamed et al. §8.3),
   SGD on the ELBO with each (estimator, control variate); ELBO, test accuracy and the
   estimator's gradient variance over training. ``estimators_blr.csv``, resumed run by run.

``estimators_config.json`` holds the config and provenance. A part whose CSVs exist is
kept unless ``force``; the VAE part also keeps finished stages and resumes training, the BLR
part its finished runs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vaebench.estimators import gamma_toy, gaussian_exact, gaussian_toy, minibatch
from vaebench.estimators import logistic_regression as blr
from vaebench.estimators.common import generator, summarize, unit_seed
from vaebench.experiments.config import config_from_profile
from vaebench.utils import io
from vaebench.utils.provenance import provenance

PREFIX = "estimators"
PARTS = ("gamma", "gaussian", "vae", "minibatch", "gaussian_exact", "blr")
PART_FILES = {
    "gamma": ("estimators_gamma.csv", "estimators_gamma_sgd.csv"),
    "gaussian": ("estimators_gaussian.csv",),
    "vae": ("estimators_vae_grad.csv", "estimators_vae_elbo.csv"),
    "minibatch": ("estimators_minibatch.csv", "estimators_minibatch_coords.csv"),
    "gaussian_exact": ("estimators_gaussian_exact.csv",),
    "blr": ("estimators_blr.csv",),
}
VAE_STAGES = ("init", "mid", "end")


@dataclass(frozen=True)
class EstimatorsConfig:
    parts: tuple[str, ...] = PARTS
    # 1. Gamma toy: theta = factor * theta*, theta* = x + 1
    gamma_xs: tuple[float, ...] = (0.5, 2.0, 5.0)
    gamma_theta_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    gamma_samples: tuple[int, ...] = (1, 10, 100, 1000)
    gamma_replicates: int = 1000
    sgd_x: float = 2.0
    sgd_theta0: float = 0.5
    sgd_steps: int = 300
    sgd_chains: int = 16
    sgd_samples: int = 1
    sgd_lr: float = 0.1
    # running-mean baseline (K = 1) of every score+baseline estimator
    ema_decay: float = 0.9
    ema_horizon: int = 30
    # 2. Gaussian toys: a k sweep at sigma = gauss_sigma, a sigma sweep at k = gauss_k
    gauss_mu: float = 1.0
    gauss_sigma: float = 1.0
    gauss_k: float = 1.0
    gauss_ks: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    gauss_sigmas: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
    gauss_samples: tuple[int, ...] = (1, 10)
    gauss_replicates: int = 2000
    # 3-4. VAE: the study, and the model trained for it when no checkpoint is given
    vae_samples: tuple[int, ...] = (1, 10, 100)
    vae_replicates: int = 16
    vae_batch: int = 16
    vae_beta: float = 1.0
    vae_arch: str = "mlp"
    vae_latent_dim: int = 10
    vae_hidden: int = 256
    vae_train_size: int = 8_000
    vae_epochs: int = 2
    vae_train_batch: int = 64
    vae_lr: float = 1e-3
    checkpoint: str | None = None  # a .pt file, or a folder with <checkpoint_tag>_<stage>.pt
    checkpoint_tag: str = "beta1_seed0"
    data_path: str | None = None  # official dSprites .npz; None: the renderer
    # 5. minibatch
    mb_n: int = 1000
    mb_dim: int = 5
    mb_sizes: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500)
    mb_replicates: int = 2000
    # 6. exact variances on the review's grids (points k per cost)
    exact_points: int = 100
    exact_mu: float = 1.0
    exact_sigma: float = 1.0
    # 7. Bayesian logistic regression: "estimator/control_variate" runs, the review's SGD setup
    blr_runs: tuple[str, ...] = ("score/none", "score/moving_average", "pathwise/none", "pathwise/delta",
                                 "measure_valued/none")
    blr_steps: int = 5000
    blr_batch: int = 32
    blr_samples: int = 50
    blr_lr: float = 1e-3
    blr_log_every: int = 50
    blr_variance_draws: int = 2000  # per-draw gradients behind each variance (on one fixed minibatch)
    blr_eval_samples: int = 1000  # posterior draws behind each ELBO / test accuracy
    blr_test_fraction: float = 0.2


PROFILES: dict[str, EstimatorsConfig] = {
    # CI: every part at toy sizes (a tiny MLP VAE on 512 images, 2 epochs); seconds.
    "smoke": EstimatorsConfig(
        gamma_xs=(2.0,), gamma_theta_factors=(0.5, 1.0), gamma_samples=(1, 10), gamma_replicates=200,
        sgd_steps=30, sgd_chains=4, gauss_ks=(3.0,), gauss_sigmas=(0.3,), gauss_samples=(1, 4),
        gauss_replicates=200, vae_samples=(1, 4), vae_replicates=4, vae_batch=4, vae_latent_dim=4,
        vae_hidden=32, vae_train_size=512, vae_epochs=2, mb_n=200, mb_sizes=(1, 10, 100), mb_replicates=200,
        exact_points=8, blr_steps=20, blr_samples=4, blr_log_every=10, blr_variance_draws=16, blr_eval_samples=32,
    ),
    # The default (24 s on an idle 2-core CPU with 16 VAE draws; ~5 minutes when 4 other jobs
    # shared it): 1000-2000 replicates for the toys, the MLP VAE (hidden 256, 10 latents)
    # trained 2 epochs (250 steps) on 8k images, 64 draws per (stage, L); the review's full k grids;
    # its logistic regression (batch 32, 50 draws, lr 1e-3) for 2,000 of its 5,000 steps, variances
    # from 500 per-draw gradients every 100 steps.
    "quick": EstimatorsConfig(vae_replicates=64, blr_steps=2000, blr_log_every=100, blr_variance_draws=500,
                              blr_eval_samples=256),
    # For a GPU: 10x the replicates, the literature's conv VAE trained on the full grid.
    "paper": EstimatorsConfig(
        gamma_replicates=10_000, sgd_chains=64, sgd_steps=1000, gauss_replicates=20_000,
        gauss_ks=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), gauss_sigmas=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
        vae_replicates=200, vae_batch=64, vae_arch="conv", vae_train_size=737_280, vae_epochs=5,
        vae_lr=1e-4, mb_n=10_000, mb_sizes=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000), mb_replicates=20_000,
    ),
}


# ---- config ---------------------------------------------------------------------


def make_config(profile: str = "quick", **overrides) -> EstimatorsConfig:
    """``PROFILES[profile]`` with ``overrides`` (unknown names raise)."""
    cfg = config_from_profile(PREFIX, PROFILES, profile, overrides)
    bad = sorted(set(cfg.parts) - set(PARTS))
    if bad:
        raise ValueError(f"parts must be a subset of {PARTS}, got unknown {bad}")
    for name in ("gamma_replicates", "gauss_replicates", "vae_replicates", "mb_replicates"):
        if getattr(cfg, name) < 2:
            raise ValueError(f"{name} must be >= 2 (variances need two replicates), got {getattr(cfg, name)}")
    if max(cfg.mb_sizes) > cfg.mb_n:
        raise ValueError(f"mb_sizes must not exceed mb_n={cfg.mb_n}, got {cfg.mb_sizes}")
    if cfg.exact_points < 2:
        raise ValueError(f"exact_points must be >= 2, got {cfg.exact_points}")
    if not cfg.exact_sigma > 0:
        raise ValueError(f"exact_sigma must be > 0, got {cfg.exact_sigma}")
    for run_name in cfg.blr_runs:
        est, _, cv = run_name.partition("/")
        try:
            blr.check_run(est, cv)
        except ValueError as e:
            raise ValueError(f"blr_runs: {run_name!r} is not 'estimator/control_variate' ({e})") from None
    for name in ("blr_steps", "blr_batch", "blr_samples", "blr_log_every", "blr_eval_samples"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.blr_variance_draws < 2:
        raise ValueError(f"blr_variance_draws must be >= 2 (variances need two draws), got {cfg.blr_variance_draws}")
    if not cfg.blr_lr > 0:
        raise ValueError(f"blr_lr must be > 0, got {cfg.blr_lr}")
    if not 0 < cfg.blr_test_fraction < 1:
        raise ValueError(f"blr_test_fraction must be in (0, 1), got {cfg.blr_test_fraction}")
    return cfg


def _check_config_file(out_dir: Path, cfg: EstimatorsConfig, seed: int, force: bool) -> None:
    """Refuses to mix results of two configs in one folder (``parts`` may differ)."""
    path = out_dir / f"{PREFIX}_config.json"
    if force or not path.exists():
        return
    old = json.loads(path.read_text()).get("config", {})
    new = json.loads(json.dumps(dataclasses.asdict(cfg)))
    # a setting the old config lacks belongs to a part added since; that part has not run here
    diff = sorted(k for k in new if k != "parts" and k in old and old[k] != new[k])
    if diff or json.loads(path.read_text()).get("seed") != seed:
        raise ValueError(f"{out_dir} holds estimator results of another config (differs in {diff or ['seed']}); "
                         "use force=True or another out_dir")


# ---- 1. Gamma toy -------------------------------------------------------------------


def run_gamma(cfg: EstimatorsConfig, seed: int, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    units = [(x, f, k, e) for x in cfg.gamma_xs for f in cfg.gamma_theta_factors
             for k in cfg.gamma_samples for e in gamma_toy.ESTIMATORS]
    for x, factor, k, est in tqdm(units, desc="gamma toy", disable=not progress, leave=False):
        theta_star = gamma_toy.optimum(x)
        theta = factor * theta_star
        g = generator(seed, "gamma", x, factor, k, est)
        grads = gamma_toy.estimate(est, x, torch.full((cfg.gamma_replicates,), theta, dtype=torch.float64), k, g,
                                   ema_decay=cfg.ema_decay, ema_horizon=cfg.ema_horizon)
        stats = summarize(grads, gamma_toy.elbo_grad(x, theta))
        rows.append({"x": x, "theta": theta, "theta_factor": factor, "theta_star": theta_star, "samples": k,
                     "estimator": est, **stats, "elbo_exact": gamma_toy.elbo(x, theta),
                     "var_exact": gamma_toy.single_draw_variance(est, x, theta) / k})
    sgd_rows = []
    for est in tqdm(gamma_toy.ESTIMATORS, desc="gamma SGD", disable=not progress, leave=False):
        path = gamma_toy.sgd(est, cfg.sgd_x, cfg.sgd_theta0, steps=cfg.sgd_steps, chains=cfg.sgd_chains,
                             samples=cfg.sgd_samples, lr=cfg.sgd_lr, generator=generator(seed, "sgd", est),
                             ema_decay=cfg.ema_decay)
        steps, chains = np.meshgrid(np.arange(path.shape[0]), np.arange(path.shape[1]), indexing="ij")
        sgd_rows.append(pd.DataFrame({"estimator": est, "x": cfg.sgd_x, "theta_star": gamma_toy.optimum(cfg.sgd_x),
                                      "samples": cfg.sgd_samples, "lr": cfg.sgd_lr, "step": steps.ravel(),
                                      "chain": chains.ravel(), "theta": path.numpy().ravel()}))
    return pd.DataFrame(rows), pd.concat(sgd_rows, ignore_index=True)


# ---- 2. Gaussian toys ---------------------------------------------------------------


def run_gaussian(cfg: EstimatorsConfig, seed: int, progress: bool) -> pd.DataFrame:
    settings = [("k", k, cfg.gauss_sigma) for k in cfg.gauss_ks] + [("sigma", cfg.gauss_k, s) for s in cfg.gauss_sigmas]
    units = [(fn, sweep, k, s, n, e) for fn in gaussian_toy.FUNCTIONS for sweep, k, s in settings
             for n in cfg.gauss_samples for e in gaussian_toy.ESTIMATORS]
    rows = []
    for fn, sweep, k, sigma, n, est in tqdm(units, desc="gaussian toys", disable=not progress, leave=False):
        g = generator(seed, "gauss", fn, sweep, k, sigma, n, est)
        grads = gaussian_toy.estimate(est, fn, cfg.gauss_mu, sigma, k, cfg.gauss_replicates, n, g,
                                      ema_decay=cfg.ema_decay, ema_horizon=cfg.ema_horizon)
        exact = gaussian_toy.exact_grad(fn, cfg.gauss_mu, sigma, k)
        var1 = gaussian_toy.single_draw_variance(est, fn, cfg.gauss_mu, sigma, k)
        for i, param in enumerate(gaussian_toy.PARAMS):
            rows.append({"function": fn, "sweep": sweep, "k": k, "mu": cfg.gauss_mu, "sigma": sigma, "samples": n,
                         "estimator": est, "param": param, **summarize(grads[:, i], exact[i]),
                         "var_exact": var1[i] / n})
    return pd.DataFrame(rows)


# ---- 3-4. VAE ---------------------------------------------------------------------------


def _vae_checkpoints(cfg: EstimatorsConfig, out_dir: Path, seed: int, device: str, progress: bool,
                     force: bool = False) -> dict[str, Path]:
    """``{stage: checkpoint path}``: the given checkpoint(s), else a model trained here (again with
    ``force``: under a fresh run id, so no earlier resume point is taken; each checkpoint is
    replaced only as its new one is written)."""
    from vaebench.experiments import beta_vae

    if cfg.checkpoint:
        path = Path(cfg.checkpoint)
        if path.is_file():
            return {"given": path}
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint must be a .pt file or a folder, got {path} (does not exist)")
        found = {}
        for stage in VAE_STAGES:
            for folder in (path, path / f"{beta_vae.PREFIX}_checkpoints"):
                if (folder / f"{cfg.checkpoint_tag}_{stage}.pt").exists():
                    found[stage] = folder / f"{cfg.checkpoint_tag}_{stage}.pt"
                    break
        if not found:
            raise FileNotFoundError(f"no {cfg.checkpoint_tag}_<{'|'.join(VAE_STAGES)}>.pt in {path} "
                                    "or its beta_vae_checkpoints/ (set checkpoint_tag or pass a .pt file)")
        return found

    train_dir = out_dir / f"{PREFIX}_vae"
    files = beta_vae.files(train_dir, cfg.vae_beta, seed)
    paths = {s: files.checkpoint(s) for s in VAE_STAGES}
    if force or not paths["end"].exists():
        from vaebench.data.dsprites import load_dsprites
        from vaebench.methods import BetaVAE, MethodSetup
        from vaebench.models import checkpoint_state
        from vaebench.training import loop

        bcfg = beta_vae.make_config(
            "quick", arch=cfg.vae_arch, latent_dim=cfg.vae_latent_dim, mlp_hidden=cfg.vae_hidden,
            betas=(cfg.vae_beta,), num_seeds=1, batch_size=cfg.vae_train_batch, lr=cfg.vae_lr,
            epochs=cfg.vae_epochs, train_size=cfg.vae_train_size, data_path=cfg.data_path)
        data = load_dsprites(cfg.data_path)
        train_idx = np.sort(np.random.default_rng([seed, 1]).permutation(len(data))[: cfg.vae_train_size])
        run_id = uuid.uuid4().hex[:12] if force else None
        method = BetaVAE(cfg.vae_beta, MethodSetup(total_steps=bcfg.total_steps(len(train_idx)), data_size=len(train_idx),
                                                   latent_dim=bcfg.latent_dim, seed=seed, device=str(device)))
        keys = {"beta": cfg.vae_beta, "seed": seed}
        model, history, _ = loop.train(bcfg, method, data, train_idx, seed, files, keys, device, progress, run_id=run_id)
        io.save_torch(paths["end"], checkpoint_state(model, **keys, step=history[-1]["step"], history=history))
        files.checkpoint("last").unlink(missing_ok=True)
    return paths


def run_vae(cfg: EstimatorsConfig, out_dir: Path, seed: int, device: str, progress: bool, force: bool) -> None:
    from vaebench.data.dsprites import load_dsprites
    from vaebench.estimators.vae_gradients import encoder_gradient_study
    from vaebench.models import load_vae

    grad_csv, elbo_csv = (out_dir / f for f in PART_FILES["vae"])
    grad_rows, elbo_rows = [], []
    if not force and grad_csv.exists() and elbo_csv.exists():
        grad_rows = pd.read_csv(grad_csv).to_dict("records")
        elbo_rows = pd.read_csv(elbo_csv).to_dict("records")
    done = {(r["stage"], int(r["samples"])) for r in grad_rows}

    checkpoints = _vae_checkpoints(cfg, out_dir, seed, device, progress, force)
    data = load_dsprites(cfg.data_path)
    batch_idx = np.sort(np.random.default_rng([seed, 2]).choice(len(data), cfg.vae_batch, replace=False))
    x = data.batch(batch_idx).to(device)
    units = [(s, L) for s in checkpoints for L in cfg.vae_samples if (s, L) not in done]
    bar = tqdm(total=len(units) * cfg.vae_replicates, desc="VAE gradients", disable=not progress, leave=False)
    for stage, L in units:
        state = io.load_torch(checkpoints[stage])
        model = load_vae(state, map_location=device, source=checkpoints[stage])
        t0 = time.perf_counter()
        stats, values = encoder_gradient_study(model, x, L, cfg.vae_replicates, beta=cfg.vae_beta,
                                               seed=unit_seed(seed, "vae", stage, L), progress=bar)
        n_params = sum(p.numel() for p in model.encoder.parameters())
        common = {"stage": stage, "step": state.get("step", -1), "samples": L, "batch": cfg.vae_batch,
                  "beta": cfg.vae_beta, "n_params": n_params, "seconds": time.perf_counter() - t0}
        grad_rows += [{**common, "estimator": e, **s} for e, s in stats.items()]
        vals = pd.DataFrame(values)
        for name, column, grad_est in (("L^B", "elbo_lb", "reparam"), ("L^A", "elbo_la", "reparam_la")):
            v = torch.tensor(vals[column].to_numpy())
            s = summarize(v)
            elbo_rows.append({**common, "estimator": name, "elbo_mean": s["mean"], "elbo_var": s["var"],
                              "elbo_se": s["se"], "grad_total_variance": stats[grad_est]["total_variance"],
                              "grad_snr": stats[grad_est]["snr"]})
        # rewrite after every unit: an interrupted run keeps its finished stages
        io.write_csv(grad_csv, pd.DataFrame(grad_rows))
        io.write_csv(elbo_csv, pd.DataFrame(elbo_rows))
    bar.close()
    if not units and not grad_csv.exists():  # nothing to do but no files: write empty tables
        io.write_csv(grad_csv, pd.DataFrame(grad_rows))
        io.write_csv(elbo_csv, pd.DataFrame(elbo_rows))


# ---- 5. minibatch ---------------------------------------------------------------------


def run_minibatch(cfg: EstimatorsConfig, seed: int, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    g = generator(seed, "minibatch", "data")
    x, y, w_true = minibatch.synthetic_logistic(cfg.mb_n, cfg.mb_dim, g)
    w = torch.zeros_like(w_true)  # away from the optimum, so the full gradient is far from 0
    grads = minibatch.per_example_grads(w, x, y)
    full = grads.sum(0)
    rows, coord_rows = [], []
    units = [(rep, m) for rep in (True, False) for m in cfg.mb_sizes]
    for replacement, m in tqdm(units, desc="minibatch", disable=not progress, leave=False):
        idx = minibatch.minibatch_indices(cfg.mb_n, m, cfg.mb_replicates, replacement, generator(seed, "mb", replacement, m))
        est = minibatch.minibatch_gradients(grads, idx)
        mean, cov = est.mean(0), torch.cov(est.T)
        diff = mean - full
        r = cfg.mb_replicates
        # Hotelling's T^2 of the mean against the exact full gradient (~ chi^2_P for large R)
        t2 = (r * diff @ torch.linalg.solve(cov, diff)).item()
        rows.append({"replacement": replacement, "batch": m, "n": cfg.mb_n, "replicates": r, "params": full.numel(),
                     "total_var": cov.trace().item(),
                     "total_var_exact": minibatch.exact_total_variance(grads, m, replacement),
                     "hotelling_t2": t2, "max_abs_z": (diff / (cov.diagonal() / r).sqrt()).abs().max().item(),
                     "full_grad_norm": full.norm().item()})
        se = (cov.diagonal() / r).sqrt()
        for j in range(full.numel()):
            coord_rows.append({"replacement": replacement, "batch": m, "coord": j, "mean": mean[j].item(),
                               "se": se[j].item(), "exact": full[j].item(),
                               "z": (diff[j] / se[j]).item()})
    return pd.DataFrame(rows), pd.DataFrame(coord_rows)


# ---- 6. exact variances on the review's grids ---------------------------------------------


def run_gaussian_exact(cfg: EstimatorsConfig) -> pd.DataFrame:
    return gaussian_exact.table(cfg.exact_points, cfg.exact_mu, cfg.exact_sigma)


# ---- 7. Bayesian logistic regression ---------------------------------------------------------


def run_blr(cfg: EstimatorsConfig, out_dir: Path, seed: int, progress: bool, force: bool) -> None:
    csv = out_dir / PART_FILES["blr"][0]
    rows = pd.read_csv(csv).to_dict("records") if not force and csv.exists() else []
    done = {(r["estimator"], r["control_variate"]) for r in rows}
    runs = [tuple(r.split("/", 1)) for r in cfg.blr_runs]
    todo = [r for r in runs if r not in done]
    data = blr.load_breast_cancer(cfg.blr_test_fraction, seed=unit_seed(seed, "blr", "split") % 2**32)
    n_train = data.x_train.shape[0]
    if cfg.blr_batch > n_train:
        raise ValueError(f"blr_batch must be <= the {n_train} training points, got {cfg.blr_batch}")
    # shared by every run, so their curves differ by the estimator only
    eval_eps = torch.randn(cfg.blr_eval_samples, data.dim, dtype=torch.float64, generator=generator(seed, "blr", "eval"))
    variance_batch = torch.randperm(n_train, generator=generator(seed, "blr", "variance batch"))[: cfg.blr_batch]
    mvd_evals = blr.evaluations_per_draw("measure_valued", data.dim)
    bar = tqdm(total=len(todo) * cfg.blr_steps, desc="logistic regression", disable=not progress, leave=False)
    for est, cv in todo:
        t0 = time.perf_counter()
        log = blr.train(est, cv, data, steps=cfg.blr_steps, batch=cfg.blr_batch, samples=cfg.blr_samples,
                        lr=cfg.blr_lr, generator=generator(seed, "blr", est, cv),
                        variance_generator=generator(seed, "blr variance", est, cv), log_every=cfg.blr_log_every,
                        variance_draws=cfg.blr_variance_draws, eval_eps=eval_eps, variance_batch=variance_batch,
                        ema_decay=cfg.ema_decay, progress=bar)
        seconds = time.perf_counter() - t0
        evals = blr.evaluations_per_draw(est, data.dim)
        for r in log:
            rows.append({"step": r["step"], "estimator": est, "control_variate": cv, "elbo": r["elbo"],
                         "test_accuracy": r["test_accuracy"], "grad_variance": r["grad_variance"],
                         "grad_variance_mu": r["grad_variance_mu"], "grad_variance_logvar": r["grad_variance_logvar"],
                         # the variance had the run spent as many evaluations of F per step as the
                         # measure-valued one: averages of independent draws, so it scales as 1/draws
                         "grad_variance_equal_evaluations": r["grad_variance"] * evals / mvd_evals,
                         "samples": cfg.blr_samples, "evaluations_per_draw": evals, "evaluations": r["evaluations"],
                         "n_train": n_train, "n_test": data.x_test.shape[0], "dim": data.dim,
                         "run_seconds": seconds})
        io.write_csv(csv, pd.DataFrame(rows))  # after every run: an interrupted part keeps its finished runs
    bar.close()
    if not todo and not csv.exists():
        io.write_csv(csv, pd.DataFrame(rows))


# ---- run ---------------------------------------------------------------------------------


def run(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
        progress: bool = True, executor=None, **overrides) -> None:
    """Runs every part in ``cfg.parts`` into ``out_dir`` (see module doc), one after another, or
    with ``executor`` (see ``vaebench.executors``; each part is a unit)."""
    from vaebench.executors import Experiment, run_experiment

    cfg = make_config(profile, **overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_config_file(out_dir, cfg, seed, force)
    io.write_json(out_dir / f"{PREFIX}_config.json", {"profile": profile, "seed": seed,
                                                      "config": dataclasses.asdict(cfg),
                                                      "provenance": provenance(device=device)})
    run_experiment(Experiment("estimators", RunSetup(cfg, seed, force), list(cfg.parts), run_part, part_finished,
                              merge_parts, out_dir, device), executor, progress=progress)


# ---- the parts as units of vaebench.executors ------------------------------------------------


@dataclass(frozen=True)
class RunSetup:
    """What every part of one run shares."""

    cfg: EstimatorsConfig
    seed: int = 0
    force: bool = False


SELF_RESUMING = ("vae", "blr")  # parts that keep their finished pieces and write their own tables


def run_part(setup: RunSetup, part: str, out_dir: Path, device: str = "cpu", *, progress: bool = False,
             on_partial=None) -> dict[str, pd.DataFrame]:
    """One part: its tables by file name, for ``merge_parts`` to write (none for SELF_RESUMING)."""
    cfg, seed, force, out_dir = setup.cfg, setup.seed, setup.force, Path(out_dir)
    if part == "vae":  # resumes stage by stage itself
        run_vae(cfg, out_dir, seed, device, progress, force)
        return {}
    if part == "blr":  # resumes run by run itself
        run_blr(cfg, out_dir, seed, progress, force)
        return {}
    if part == "gamma":
        tables = run_gamma(cfg, seed, progress)
    elif part == "gaussian":
        tables = (run_gaussian(cfg, seed, progress),)
    elif part == "gaussian_exact":
        tables = (run_gaussian_exact(cfg),)
    else:
        tables = run_minibatch(cfg, seed, progress)
    return dict(zip(PART_FILES[part], tables))


def part_finished(setup: RunSetup, part: str, out_dir: Path) -> dict | None:
    """``{}`` (nothing more to write) for a part whose tables exist, else None (run it)."""
    if setup.force or part in SELF_RESUMING:
        return None
    return {} if all((Path(out_dir) / f).exists() for f in PART_FILES[part]) else None


def merge_parts(setup: RunSetup, out_dir: Path, results: list) -> None:
    for _, tables in results:
        for name, table in tables.items():
            io.write_csv(Path(out_dir) / name, table)
