"""How a unit is scored: MIG of its encoder means on fixed images (during training, ``Probe``)
and, once trained, MIG, recon and KL on the evaluation images plus the arrays its figures need
(originals, reconstructions, a PCA of the means, latent traversals)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vaebench.models import VAE, precision as prec, vae_pass
from vaebench.training.config import TrainConfig


def _batch(data, indices: np.ndarray, device: str) -> torch.Tensor:
    return torch.as_tensor(data.batch(indices)).to(device, non_blocking=True)


@torch.no_grad()
def encode_means(model: VAE, data, indices: np.ndarray, *, batch_size: int = 1024, device: str = "cpu",
                 precision: str = "fp32", channels_last: bool = False) -> np.ndarray:
    """Encoder means, float32 ``[len(indices), D]``, of the grid images ``indices``."""
    arch = model.config.arch
    out = []
    for start in range(0, len(indices), batch_size):
        x = prec.prepare_input(_batch(data, indices[start:start + batch_size], device), arch, channels_last)
        with prec.autocast(precision, device):
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
def evaluate(model: VAE, cfg: TrainConfig, data, eval_idx: np.ndarray, originals: np.ndarray, eval_seed: int,
             device: str = "cpu", method=None) -> tuple[dict, dict]:
    """MIG, its gaps, active dims, recon and KL on ``eval_idx`` (one posterior sample each, from
    the noise stream ``eval_seed``, see ``loop.unit_seeds``) of the method's pass
    (``vaebench.methods.Method``; None: a plain VAE pass); and the arrays the figures need
    (with decoded draws from the method's prior, where it has one)."""
    from sklearn.decomposition import PCA

    precision = prec.resolve_precision(cfg.precision, device)
    forward = method.forward if method is not None else (lambda m, x, step, **kw: vae_pass(m, x, **kw))
    dim = model.latent_dim
    mus, recon_sum, kl_sum, kl_dim_sum, offset = [], 0.0, 0.0, torch.zeros(dim, dtype=torch.float64), 0
    for start in range(0, len(eval_idx), cfg.eval_batch_size):
        x = prec.prepare_input(_batch(data, eval_idx[start:start + cfg.eval_batch_size], device), cfg.arch,
                                   cfg.channels_last)
        with prec.autocast(precision, device):
            terms = forward(model, x, None, impl=cfg.impl, seed=eval_seed, offset=offset)
        offset += x.shape[0] * dim
        mus.append(terms.mu.float().cpu())
        recon_sum += terms.recon.double().sum().item()
        kl_sum += terms.kl.double().sum().item()
        if terms.logvar is not None:
            mu, lv = terms.mu.double(), terms.logvar.double()
            kl_dim_sum += (-0.5 * (1 + lv - mu.pow(2) - lv.exp())).sum(0).cpu()
    n = len(eval_idx)
    mu_all = torch.cat(mus).numpy()
    # An autoencoder has no KL: its traversals follow the codes' variance instead.
    kl_per_dim = (kl_dim_sum / n).numpy() if model.is_gaussian else mu_all.var(axis=0).astype(np.float64)

    factors = np.asarray(data.index_to_factors(eval_idx))
    names = list(data.factor_names)
    varying = [k for k, size in enumerate(data.factor_sizes) if size > 1]
    metrics = {**score_means(data, mu_all, eval_idx, cfg.num_bins), "recon": recon_sum / n, "kl": kl_sum / n}

    # PCA of the first pca_points latent means (eval_idx is a random draw, so these are too).
    m = min(cfg.pca_points, n)
    pca = PCA(n_components=2).fit(mu_all[:m])
    shape_k = names.index("shape") if "shape" in names else varying[0]

    x0 = prec.prepare_input(_batch(data, originals, device), cfg.arch, cfg.channels_last)
    with prec.autocast(precision, device):
        mu0, _ = model.encode(x0)
        recon = torch.sigmoid(model.decode(mu0).float())
    # Traversals: the first original, one latent at a time over [-r, r], dims ordered by KL.
    order = np.argsort(-kl_per_dim)
    values = torch.linspace(-cfg.traversal_range, cfg.traversal_range, cfg.traversal_steps, device=device)
    z = mu0[:1].repeat(len(order) * cfg.traversal_steps, 1).view(len(order), cfg.traversal_steps, -1)
    for row, d in enumerate(order):
        z[row, :, d] = values
    with prec.autocast(precision, device):
        trav = torch.sigmoid(model.decode(z.reshape(-1, model.latent_dim)).float())
    trav = trav.view(len(order), cfg.traversal_steps, *trav.shape[-2:])
    samples = None
    if method is not None:  # decoded draws from the method's prior (None: a model without one)
        z_prior = method.sample_prior(model, 16, dim, torch.Generator().manual_seed(eval_seed % 2**63))
        if z_prior is not None:
            with prec.autocast(precision, device):
                samples = torch.sigmoid(model.decode(z_prior.to(device)).float())

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
    if samples is not None:
        arrays["prior_samples"] = to_u8(samples)
    if method is not None:
        with prec.autocast(precision, device):
            arrays.update(method.extra_arrays(model))
    return metrics, arrays
