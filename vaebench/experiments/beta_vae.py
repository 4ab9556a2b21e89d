"""beta-VAE on dSprites for beta in {1, 4, 8} (REFERENCE.md §4): loss curves,
reconstructions, MIG, a PCA of the latent means and latent traversals, over seeds.

For every (beta, seed) ``run`` trains one model, evaluates it, and writes (under ``out_dir``):

- ``beta_vae_losses.csv``: beta, seed, epoch, step, total, recon, kl (training means per sample
  over the epoch), images_per_s.
- ``beta_vae_mig.csv``: beta, seed, mig, gap_<factor> per varying factor, recon, kl (on the
  evaluation images, one posterior sample each), active_dims, steps, train_seconds.
- ``beta_vae_arrays_beta<b>_seed<s>.npz``: what the figures need (originals, reconstructions,
  PCA points and their shapes, traversal images), so figures never need the models.
- ``beta_vae_config.json``: the config and ``provenance()``.
- ``beta_vae_checkpoints/beta<b>_seed<s>_<stage>.pt`` (``checkpoint_path``), stages:
  ``init`` (before the first step), ``mid`` (after ``max(1, total_steps // 2)`` steps), ``end`` (trained,
  with its history and evaluation), and ``last`` (the resume point, saved every epoch and
  deleted once ``end`` exists). Each loads with ``vaebench.models.load_vae(path)``.

Resuming: a unit with an ``end`` checkpoint is never retrained (unless ``force``); one with a
``last`` checkpoint continues from its last finished epoch. Data order (per-epoch permutations
seeded by (seed, epoch)) and the Philox noise stream (offset advances by B*D per step) are pure
functions of the step, so a resumed run computes what an uninterrupted one would.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vaebench.models import VAE, VAEConfig, checkpoint_state, elbo_terms, load_vae
from vaebench.experiments.config import config_from_profile
from vaebench.ops import draw_seed
from vaebench.utils import io
from vaebench.utils.provenance import provenance

PREFIX = "beta_vae"
STAGES = ("init", "mid", "end", "last")
LOSS_COLUMNS = ["beta", "seed", "epoch", "step", "total", "recon", "kl", "images_per_s"]


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

    def model_config(self) -> VAEConfig:
        return VAEConfig(arch=self.arch, latent_dim=self.latent_dim, mlp_hidden=self.mlp_hidden)


PROFILES: dict[str, BetaVAEConfig] = {
    # CI: a few hundred images, 3 epochs of a tiny MLP, 3 betas, 1 seed; seconds.
    "smoke": BetaVAEConfig(
        arch="mlp", latent_dim=4, mlp_hidden=32, num_seeds=1, batch_size=64, lr=1e-3, epochs=3,
        train_size=512, eval_size=512, pca_points=256, traversal_steps=5, eval_batch_size=256, num_threads=1,
    ),
    # The CLI default, about 7 minutes on an idle 2-core CPU (1,250 steps took 3.4 min): the MLP
    # on a 32k-image subset, 5 epochs = 2,500 steps, with lr 1e-3 (the literature's 1e-4 needs
    # ~10x the steps) so the beta trade-off is already clear; 2 seeds for a spread; MIG on 20k
    # random grid images; 1 torch thread (see num_threads).
    "quick": BetaVAEConfig(
        arch="mlp", latent_dim=10, mlp_hidden=256, num_seeds=2, batch_size=64, lr=1e-3, epochs=5,
        train_size=32_000, eval_size=20_000, num_threads=1,
    ),
    # The literature's setup on the full grid, 3 seeds per beta, full-grid MIG: for a GPU.
    "paper": BetaVAEConfig(),
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


def train_step(model, optimizer, x, beta: float, *, impl: str, seed: int, offset: int):
    """One Adam step on ``x``; returns ``(terms, next_offset)`` (offset advances by B*D)."""
    optimizer.zero_grad(set_to_none=True)
    terms = elbo_terms(model, x, beta, impl=impl, seed=seed, offset=offset)
    terms.loss.backward()
    optimizer.step()
    return terms, offset + x.shape[0] * model.latent_dim


def train_unit(cfg: BetaVAEConfig, data, train_idx: np.ndarray, beta: float, seed: int, out_dir: Path,
               device: str = "cpu", progress: bool = True) -> tuple[VAE, list[dict]]:
    """Trains (or resumes) the (beta, seed) model; saves init/mid/last checkpoints on the way.
    Returns the trained model and its per-epoch history."""
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"train_size ({len(train_idx)}) must be >= batch_size ({cfg.batch_size})")
    total_steps = steps_per_epoch * cfg.epochs
    noise_seed, _ = unit_seeds(seed)

    torch.manual_seed(seed)  # same init for every beta at a given seed: paired comparisons
    model = VAE(cfg.model_config()).to(device)
    optimizer = make_optimizer(model, cfg)
    start_epoch, offset, history = 0, 0, []
    last = checkpoint_path(out_dir, beta, seed, "last")
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        start_epoch, offset, history = state["epoch"], state["offset"], state["history"]
    else:
        io.save_torch(checkpoint_path(out_dir, beta, seed, "init"), checkpoint_state(model, beta=beta, seed=seed, step=0))

    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, desc=f"beta={beta:g} seed={seed}",
               leave=False, disable=not progress, unit="step")
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        order = train_idx[np.random.default_rng([seed, epoch]).permutation(len(train_idx))]
        sums = torch.zeros(3, dtype=torch.float64)
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            x = _batch(data, order[i * cfg.batch_size:(i + 1) * cfg.batch_size], device)
            terms, offset = train_step(model, optimizer, x, beta, impl=cfg.impl, seed=noise_seed, offset=offset)
            sums += torch.stack([terms.loss.detach(), terms.recon.detach().mean(), terms.kl.detach().mean()]).double().cpu()
            step = epoch * steps_per_epoch + i + 1
            if step == max(1, total_steps // 2):
                io.save_torch(checkpoint_path(out_dir, beta, seed, "mid"),
                              checkpoint_state(model, beta=beta, seed=seed, step=step))
            bar.update(1)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{terms.loss.item():.1f}")
        seconds = time.perf_counter() - t0
        mean = (sums / steps_per_epoch).tolist()
        history.append({"beta": beta, "seed": seed, "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
                        "total": mean[0], "recon": mean[1], "kl": mean[2],
                        "images_per_s": steps_per_epoch * cfg.batch_size / seconds})
        io.save_torch(last, checkpoint_state(model, beta=beta, seed=seed, step=(epoch + 1) * steps_per_epoch,
                                             epoch=epoch + 1, offset=offset, history=history,
                                             optimizer_state=optimizer.state_dict()))
    bar.close()
    model.eval()
    return model, history


# ---- evaluation -----------------------------------------------------------------


@torch.no_grad()
def evaluate(model: VAE, cfg: BetaVAEConfig, data, eval_idx: np.ndarray, originals: np.ndarray, beta: float,
             seed: int, device: str = "cpu") -> tuple[dict, dict]:
    """MIG, recon and KL on ``eval_idx``; and the arrays the figures need."""
    from sklearn.decomposition import PCA

    from vaebench.metrics import mig

    _, eval_seed = unit_seeds(seed)
    mus, recon_sum, kl_sum, kl_dim_sum, offset = [], 0.0, 0.0, torch.zeros(model.latent_dim, dtype=torch.float64), 0
    for start in range(0, len(eval_idx), cfg.eval_batch_size):
        x = _batch(data, eval_idx[start:start + cfg.eval_batch_size], device)
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
    varying = [k for k, size in enumerate(data.factor_sizes) if size > 1]  # MIG is undefined for constant factors
    result = mig(mu_all, factors[:, varying], num_bins=cfg.num_bins)
    metrics = {"beta": beta, "seed": seed, "mig": float(result.score)}
    metrics.update({f"gap_{names[k]}": float(g) for k, g in zip(varying, np.asarray(result.gaps))})
    metrics.update({"recon": recon_sum / n, "kl": kl_sum / n,
                    # active units (Burda et al. 2016): latents whose posterior mean varies over the data
                    "active_dims": int((mu_all.var(axis=0) > 0.01).sum())})

    # PCA of the first pca_points latent means (eval_idx is a random draw, so these are too).
    m = min(cfg.pca_points, n)
    pca = PCA(n_components=2).fit(mu_all[:m])
    shape_k = names.index("shape") if "shape" in names else varying[0]

    x0 = _batch(data, originals, device)
    mu0, _ = model.encode(x0)
    recon = torch.sigmoid(model.decode(mu0))
    # Traversals: the first original, one latent at a time over [-r, r], dims ordered by KL.
    order = np.argsort(-kl_per_dim)
    values = torch.linspace(-cfg.traversal_range, cfg.traversal_range, cfg.traversal_steps, device=device)
    z = mu0[:1].repeat(len(order) * cfg.traversal_steps, 1).view(len(order), cfg.traversal_steps, -1)
    for row, d in enumerate(order):
        z[row, :, d] = values
    trav = torch.sigmoid(model.decode(z.reshape(-1, model.latent_dim)))
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


def _save_npz(path: Path, arrays: dict) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


# ---- the experiment ---------------------------------------------------------------


def _check_config_file(out_dir: Path, cfg: BetaVAEConfig, seeds: list[int], force: bool) -> None:
    """Refuses to mix results of different configs in one folder (unless force)."""
    path = out_dir / f"{PREFIX}_config.json"
    if force or not path.exists():
        return
    old = json.loads(path.read_text()).get("config", {})
    new = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    ignore = {"num_threads", "eval_batch_size"}  # do not change results
    diff = sorted(k for k in new if k not in ignore and old.get(k) != new[k])
    if diff or json.loads(path.read_text()).get("seeds") != seeds:
        raise ValueError(f"{out_dir} holds beta_vae results of another config (differs in {diff or ['seeds']}); "
                         "use force=True or another out_dir")


def run(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "cpu",
        progress: bool = True, **overrides) -> None:
    """Trains and evaluates every (beta, seed) of ``profile`` into ``out_dir`` (see module doc)."""
    from vaebench.data.dsprites import load_dsprites

    cfg = make_config(profile, **overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = [seed + i for i in range(cfg.num_seeds)]
    _check_config_file(out_dir, cfg, seeds, force)
    io.write_json(out_dir / f"{PREFIX}_config.json",
                  {"profile": profile, "config": dataclasses.asdict(cfg), "seeds": seeds,
                   "provenance": provenance(device=device)})

    threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        data = load_dsprites(cfg.data_path)
        rng = np.random.default_rng(seed)  # one data draw shared by every (beta, seed): paired comparisons
        train_idx = _subset(len(data), cfg.train_size, rng)
        eval_idx = rng.permutation(len(data))[: cfg.eval_size] if cfg.eval_size else rng.permutation(len(data))
        originals = rng.choice(len(data), size=cfg.num_originals, replace=False)

        loss_rows, mig_rows = [], []
        units = [(b, s) for b in cfg.betas for s in seeds]
        for beta, s in tqdm(units, desc="beta-VAE", disable=not progress, unit="model"):
            end = checkpoint_path(out_dir, beta, s, "end")
            if force:
                for stage in STAGES:
                    checkpoint_path(out_dir, beta, s, stage).unlink(missing_ok=True)
            if end.exists() and arrays_path(out_dir, beta, s).exists():
                state = torch.load(end, map_location="cpu", weights_only=False)
                history, metrics = state["history"], state["metrics"]
            else:
                t0 = time.perf_counter()
                model, history = train_unit(cfg, data, train_idx, beta, s, out_dir, device, progress)
                train_seconds = time.perf_counter() - t0
                metrics, arrays = evaluate(model, cfg, data, eval_idx, originals, beta, s, device)
                metrics.update(steps=history[-1]["step"], train_seconds=train_seconds)
                _save_npz(arrays_path(out_dir, beta, s), arrays)
                io.save_torch(end, checkpoint_state(model, beta=beta, seed=s, step=history[-1]["step"],
                                                    history=history, metrics=metrics))
                checkpoint_path(out_dir, beta, s, "last").unlink(missing_ok=True)
            loss_rows += history
            mig_rows.append(metrics)
            # Rewrite the CSVs after every unit: an interrupted run still leaves consistent tables.
            io.write_csv(out_dir / f"{PREFIX}_losses.csv", pd.DataFrame(loss_rows, columns=LOSS_COLUMNS))
            io.write_csv(out_dir / f"{PREFIX}_mig.csv", pd.DataFrame(mig_rows))
    finally:
        torch.set_num_threads(threads)
